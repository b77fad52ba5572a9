"""Reading the small text and JSON files users hand to commands, with clear errors.

A binary file, a CP949/EUC-KR file, a directory or a broken JSON file ends in one
``KoGPT2Error`` naming the file and the fix (for legacy Korean encodings:
``iconv -f cp949 -t utf-8``), never in a ``UnicodeDecodeError`` traceback.

Examples::

    prompts = read_text_lines("prompts.txt", what="--prompts")     # non-blank lines
    cfg = read_json(Path(model_dir) / "config.json", fix="restore it from the original model")
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

from kogpt2.errors import KoGPT2Error
from kogpt2.validate import existing_file

_SNIFF_BYTES = 8192
STDIN = "-"
"""The path that means standard input, as in most Unix tools (``--prompts -``, ``--file -``)."""


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def _source(what: str, path: str | Path) -> str:
    """How messages name a file the user gave: ``--prompts p.txt``; ``--file - (stdin)``; ``stdin``."""
    if str(path) != STDIN:
        return f"{what} {path}"
    return what if what == "stdin" else f"{what} - (stdin)"


def decode_text(data: bytes, path: str | Path, what: str) -> str:
    """``data`` decoded as UTF-8 (a leading BOM dropped); a clear error for binary or CP949 bytes."""
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise KoGPT2Error(f"{_source(what, path)} looks binary (NUL bytes), not UTF-8 text; give a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        if str(path) == STDIN:
            raise KoGPT2Error(f"{_source(what, path)} is not UTF-8 (byte 0x{data[e.start]:02x} on line {line}); "
                              "if it is CP949/EUC-KR, pipe it through: iconv -f cp949 -t utf-8") from None
        raise KoGPT2Error(f"{what} {path} is not UTF-8 (byte 0x{data[e.start]:02x} on line {line}); "
                          f"if it is CP949/EUC-KR, convert it: iconv -f cp949 -t utf-8 {path} > "
                          f"{Path(path).with_suffix('.utf8' + Path(path).suffix)}") from None


def read_text(path: str | Path, what: str = "file") -> str:
    """The whole UTF-8 text of ``path`` (``-``: standard input).

    Args:
        path: the file to read, or :data:`STDIN`.
        what: how the user gave it (``"--prompts"``, ``"chat data"``), used in errors.

    Raises:
        KoGPT2Error: missing file, a directory, unreadable, binary, or not UTF-8.
    """
    if str(path) == STDIN:
        if sys.stdin is None:
            raise KoGPT2Error(f"{_source(what, path)}: standard input is closed; give a file instead of -")
        try:
            stream = getattr(sys.stdin, "buffer", None)
            data = stream.read() if stream is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
        except OSError as e:
            raise KoGPT2Error(f"cannot read {_source(what, path)}: {e.strerror or e}") from None
        return decode_text(data, STDIN, what)
    p = existing_file(path, what)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise KoGPT2Error(f"cannot read {what} {p}: {e.strerror or e}") from None
    return decode_text(data, p, what)


def piped_lines(*, strip: bool = False) -> list[str]:
    """The non-blank lines of standard input when it is piped; [] for a terminal, closed or empty stdin.

    Commands that take their input as arguments read it from here when none is given
    (``echo 오늘 | kogpt2 generate``); [] lets them give their usual "give a ..." error.
    """
    if sys.stdin is None or sys.stdin.isatty():
        return []
    piped = read_text(STDIN, "stdin")
    return text_lines(piped, "stdin", STDIN, strip=strip) if piped.strip() else []


def read_text_lines(path: str | Path, what: str = "file", *, strip: bool = False,
                    warn: Callable[[str], None] | None = _note) -> list[str]:
    """The non-blank lines of a UTF-8 file (line ends removed), blank ones counted and reported.

    Args:
        path: the file to read (``-``: standard input).
        what: how the user gave it, used in messages.
        strip: strip surrounding whitespace from each line.
        warn: called once with the number of blank lines skipped (None: silent).

    Raises:
        KoGPT2Error: as :func:`read_text`, or when the file holds no non-blank line.
    """
    return text_lines(read_text(path, what), what, path, strip=strip, warn=warn)


def text_lines(text: str, what: str, path: str | Path, *, strip: bool = False,
               warn: Callable[[str], None] | None = _note) -> list[str]:
    """The non-blank lines of ``text`` read from ``path``; as :func:`read_text_lines` after reading."""
    lines = text.splitlines()
    kept = [l.strip() if strip else l for l in lines if l.strip()]
    if not kept:
        raise KoGPT2Error(f"{_source(what, path)} holds no non-blank line; give one item per line")
    skipped = len(lines) - len(kept)
    if skipped and warn is not None:
        warn(f"{_source(what, path)}: {skipped} blank line(s) skipped, {len(kept)} used")
    return kept


def read_json(path: str | Path, what: str = "file", fix: str = "") -> Any:
    """The parsed JSON of ``path``; a one-line error naming the file, line and fix if it is broken.

    Args:
        path: the JSON file.
        what: how the user gave it, used in errors before the path.
        fix: what the user should do, appended to the error.
    """
    tail = f"; {fix}" if fix else ""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise KoGPT2Error(f"{what} {path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}){tail}"
                          ) from None
