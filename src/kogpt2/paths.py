"""Where bundled files live inside the installed package."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_MODEL = "kogpt2-small"


def bundled_model_dir() -> Path:
    """Directory of the model shipped in the package (a normal HF directory)."""
    return PACKAGE_DIR / "models" / BUNDLED_MODEL


def resources_dir() -> Path:
    """Package data written here (word lists, genre templates)."""
    return PACKAGE_DIR / "resources"


def resolve_model_dir(path: str | Path | None = None) -> Path:
    """The model directory to load: ``path`` itself, or the bundled model for ``None``.

    Raises:
        KoGPT2Error: ``path`` is None and the bundled model is not installed.
    """
    if path is not None:
        return Path(path)
    from kogpt2.errors import KoGPT2Error

    p = bundled_model_dir()
    if not (p / "config.json").is_file():
        raise KoGPT2Error(f"the bundled model is not installed ({p} is missing); "
                          "pass a model directory with --model DIR (or model=DIR)")
    return p
