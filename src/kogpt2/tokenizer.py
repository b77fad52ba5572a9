"""Korean tokenizers: train (streaming), save and load as Hugging Face tokenizers.

Design (measured in the foundation issue's note):
  * NFC normalisation, then a GPT-2-like split into words with their leading space
    (letters / numbers / punctuation / whitespace runs), spaces kept as real characters
    so decoding is a plain concatenation: ``decode(encode(x)) == x`` for NFC text.
  * Character-level BPE: Hangul syllables are whole symbols before any merge.
  * Byte fallback: characters outside the learned alphabet (rare Hanja, emoji, Jamo,
    control characters) become ``<0xXX>`` byte tokens, so there is never an ``<unk>``.
  * SKT KoGPT2 v2 special-token layout: ``<s>``=0 ``</s>``=1 ``<usr>``=2 ``<pad>``=3
    ``<sys>``=4 ``<unk>``=5 ``<mask>``=6 ``<d>``=7 ``</d>``=8 ``<unused0..99>``=9..108,
    then the 256 byte tokens (109..364), then characters and merges.
    ``bos_token = eos_token = '</s>'`` as in SKT's v2 (documents are joined with ``</s>``).

Normalisation policy: **NFC in**. Every input is NFC-normalised before splitting, so
``decode(encode(x)) == unicodedata.normalize("NFC", x)``: NFC text comes back exactly,
and NFD input (e.g. decomposed Hangul Jamo from macOS file names) encodes like its NFC
form. Nothing else is changed: spaces, tabs, newlines and control characters survive.

Other layouts ``load_tokenizer`` recognises (see ``tokenizer_layout``):
  * ``skt-v2``: SKT KoGPT2 v2's ``tokenizer.json`` (NFKC + Metaspace, same special ids);
    it ships without ``tokenizer_config.json``, so SKT's special tokens are filled in.
  * ``kogpt2-v1``: the Hugging Face conversion of KoGPT2 v1, whose added tokens carry
    ids that collide with vocabulary ids, plus ``<mask>``, ``<unused98..99>`` and
    emoticons that are not in the model's 50,000-entry vocabulary. It is repaired on load:
    added tokens take their vocabulary ids, those outside the vocabulary are dropped
    (they would get ids >= 50,000 that the model cannot embed) and characters outside
    the vocabulary become ``<unk>`` instead of vanishing silently.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator

from kogpt2.errors import KoGPT2Error

SPECIAL_TOKENS: list[str] = (
    ["<s>", "</s>", "<usr>", "<pad>", "<sys>", "<unk>", "<mask>", "<d>", "</d>"]
    + [f"<unused{i}>" for i in range(100)]
)
BYTE_TOKENS: list[str] = [f"<0x{b:02X}>" for b in range(256)]
EOS = "</s>"
EOS_ID = 1
PAD_ID = 3

# GPT-2's split, character-level: words keep their leading space; numbers, punctuation
# and whitespace runs are separate pieces (the last space of a run joins the next word).
SPLIT_PATTERN = r" ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

HF_SPECIALS = dict(bos_token=EOS, eos_token=EOS, unk_token="<unk>", pad_token="<pad>",
                   mask_token="<mask>")


def iter_text_lines(paths: Iterable[str | Path], progress: bool = False,
                    warn: Callable[[str], None] | None = None) -> Iterator[str]:
    """Stream the paragraphs of corpus files, each with a trailing newline so the tokenizer learns ``\\n``.

    The files are read as ``kogpt2 data prepare`` reads them (``kogpt2.data_io``): ``.txt`` and
    ``.jsonl``, gzipped or not; ``<|endoftext|>`` and blank lines are left out; unreadable files and
    lines that are not UTF-8 are skipped, counted and reported to ``warn``.

    Args:
        paths: files, directories (searched for corpus files) or globs.
        progress: show a tqdm bar over the bytes read.
        warn: called with one line per problem (default: printed to stderr as ``note: ...``).
    """
    from kogpt2.data_io import expand_inputs

    # expanded now, not in the generator: a missing path fails before any training starts
    files = expand_inputs([paths] if isinstance(paths, (str, Path)) else list(paths))
    return _paragraph_lines(files, progress, warn or (lambda message: print(f"note: {message}", file=sys.stderr)))


def _paragraph_lines(files: list[Path], progress: bool, warn: Callable[[str], None]) -> Iterator[str]:
    from collections import Counter

    from kogpt2.data_io import iter_documents

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(f.stat().st_size for f in files), unit="B", unit_scale=True, desc="reading")
    try:
        for _, paragraphs in iter_documents(files, Counter(), warn=warn,
                                            on_bytes=bar.update if bar is not None else lambda n: None):
            for paragraph in paragraphs:
                yield paragraph + "\n"
    finally:
        if bar is not None:
            bar.close()


def build_backend(vocab: dict[str, int] | None = None, merges: list | None = None):
    """An empty (or given) ``tokenizers.Tokenizer`` with our normaliser/splitter/decoder."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    if vocab is None:
        model = models.BPE(unk_token="<unk>", byte_fallback=True)
    else:
        model = models.BPE(vocab=vocab, merges=merges or [], unk_token="<unk>", byte_fallback=True)
    tok = Tokenizer(model)
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated")
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    return tok


