"""Document-level text filters of the data pipeline: markup cleaning, exclude rules, MinHash.

``clean_paragraph`` removes the markup that survives in Korean web corpora: MediaWiki
(``[[링크|글]]``, ``'''굵게'''``, ``{{틀}}``, ``<ref>``, ``== 제목 ==``), namuwiki
(``[* 각주]``, ``{{{+1 글}}}``, ``[include(...)]``, ``[목차]``, ``||`` table rows),
HTML tags / comments / entities and Tistory ``[##_..._##]`` media blocks. Text that is
not markup is left untouched (``<기생충>`` or ``a < b`` stay).
"""

from __future__ import annotations

import html
import re
import unicodedata
from pathlib import Path

from kogpt2.errors import KoGPT2Error

_HTML_TAGS = ("a|abbr|b|big|blockquote|br|center|code|del|div|em|font|gallery|h[1-6]|hr|i|img|ins|li|"
              "math|nowiki|ol|p|poem|pre|ref|references|s|small|span|strike|strong|sub|sup|table|"
              "tbody|td|th|tr|tt|u|ul|onlyinclude|includeonly|noinclude|syntaxhighlight|source")
_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"<!--.*?(-->|$)"), ""),                                     # HTML comment
    (re.compile(r"<ref[^<>]*/>|<ref[^<>]*>.*?(</ref>|$)", re.I), ""),          # footnote refs
    (re.compile(r"<br\s*/?>", re.I), " "),
    (re.compile(rf"</?(?:{_HTML_TAGS})(?:\s[^<>]*)?/?>", re.I), ""),          # HTML tags
    (re.compile(r"\[##_.*?_##\]"), ""),                                      # Tistory media
    (re.compile(r"\[\[(?:파일|File|그림|Image|분류|Category):[^\]]*\]\]", re.I), ""),
    (re.compile(r"\[\[(?:[^\[\]|]*\|)?([^\[\]|]*)\]\]"), r"\1"),               # [[target|text]]
    (re.compile(r"\[\*[^\]]*\]"), ""),                                       # namuwiki [* note]
    (re.compile(r"\[(?:include|youtube|nicovideo|anchor|age|dday|date|datetime|pagecount)\([^)]*\)\]",
                re.I), ""),
    (re.compile(r"\[(?:목차|tableofcontents|각주|footnote|clearfix)\]", re.I), ""),
    (re.compile(r"\[br\]", re.I), " "),
    (re.compile(r"\{\{\{#!(?:html|wiki|folding|syntax)[^\s]*\s?"), ""),        # namuwiki blocks
    (re.compile(r"\{\{\{(?:[+-][1-5]|#[0-9a-zA-Z,]+)\s"), ""),               # size / colour
    (re.compile(r"\{\{\{|\}\}\}"), ""),
    (re.compile(r"\{\{[^{}]*\}\}"), ""),                                     # MediaWiki templates
    (re.compile(r"'''''(.+?)'''''|'''(.+?)'''|''(.+?)''"), r"\1\2\3"),          # bold / italic
    # NOTE: namuwiki's inline ~~strike~~, __underline__, ^^sup^^, ,,sub,, are NOT handled:
    # on Korean comments "좋아요~~ 최고~~" and "^^" emoticons are far more common (measured:
    # those rules changed ~600 ordinary paragraphs of ../shared/data/text).
    (re.compile(r"^\s*(={1,6})\s*(.*?)\s*\1\s*$"), r"\2"),                     # == heading ==
]
_TABLE_ROW = re.compile(r"^\s*(?:\|\||!|\|)")  # a namuwiki / MediaWiki table row
_TABLE_CELL = re.compile(r"\s*\|\|\s*")
_SPACES = re.compile(r"[ \t]{2,}")


def clean_paragraph(text: str) -> str:
    """One paragraph without wiki / namuwiki markup or HTML remnants (unchanged if none)."""
    out = html.unescape(text) if "&" in text else text
    for pattern, repl in _RULES:
        out = pattern.sub(repl, out)
    if _TABLE_ROW.match(out):
        out = _TABLE_CELL.sub(" ", out)
    if out == text:
        return text
    return unicodedata.normalize("NFC", _SPACES.sub(" ", out).strip())  # entities may decompose


# ---------------------------------------------------------------------------

class ExcludeRules:
    """Documents to remove: ``title:T`` (first line equals T), ``regex:R``, or a plain phrase."""

    def __init__(self, rules: list[str]) -> None:
        self.titles: set[str] = set()
        self.phrases: list[str] = []
        regexes: list[str] = []
        for rule in rules:
            rule = rule.strip()
            if not rule or rule.startswith("#"):
                continue
            if rule.startswith("title:"):
                self.titles.add(rule[len("title:"):].strip())
            elif rule.startswith("regex:"):
                pattern = rule[len("regex:"):]
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise KoGPT2Error(f"bad exclude regex {pattern!r}: {e}") from None
                regexes.append(f"(?:{pattern})")
            elif rule.startswith("phrase:"):
                self.phrases.append(rule[len("phrase:"):])
            else:
                self.phrases.append(rule)
        self.regex = re.compile("|".join(regexes)) if regexes else None

    def matches(self, paragraphs: list[str]) -> bool:
        """True if the document (its paragraphs, first = title) must be excluded."""
        if paragraphs and paragraphs[0].strip() in self.titles:
            return True
        if not (self.phrases or self.regex):
            return False
        text = "\n".join(paragraphs)
        if any(p in text for p in self.phrases):
            return True
        return bool(self.regex and self.regex.search(text))


def read_exclude_file(path: str | Path) -> list[str]:
    """Exclude rules from a UTF-8 file, one per line (``#`` comments and blank lines ignored)."""
    from kogpt2.textio import read_text

    lines = read_text(path, "exclude file").splitlines()
    return [l for l in lines if l.strip() and not l.lstrip().startswith("#")]


# ---------------------------------------------------------------------------

class NearDeduper:
    """Streaming near-duplicate detector: MinHash LSH over character 5-gram shingles.

    A document is a near duplicate if its estimated Jaccard similarity with a document
    kept earlier is >= ``threshold`` (LSH candidates are re-checked on their MinHash).
    """

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, ngram: int = 5, seed: int = 1) -> None:
        try:
            from datasketch import MinHash, MinHashLSH
        except ImportError:
            raise KoGPT2Error("near-duplicate removal needs datasketch: "
                              "pip install 'kogpt2[near-dedup]' (or drop --near-dedup)") from None
        self._MinHash = MinHash
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.threshold, self.num_perm, self.ngram, self.seed = threshold, num_perm, ngram, seed
        self.kept: dict[int, object] = {}

    def _minhash(self, text: str):
        s = " ".join(text.split())
        n = self.ngram
        shingles = {s[i:i + n] for i in range(max(1, len(s) - n + 1))}
        m = self._MinHash(num_perm=self.num_perm, seed=self.seed)
        m.update_batch([g.encode("utf-8") for g in shingles])
        return m

    def is_duplicate(self, text: str) -> bool:
        """True if ``text`` nearly duplicates an earlier kept text; otherwise remember it."""
        m = self._minhash(text)
        for key in self.lsh.query(m):
            if m.jaccard(self.kept[key]) >= self.threshold:
                return True
        key = len(self.kept)
        self.kept[key] = m
        self.lsh.insert(key, m)
        return False
