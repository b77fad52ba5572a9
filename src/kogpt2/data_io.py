"""Reading corpus files for ``kogpt2 data prepare``: paths, formats and bad input.

Accepted inputs (files, directories searched recursively, or globs):
  * ``.txt`` / ``.txt.gz`` in the KoGPT2 convention: one paragraph per line, a line
    holding exactly ``<|endoftext|>`` ends a document (so does the end of the file);
  * ``.jsonl`` / ``.jsonl.gz``: one JSON object per line, its text field (``text`` unless
    told otherwise) is one document whose lines are its paragraphs.

Every line that does not become a paragraph is counted under a reason in ``stats``
(a ``collections.Counter``), and bad files are reported by a warning callback, so that
nothing is dropped silently. Text is NFC-normalised here.
"""

from __future__ import annotations

import glob
import gzip
import json
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

from kogpt2.errors import KoGPT2Error

DOC_SEPARATOR = "<|endoftext|>"
"""A line holding exactly this ends a document in a ``.txt`` corpus."""
SUFFIXES = (".txt", ".txt.gz", ".jsonl", ".jsonl.gz")
_SNIFF_BYTES = 8192
_SEPARATOR_BYTES = DOC_SEPARATOR.encode()

Warn = Callable[[str], None]


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files, directories (recursively, by known suffix) and globs -> sorted unique files.

    Raises:
        KoGPT2Error: a path that does not exist or a glob that matches nothing.
    """
    out: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.name.endswith(SUFFIXES))
            if not found:
                raise KoGPT2Error(f"directory {p} holds no {'/'.join(SUFFIXES)} files; "
                                  "give the corpus files or another directory")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        elif glob.has_magic(str(raw)):
            matches = sorted(Path(m) for m in glob.glob(str(raw), recursive=True) if Path(m).is_file())
            if not matches:
                raise KoGPT2Error(f"glob {raw!r} matches no files; check the pattern (quote it in the shell)")
            out.extend(matches)
        else:
            raise KoGPT2Error(f"input path not found: {p} (give existing files, directories or globs)")
    if not out:
        raise KoGPT2Error("no input files given: name corpus files, directories or globs")
    seen: set[Path] = set()
    unique = []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


def is_jsonl(path: Path) -> bool:
    return path.name.endswith((".jsonl", ".jsonl.gz"))


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def check_file(path: Path, stats: Counter, warn: Warn) -> bool:
    """True if ``path`` looks like readable text; otherwise count and warn why not."""
    try:
        with _open_binary(path) as f:
            head = f.read(_SNIFF_BYTES)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        stats["unreadable_files"] += 1
        warn(f"skipping {path}: cannot read it ({e}); is it a valid (gzip) file?")
        return False
    if not head:
        stats["empty_files"] += 1
        warn(f"skipping {path}: the file is empty")
        return False
    if b"\x00" in head:
        stats["binary_files"] += 1
        warn(f"skipping {path}: it looks binary (NUL bytes), not UTF-8 text")
        return False
    return True


def _decode_lines(path: Path, stats: Counter, warn: Warn, on_bytes: Callable[[int], None]) -> Iterator[str]:
    """Yield the NFC text of each line (line ends removed); invalid UTF-8 lines are counted."""
    n_bad = 0
    try:
        with _open_binary(path) as f:
            for lineno, raw in enumerate(f, 1):
                on_bytes(len(raw))
                stats["lines"] += 1
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    stats["invalid_utf8_lines"] += 1
                    n_bad += 1
                    if n_bad <= 3:
                        warn(f"{path}:{lineno}: invalid UTF-8, line skipped")
                    continue
                yield unicodedata.normalize("NFC", line.rstrip("\r\n"))
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        stats["truncated_files"] += 1
        warn(f"{path}: stopped reading early ({e}); the rest of the file is skipped")
    if n_bad:
        warn(f"{path}: {n_bad} invalid UTF-8 line(s) skipped in all (if the file is CP949/EUC-KR, "
             f"convert it first: iconv -f cp949 -t utf-8)")


def _text_documents(lines: Iterator[str], stats: Counter) -> Iterator[list[str]]:
    doc: list[str] = []
    for line in lines:
        if line.strip() == DOC_SEPARATOR:
            stats["separator_lines"] += 1
            if doc:
                yield doc
            doc = []
        elif line.strip():
            doc.append(line)
        else:
            stats["blank_lines"] += 1
    if doc:
        yield doc


def _jsonl_documents(path: Path, lines: Iterator[str], text_field: str, stats: Counter,
                     warn: Warn) -> Iterator[list[str]]:
    n_bad = 0
    for line in lines:
        if not line.strip():
            stats["blank_lines"] += 1
            continue
        try:
            record = json.loads(line)
            text = record[text_field]
            if not isinstance(text, str):
                raise TypeError(f"field {text_field!r} is {type(text).__name__}, not a string")
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            reason = "missing_text_field_lines" if isinstance(e, (KeyError, TypeError)) else "invalid_json_lines"
            stats[reason] += 1
            n_bad += 1
            if n_bad <= 3:
                warn(f"{path}: skipped a line ({reason.replace('_', ' ')[:-6]}: {e}); "
                     f"the text field is chosen with --text-field")
            continue
        text = unicodedata.normalize("NFC", text)
        paragraphs = []
        for p in text.split("\n"):
            p = p.rstrip("\r")
            if p.strip():
                paragraphs.append(p)
        if paragraphs:
            yield paragraphs
        else:
            stats["empty_text_lines"] += 1


def iter_documents(files: list[Path], stats: Counter, *, text_field: str = "text",
                   warn: Warn = print, on_bytes: Callable[[int], None] = lambda n: None,
                   ) -> Iterator[tuple[Path, list[str]]]:
    """Stream ``(file, paragraphs)`` for every document of every readable file.

    Args:
        files: expanded input files (see ``expand_inputs``).
        stats: counter updated with input totals and skip reasons.
        text_field: the JSON field holding the text in ``.jsonl`` inputs.
        warn: called with a one-line message for each bad file or line.
        on_bytes: called with the number of (uncompressed) bytes read, for progress.
    """
    for path in files:
        if not check_file(path, stats, warn):
            continue
        stats["files"] += 1
        lines = _decode_lines(path, stats, warn, on_bytes)
        if is_jsonl(path):
            docs = _jsonl_documents(path, lines, text_field, stats, warn)
        else:
            docs = _text_documents(lines, stats)
        for doc in docs:
            yield path, doc
