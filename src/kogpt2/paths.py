"""Where bundled files live inside the installed package."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_MODEL = "kogpt2-small"
STEP_DIR = re.compile(r"^step_(\d{7,})$")
"""Checkpoint directories inside a training run (``kogpt2 train --out``)."""


def bundled_model_dir() -> Path:
    """Directory of the model shipped in the package (a normal HF directory)."""
    return PACKAGE_DIR / "models" / BUNDLED_MODEL


def resources_dir() -> Path:
    """Package data written here (word lists, genre templates)."""
    return PACKAGE_DIR / "resources"


def newest_step_dir(run_dir: Path) -> Path | None:
    """The newest ``step_*`` checkpoint directory in ``run_dir``, or None."""
    if not run_dir.is_dir():
        return None
    steps = [(int(m.group(1)), p) for p in run_dir.iterdir() if p.is_dir() and (m := STEP_DIR.match(p.name))]
    return max(steps)[1] if steps else None


def run_checkpoint(path: Path) -> Path:
    """``path``, or its newest checkpoint when it is a training run directory (``step_*`` inside, no config.json)."""
    if (path / "config.json").exists():
        return path
    return newest_step_dir(path) or path


def bow_names() -> list[str]:
    """Names of the PPLM bags of words shipped in the package (``resources/bow/*.txt``)."""
    return sorted(p.stem for p in (resources_dir() / "bow").glob("*.txt"))


def resolve_model_dir(path: str | Path | None = None) -> Path:
    """The model directory to load: ``path`` itself, the newest checkpoint of a training run
    directory (``kogpt2 train --out``), or the bundled model for ``None``.

    Raises:
        KoGPT2Error: ``path`` is None and the bundled model is not installed.
    """
    from kogpt2.errors import KoGPT2Error

    if isinstance(path, str) and not path.strip():
        raise KoGPT2Error("the model path is empty; give a model directory, or none for the bundled model")
    if path is not None:
        return run_checkpoint(Path(path))

    p = bundled_model_dir()
    if not (p / "config.json").is_file():
        raise KoGPT2Error(f"the bundled model is not installed ({p} is missing); "
                          "pass a model directory with --model DIR (or model=DIR)")
    return p