def train_tokenizer(
    files: Iterable[str | Path] | None = None,
    *,
    vocab_size: int = 51200,
    limit_alphabet: int = 3000,
    min_frequency: int = 2,
    texts: Iterable[str] | None = None,
    out_dir: str | Path | None = None,
    show_progress: bool = True,
):
    """Train a character-level BPE tokenizer with byte fallback by streaming text.

    Args:
        files: text files / directories / globs in the KoGPT2 convention.
        vocab_size: final vocabulary size, specials and the 256 byte tokens included.
        limit_alphabet: most frequent characters kept as base symbols; rarer ones use bytes.
        min_frequency: minimum pair count for a merge.
        texts: alternatively, an iterable of strings (used by tests).
        out_dir: if given, save the HF tokenizer directory there (and check a round trip).

    Returns:
        a ``transformers.PreTrainedTokenizerFast``.
    """
    from tokenizers import trainers

    n_fixed = len(SPECIAL_TOKENS) + len(BYTE_TOKENS)
    if vocab_size <= n_fixed + 16:
        raise KoGPT2Error(f"--vocab-size {vocab_size} is too small; it must exceed {n_fixed + 16} "
                          f"({len(SPECIAL_TOKENS)} special + 256 byte tokens + some characters)")
    if files is None and texts is None:
        raise KoGPT2Error("give text files to train the tokenizer on")
    if isinstance(texts, str):
        raise KoGPT2Error("texts must be an iterable of strings (one per line), not one string; wrap it in a list")
    if texts is None:
        texts = iter_text_lines(files, progress=show_progress)  # type: ignore[arg-type]
    n_lines = 0

    def iterator() -> Iterator[str]:
        nonlocal n_lines
        for line in texts:
            n_lines += 1
            yield line

    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(BYTE_TOKENS),
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        limit_alphabet=limit_alphabet,
        show_progress=show_progress,
    )
    tok = build_backend()
    tok.train_from_iterator(iterator(), trainer=trainer)
    if n_lines == 0:
        raise KoGPT2Error("no text to train on: the input is empty or holds only blank and "
                          "<|endoftext|> lines; give non-empty UTF-8 text files")
    tok = _insert_byte_tokens(tok)
    hf = wrap(tok)
    if out_dir is not None:
        save_tokenizer(hf, out_dir)
    return hf


def _insert_byte_tokens(tok):
    """Re-number the trained vocabulary: specials, then 256 byte tokens, then the rest."""
    data = json.loads(tok.to_str())
    vocab: dict[str, int] = data["model"]["vocab"]
    n_special = len(SPECIAL_TOKENS)
    for i, s in enumerate(SPECIAL_TOKENS):
        if vocab.get(s) != i:
            raise RuntimeError(f"trainer put special token {s} at {vocab.get(s)}, expected {i}")
    new_vocab = {s: i for i, s in enumerate(SPECIAL_TOKENS)}
    new_vocab.update({b: n_special + i for i, b in enumerate(BYTE_TOKENS)})
    for s, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        if i >= n_special and s not in new_vocab:
            new_vocab[s] = len(new_vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in data["model"]["merges"]]
    out = build_backend(new_vocab, merges)
    from tokenizers import AddedToken

    out.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIAL_TOKENS])
    return out


def wrap(backend):
    """Wrap a ``tokenizers.Tokenizer`` as a ``PreTrainedTokenizerFast`` with our specials."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=backend, clean_up_tokenization_spaces=False,
                                   **HF_SPECIALS)


ROUND_TRIP_SAMPLES = [
    "나는 어두운 숲 속을 거닐고 있다.",
    "KoGPT2는 2021년에 공개되었다 — 그리고  공백  두 칸도 지킨다!\n다음 줄\t탭",
    "이모지 😀🇰🇷, 한자 漢字, 자모 ㄱㅏ, 제어문자 \x01 끝",
    "",
]


def save_tokenizer(tokenizer, out_dir: str | Path) -> Path:
    """Save a HF tokenizer directory and check ``decode(encode(x)) == x`` on Korean samples."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out))
    reloaded = load_tokenizer(out)
    for s in ROUND_TRIP_SAMPLES:
        got = reloaded.decode(reloaded.encode(s))
        if got != s:
            raise RuntimeError(f"tokenizer round trip failed after saving to {out}: {s!r} -> {got!r}")
    return out


