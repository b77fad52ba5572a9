"""Atomic directory writes: build a directory under a temporary name, then rename it into place.

Every writer of a model or checkpoint directory (``checkpoint.save_checkpoint``,
``checkpoint.release``, ``convert``, ``export``) goes through :func:`atomic_dir`, so a crash
never leaves a half-written directory where a reader would find it::

    with atomic_dir(out) as tmp:          # tmp: an empty sibling of ``out``
        model.save_pretrained(tmp)
    # here ``out`` holds exactly what was written (an old ``out`` is replaced)
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

__all__ = ["atomic_dir", "fsync_dir"]


def fsync_dir(path: Path) -> None:
    """Flush every file in ``path`` and the directory entry itself to disk."""
    for f in path.iterdir():
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_dir(out: str | Path, *, merge: bool = False, last: Sequence[str] = ()) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``out``; publish it as ``out`` when the block ends.

    Args:
        out: the directory to write.
        merge: keep what ``out`` already holds and move the new files into it one by one
            (for a directory shared with other files, e.g. ONNX files beside a model); by
            default ``out`` is replaced as a whole by one rename.
        last: with ``merge``, file suffixes moved after all others (e.g. ``(".onnx",)``, so a
            reader that looks for the model file finds its config beside it).

    On an exception the temporary directory is removed and ``out`` is left untouched.
    """
    out = Path(out)
    parent = out if merge else out.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".tmp-{out.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()  # not mkdtemp: its 0700 mode would survive the rename
    try:
        yield tmp
        fsync_dir(tmp)
        if merge:
            for f in sorted(tmp.iterdir(), key=lambda f: f.suffix in last):
                os.replace(f, out / f.name)
            tmp.rmdir()
        else:
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
