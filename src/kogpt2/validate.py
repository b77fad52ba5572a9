"""Checks of user-given values: paths to read, directories to write, and numbers.

Each check raises :class:`kogpt2.errors.KoGPT2Error` with one line that names the flag or
file and the fix, so every command reports bad input the same way (``error: ...``, exit 2).

Examples::

    existing_file("p.txt", "--prompts")          # not found / is a directory -> KoGPT2Error
    output_dir("runs/mini", "--out")             # an existing file -> KoGPT2Error
    number_problems(lr=(6e-4, "> 0"), warmup_steps=(100, ">= 0"))   # -> [] or ["--lr must be > 0, got nan"]
"""

from __future__ import annotations

import math
from pathlib import Path

from kogpt2.errors import KoGPT2Error


def existing_file(path: str | Path, what: str) -> Path:
    """``path`` as a ``Path`` if it is a file; otherwise a clear error.

    Args:
        path: the file given by the user.
        what: how the user gave it, e.g. ``"--prompts"`` or ``"sentiment data"``.
    """
    p = Path(path)
    if p.is_dir():
        raise KoGPT2Error(f"{what} {p} is a directory; give a file")
    if not p.exists():
        raise KoGPT2Error(f"{what} not found: {p} (check the path)")
    if not p.is_file():
        raise KoGPT2Error(f"{what} {p} is not a regular file; give a file")
    return p


def existing_dir(path: str | Path, what: str, hint: str = "") -> Path:
    """``path`` as a ``Path`` if it is a directory; otherwise a clear error.

    Args:
        path: the directory given by the user.
        what: how the user gave it, e.g. ``"model directory"`` or ``"--data"``.
        hint: what the directory should be, appended to the error (e.g. "written by `kogpt2 train`").
    """
    p = Path(path)
    extra = f" ({hint})" if hint else ""
    if p.is_file():
        raise KoGPT2Error(f"{what} {p} is a file, not a directory; give the directory{extra}")
    if not p.is_dir():
        raise KoGPT2Error(f"{what} not found: {p}{extra}")
    return p


def output_dir(path: str | Path, what: str = "--out") -> Path:
    """``path`` as a ``Path`` unless it names an existing file (a directory to write into)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise KoGPT2Error(f"{what} {p} is an existing file; give a directory path (new or empty), "
                          "or move the file away")
    for parent in p.parents:
        if parent.exists() and not parent.is_dir():
            raise KoGPT2Error(f"{what} {p}: {parent} is a file, so the directory cannot be created there")
    return p


def output_apart(out: str | Path, source: str | Path, what: str = "OUT") -> None:
    """Refuse an output directory that is ``source`` or holds it (writing it would replace the source)."""
    o, src = Path(out).resolve(), Path(source).resolve()
    if o == src or o in src.parents:
        raise KoGPT2Error(f"{what} {out} {'is' if o == src else 'holds'} the source model {source}, which the "
                          f"output would replace; give {what} a directory outside it")


def _fails(value: float, rule: str) -> bool:
    op, bound = rule.split()
    limit = float(bound)
    return not {">": value > limit, ">=": value >= limit, "<": value < limit, "<=": value <= limit}[op]


def number_problems(**checks: tuple[float | int | None, str]) -> list[str]:
    """Problems of numeric options: NaN or infinite values, and values outside their rule.

    Args:
        **checks: ``name=(value, rule)``, rule like ``"> 0"``, ``">= 1"`` or ``"> 0 <= 1"``
            (two bounds); ``None`` values are skipped. Names are shown as flags (``lr`` -> ``--lr``).

    Returns:
        one line per bad option, e.g. ``"--lr must be > 0, got nan"``; empty when all are fine.
    """
    out = []
    for name, (value, rule) in checks.items():
        if value is None or isinstance(value, bool):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, float) and not math.isfinite(value):
            out.append(f"{flag} must be a finite number, got {value}")
            continue
        parts = rule.split()
        rules = [" ".join(parts[i:i + 2]) for i in range(0, len(parts), 2)]
        if any(_fails(value, r) for r in rules):
            out.append(f"{flag} must be {' and '.join(rules)}, got {value}")
    return out


def check_numbers(**checks: tuple[float | int | None, str]) -> None:
    """Raise one ``KoGPT2Error`` listing every problem found by :func:`number_problems`."""
    problems = number_problems(**checks)
    if problems:
        raise KoGPT2Error("; ".join(problems))