LAYOUT_OURS = "ours"
LAYOUT_SKT_V2 = "skt-v2"
LAYOUT_KOGPT2_V1 = "kogpt2-v1"
LAYOUT_OTHER = "other"
V1_SPECIALS = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
SKT_MAX_LENGTH = 1024  # n_positions of SKT's published v1 and v2 models


def _resolve_dir(path: str | Path | None) -> Path:
    if path is None:
        from kogpt2.paths import bundled_model_dir

        path = bundled_model_dir()
    from kogpt2.paths import run_checkpoint

    p = Path(path)
    if p.is_file() and p.name.endswith(".json"):
        p = p.parent
    if not (p / "tokenizer.json").is_file() and p.is_dir():
        p = run_checkpoint(p)  # a training run directory: its newest checkpoint's tokenizer
    if not (p / "tokenizer.json").is_file():
        raise KoGPT2Error(f"no tokenizer.json in {p}: give a tokenizer or model directory "
                          "(train one with `kogpt2 tokenizer train`)")
    return p


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KoGPT2Error(f"cannot read {path}: {e}; is it a Hugging Face tokenizer file?") from e


def _pre_tokenizer_types(spec: dict | None) -> list[str]:
    if not spec:
        return []
    if spec.get("type") == "Sequence":
        return [t for sub in spec.get("pretokenizers", []) for t in _pre_tokenizer_types(sub)]
    return [spec.get("type", "")]


def layout_of(data: dict) -> str:
    """Which layout a parsed ``tokenizer.json`` has: ``ours``, ``skt-v2``, ``kogpt2-v1`` or ``other``."""
    model = data.get("model") or {}
    vocab = model.get("vocab")
    if model.get("type") != "BPE" or not isinstance(vocab, dict):
        return LAYOUT_OTHER
    pre = _pre_tokenizer_types(data.get("pre_tokenizer"))
    skt_specials = all(vocab.get(t) == i for i, t in enumerate(SPECIAL_TOKENS))
    if skt_specials and "Split" in pre and all(
            vocab.get(b) == len(SPECIAL_TOKENS) + i for i, b in enumerate(BYTE_TOKENS)):
        return LAYOUT_OURS
    if skt_specials and "Metaspace" in pre:
        return LAYOUT_SKT_V2
    v1_head = ["<s>", "</s>", "<usr>", "<pad>", "<sys>", "<unk>", "<unused0>"]
    if "Metaspace" in pre and "<mask>" not in vocab and all(vocab.get(t) == i for i, t in enumerate(v1_head)):
        return LAYOUT_KOGPT2_V1
    return LAYOUT_OTHER


def tokenizer_layout(path: str | Path) -> str:
    """Describe a tokenizer directory's layout.

    Args:
        path: a tokenizer or model directory (or its ``tokenizer.json``).

    Returns:
        ``"ours"`` (trained by ``train_tokenizer``), ``"skt-v2"`` (SKT KoGPT2 v2),
        ``"kogpt2-v1"`` (the HF conversion of KoGPT2 v1, repaired by ``load_tokenizer``)
        or ``"other"`` (any other HF fast tokenizer, loaded as is).
    """
    return layout_of(_read_json(_resolve_dir(path) / "tokenizer.json"))


def repair_v1_backend(data: dict):
    """A ``tokenizers.Tokenizer`` for KoGPT2 v1 whose ids are the model's vocabulary ids.

    The published file lists 229 added tokens with ids 0..228 that collide with the
    vocabulary (``<mask>`` at 6 where the vocabulary has ``<unused0>``). Added tokens
    found in the vocabulary take their vocabulary id; the others (``<mask>``,
    ``<unused98..99>``, emoticons) are dropped, since the raw library would give them
    ids >= 50,000 outside the model's embedding. Out-of-vocabulary characters become
    ``<unk>`` (id 5) instead of being dropped without a trace.
    """
    from tokenizers import Tokenizer

    data = json.loads(json.dumps(data))
    vocab = data["model"]["vocab"]
    data["added_tokens"] = [dict(t, id=vocab[t["content"]]) for t in data.get("added_tokens", [])
                            if t["content"] in vocab]
    data["model"]["unk_token"] = "<unk>"
    return Tokenizer.from_str(json.dumps(data))


