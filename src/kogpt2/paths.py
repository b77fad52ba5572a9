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