def load_tokenizer(path: str | Path | None = None):
    """Load a tokenizer directory (ours, SKT KoGPT2 v2's, KoGPT2 v1's, or any HF fast tokenizer).

    With no path, the bundled model's tokenizer. Ours and SKT v2 get ``bos = eos = '</s>'``,
    ``<unk>``, ``<pad>``, ``<mask>`` where the directory does not name them (SKT v2 ships
    only ``tokenizer.json``). KoGPT2 v1 is repaired (see ``repair_v1_backend``) with
    ``bos='<s>'``, ``eos='</s>'``. ``save_pretrained`` of the result writes a directory
    that plain ``AutoTokenizer.from_pretrained`` loads with the same ids.
    Decoding never cleans up spaces (``clean_up_tokenization_spaces=False``).
    """
    from transformers import PreTrainedTokenizerFast

    p = _resolve_dir(path)
    layout = layout_of(_read_json(p / "tokenizer.json"))
    if layout == LAYOUT_KOGPT2_V1:
        backend = repair_v1_backend(_read_json(p / "tokenizer.json"))
        return PreTrainedTokenizerFast(tokenizer_object=backend, clean_up_tokenization_spaces=False,
                                       model_max_length=SKT_MAX_LENGTH, **V1_SPECIALS)
    config_file = p / "tokenizer_config.json"
    config = _read_json(config_file) if config_file.is_file() else {}
    extra: dict = {}
    if layout in (LAYOUT_OURS, LAYOUT_SKT_V2):
        extra = {k: v for k, v in HF_SPECIALS.items() if not config.get(k)}
    if layout == LAYOUT_SKT_V2 and "model_max_length" not in config:
        extra["model_max_length"] = SKT_MAX_LENGTH
    if config:
        tok = PreTrainedTokenizerFast.from_pretrained(str(p), **extra)
    else:
        tok = PreTrainedTokenizerFast(tokenizer_file=str(p / "tokenizer.json"),
                                      clean_up_tokenization_spaces=False, **extra)
    tok.clean_up_tokenization_spaces = False
    return tok


def describe_tokenizer(path: str | Path) -> dict[str, str]:
    """A summary of a tokenizer directory for ``kogpt2 tokenizer info``.

    Returns:
        ordered fields: path, layout, type, vocab_size, normalizer, pre_tokenizer,
        special tokens (role = token (id)), the other added special tokens, and hash.
    """
    p = _resolve_dir(path)
    tok = load_tokenizer(p)
    data = json.loads(tok.backend_tokenizer.to_str())
    model = data["model"]
    kind = model["type"] + (" with byte fallback" if model.get("byte_fallback") else "")
    roles = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token")
    named = {r: getattr(tok, r) for r in roles if getattr(tok, r, None) is not None}
    others = [t["content"] for t in data["added_tokens"] if t["special"] and t["content"] not in named.values()]
    return {
        "path": str(p),
        "layout": layout_of(_read_json(p / "tokenizer.json")),
        "type": kind,
        "vocab_size": str(len(tok)),
        "normalizer": _component_name(data.get("normalizer")),
        "pre_tokenizer": _component_name(data.get("pre_tokenizer")),
        "special_tokens": ", ".join(f"{r.removesuffix('_token')}={t} ({tok.convert_tokens_to_ids(t)})"
                                    for r, t in named.items()),
        "other_special_tokens": f"{len(others)}" + (f": {' '.join(others[:8])}{' ...' if len(others) > 8 else ''}"
                                                   if others else ""),
        "hash": tokenizer_hash(tok),
    }


def _component_name(spec: dict | None) -> str:
    if not spec:
        return "none"
    subs = spec.get("normalizers") or spec.get("pretokenizers")
    if spec.get("type") == "Sequence" and subs:
        return " + ".join(_component_name(s) for s in subs)
    return spec.get("type", "?")


def get_kogpt2_tokenizer(path: str | Path | None = None):
    """The familiar name from ``kogpt2-transformers``: load the bundled (or given) tokenizer."""
    return load_tokenizer(path)


def tokenizer_hash(tokenizer) -> str:
    """A stable short hash of a tokenizer's vocabulary and merges (stored beside data shards)."""
    backend = tokenizer.backend_tokenizer if hasattr(tokenizer, "backend_tokenizer") else tokenizer
    data = json.loads(backend.to_str())
    key = json.dumps({"model": data["model"], "added": [(t["id"], t["content"]) for t in data["added_tokens"]],
                      "normalizer": data["normalizer"], "pre_tokenizer": data["pre_tokenizer"]},
                     sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()[:16]
