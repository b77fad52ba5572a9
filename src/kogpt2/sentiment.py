"""Korean sentiment: GPT-2 sequence classification (NSMC), and a zero-shot likelihood baseline.

The classifier reads ``</s> review </s>`` and classifies the hidden state of the last real
token (``pool_last``): with right padding that is the last unmasked position, with left
padding the final one; position ids skip the padding, so a padded batch gives the same
logits as each review alone. Fine-tuning trains LoRA adapters plus the linear head by
default (a small directory), or every weight with ``--full``.

    kogpt2 finetune sentiment --data ../shared/data/nsmc/ratings_train.txt --model runs/mini --out runs/sent
    kogpt2 classify "정말 재미있는 영화였다" --head runs/sent
    kogpt2 eval sentiment --data ../shared/data/nsmc/ratings_test.txt --head runs/sent
    kogpt2 eval sentiment --data ../shared/data/nsmc/ratings_test.txt --model runs/mini --zero-shot

A head directory loads on its own (the PPLM discriminator reuses it)::

    from kogpt2.sentiment import load_classifier
    clf = load_classifier("runs/sent")          # base model found from the head's record
    clf.classify(["최고의 영화", "시간 아깝다"])  # [Prediction('positive', 0.97), Prediction('negative', 0.95)]
    clf.predict_proba(texts)                    # (N, 2) tensor, columns = clf.labels
    clf.logits(input_ids, attention_mask)       # differentiable (B, 2)
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import torch

from kogpt2.errors import KoGPT2Error
from kogpt2.finetune.batching import ReadReport

LABELS = ("negative", "positive")
"""NSMC labels: 0 negative, 1 positive."""
NSMC_HEADER = ["id", "document", "label"]


def bundled_head_dir() -> Path:
    """Where the sentiment head for the bundled model is shipped."""
    from kogpt2.paths import PACKAGE_DIR

    return PACKAGE_DIR / "models" / "kogpt2-small-sentiment"


class Prediction(NamedTuple):
    """One classified text: the label name and its probability."""

    label: str
    prob: float


# ----------------------------------------------------------------------------- data


def read_nsmc(path: str | Path) -> tuple[list[str], list[int], ReadReport]:
    """Read an NSMC file: a header, then ``id<TAB>document<TAB>label`` lines with no quoting.

    Rows with a wrong field count, an empty document, or a label other than 0/1 are counted
    in the report and left out.

    Raises:
        KoGPT2Error: missing file, wrong header, or no usable row.
    """
    from kogpt2.textio import read_text

    p = Path(path)
    report = ReadReport(str(p))
    texts: list[str] = []
    labels: list[int] = []
    with io.StringIO(read_text(p, "sentiment data"), newline="") as f:
        header = f.readline().rstrip("\r\n").split("\t")
        if header != NSMC_HEADER:
            raise KoGPT2Error(f"{p}: the first line must be the header id<TAB>document<TAB>label, "
                              f"found {'<TAB>'.join(header)!r}")
        for n, raw in enumerate(f, start=2):
            report.rows += 1
            fields = raw.rstrip("\r\n").split("\t")
            if len(fields) != 3:
                report.add_bad(f"{len(fields)} fields instead of 3", n)
            elif not fields[1].strip():
                report.add_bad("empty document", n)
            elif fields[2].strip() not in ("0", "1"):
                report.add_bad("label outside 0/1", n)
            else:
                texts.append(fields[1].strip())
                labels.append(int(fields[2]))
    report.kept = len(texts)
    if not texts:
        raise KoGPT2Error(f"no usable review in {p}: {report}")
    return texts, labels, report


def encode_text(tokenizer, text: str, max_len: int) -> list[int]:
    """``</s> text </s>``: the document start of pretraining, and an end marker to pool on; the
    text is cut to ``max_len - 2`` tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max_len - 2]
    return [tokenizer.eos_token_id] + ids + [tokenizer.eos_token_id]


# ----------------------------------------------------------------------------- pooling


def pool_last(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hidden state of each row's last real token.

    hidden: (B, T, C); mask: (B, T), 1 on real tokens, left or right padding (or none).
    Returns (B, C).
    """
    positions = torch.arange(mask.size(1), device=mask.device)  # (T,)
    last = (positions * mask).argmax(-1)  # (B,) rightmost unmasked index
    return hidden[torch.arange(hidden.size(0), device=hidden.device), last]


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) positions that skip left padding (0 at each row's first real token)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def cls_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) logits of a HF ``*ForSequenceClassification`` (GPT-2 / GPT-Neo), pooled by :func:`pool_last`.

    ``model`` may be wrapped by ``peft``; the transformer body and the ``score`` head are used directly.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(inner, inner.base_model_prefix)
    hidden = body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                  use_cache=False).last_hidden_state  # (B, T, C)
    return inner.score(pool_last(hidden, attention_mask)).float()


# ----------------------------------------------------------------------------- classifiers


class Classifier:
    """A fine-tuned sentiment classifier (from :func:`load_classifier`).

    Attributes:
        model: HF sequence-classification model (adapters merged), eval mode.
        tokenizer: its tokenizer.
        labels: label names, the columns of :meth:`predict_proba`.
        max_len: tokens per text at most (as in training).
    """

    def __init__(self, model, tokenizer, labels: Sequence[str] = LABELS, max_len: int = 64):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.labels, self.max_len = tuple(labels), max_len

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) logits of token ids (left or right padded); differentiable."""
        dev = next(self.model.parameters()).device
        return cls_logits(self.model, input_ids.to(dev), attention_mask.to(dev)).float()

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask), each (B, T), right-padded."""
        from kogpt2.finetune.batching import pad_right

        return pad_right([encode_text(self.tokenizer, t, self.max_len) for t in texts], self.tokenizer.pad_token_id)

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """(N, L) probabilities of each label (columns in ``self.labels`` order)."""
        texts = _check_texts(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths together
        out = torch.empty((len(texts), len(self.labels)))
        for k in range(0, len(order), batch_size):
            idx = order[k:k + batch_size]
            ids, mask = self.encode([texts[i] for i in idx])
            out[idx] = self.logits(ids, mask).softmax(-1).cpu()
        return out

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """The most probable label of each text and its probability."""
        return _predictions(self.predict_proba(texts), self.labels)

    __call__ = classify


class ZeroShotClassifier:
    """Sentiment from a plain language model: which continuation of the review is more likely.

    Each review becomes ``</s> review`` + :attr:`TEMPLATE`; a label's score is the log of the
    summed likelihood of its :attr:`VERBALIZERS`. Scores are calibrated by subtracting those of
    an empty review (contextual calibration, Zhao et al. 2021), which removes the model's prior
    for one word over the other.
    """

    TEMPLATE = "\n한 줄 평: 이 영화는"
    VERBALIZERS = {"negative": (" 최악이다", " 재미없다", " 별로다", " 지루하다"),
                   "positive": (" 최고다", " 재미있다", " 좋다", " 감동적이다")}

    def __init__(self, lm, tokenizer, max_len: int = 64, calibrate: bool = True):
        self.lm, self.tokenizer, self.max_len = lm.eval(), tokenizer, max_len
        self.labels = LABELS
        self.verbs = [[tokenizer(v, add_special_tokens=False)["input_ids"] for v in self.VERBALIZERS[name]]
                      for name in self.labels]
        self.template = tokenizer(self.TEMPLATE, add_special_tokens=False)["input_ids"]
        self.prior = self._scores([""])[0] if calibrate else torch.zeros(len(self.labels))

    def _scores(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, L) uncalibrated log-likelihood scores."""
        from kogpt2.finetune.batching import pad_right

        eos = self.tokenizer.eos_token_id
        seqs, spans = [], []
        for t in texts:
            prefix = [eos] + self.tokenizer(t, add_special_tokens=False)["input_ids"][: self.max_len] + self.template
            for verbs in self.verbs:
                for v in verbs:
                    seqs.append(prefix + v)
                    spans.append((len(prefix), len(v)))
        ids, mask = pad_right(seqs, self.tokenizer.pad_token_id)
        dev = next(self.lm.parameters()).device
        ids, mask = ids.to(dev), mask.to(dev)
        logp = self.lm(input_ids=ids, attention_mask=mask, use_cache=False).logits.float().log_softmax(-1)
        tok_lp = logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]  # (S, T-1): log p(token t+1)
        seq_lp = torch.stack([tok_lp[i, s - 1:s - 1 + n].sum() for i, (s, n) in enumerate(spans)])
        per_text = seq_lp.view(len(texts), -1)
        sizes = [len(v) for v in self.verbs]
        return torch.stack([c.logsumexp(-1) for c in per_text.split(sizes, dim=-1)], dim=-1).cpu()

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str], batch_size: int = 16) -> torch.Tensor:
        """(N, L) probabilities (calibrated softmax over the label scores)."""
        texts = _check_texts(texts)
        out = [self._scores(texts[k:k + batch_size]) - self.prior for k in range(0, len(texts), batch_size)]
        return torch.cat(out).softmax(-1)

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        return _predictions(self.predict_proba(texts), self.labels)

    __call__ = classify


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, (list, tuple)):
        raise KoGPT2Error(f"give a text or a list of texts to classify, got {type(texts).__name__}")
    texts = list(texts)
    if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
        raise KoGPT2Error("give one or more non-empty texts to classify")
    return texts


def _predictions(probs: torch.Tensor, labels: Sequence[str]) -> list[Prediction]:
    best = probs.argmax(-1)
    return [Prediction(labels[int(b)], round(float(p[b]), 4)) for b, p in zip(best, probs)]


# ----------------------------------------------------------------------------- loading


def load_classifier(path: str | Path | None = None, model: str | Path | None = None) -> Classifier:
    """Load a sentiment head written by ``kogpt2 finetune sentiment``.

    Args:
        path: the head directory (None = the bundled ``kogpt2-small-sentiment``).
        model: base model for a LoRA head (default: the base recorded in the head, else the
            bundled model); its fingerprint must match the one the head was trained on.

    Raises:
        KoGPT2Error: not a sentiment head, or a head for a different base model.
    """
    from transformers import AutoModelForSequenceClassification

    from kogpt2.finetune.base import adapter_base, check_base, quiet_transformers, read_meta
    from kogpt2.tokenizer import load_tokenizer

    if path is None:
        path = bundled_head_dir()
        if not (path / "kogpt2_finetune.json").is_file():
            raise KoGPT2Error(f"no sentiment head is installed ({path} is missing); pass --head DIR "
                              "(train one with `kogpt2 finetune sentiment`) or use --zero-shot")
    meta = read_meta(path, "sentiment")
    labels = meta.get("labels", list(LABELS))
    if meta["mode"] == "full":
        if model is not None:
            raise KoGPT2Error(f"{path} is a fully fine-tuned classifier; drop --model")
        with quiet_transformers():
            clf = AutoModelForSequenceClassification.from_pretrained(str(path))
        return Classifier(clf, load_tokenizer(path), labels, meta["max_len"])
    base = adapter_base(meta, model)
    clf = classifier_from_base(base, len(labels))
    check_base(meta, clf, path, base)
    from peft import PeftModel

    with quiet_transformers():
        merged = PeftModel.from_pretrained(clf, str(path)).merge_and_unload()
    return Classifier(merged, load_tokenizer(base), labels, meta["max_len"])


def classifier_from_base(base: Path, num_labels: int):
    """A ``*ForSequenceClassification`` with the base LM's body and a fresh head."""
    from transformers import AutoModelForSequenceClassification

    from kogpt2.finetune.base import quiet_transformers

    with quiet_transformers():
        return AutoModelForSequenceClassification.from_pretrained(
            str(base), num_labels=num_labels, id2label=dict(enumerate(LABELS)),
            label2id={l: i for i, l in enumerate(LABELS)}, dtype=torch.float32)


def load_zero_shot(model: str | Path | None = None) -> ZeroShotClassifier:
    """The zero-shot classifier on a causal LM directory (None = bundled model)."""
    from kogpt2.finetune.base import resolve_base
    from kogpt2.model import load_model
    from kogpt2.tokenizer import load_tokenizer

    base = resolve_base(model)
    return ZeroShotClassifier(load_model(base), load_tokenizer(base))


# ----------------------------------------------------------------------------- evaluation


def accuracy(clf: Any, texts: Sequence[str], labels: Sequence[int], batch_size: int = 64,
             progress: bool = True) -> float:
    """Fraction of ``texts`` whose most probable label index equals ``labels``."""
    from tqdm import tqdm

    correct = 0
    bar = tqdm(total=len(texts), disable=not progress, desc="classify", unit="review", dynamic_ncols=True)
    for k in range(0, len(texts), batch_size * 4):
        probs = clf.predict_proba(texts[k:k + batch_size * 4])
        correct += int((probs.argmax(-1) == torch.tensor(labels[k:k + batch_size * 4])).sum())
        bar.update(len(probs))
    bar.close()
    return correct / len(texts)


def evaluate_sentiment(data: str | Path, head: str | Path | None = None, model: str | Path | None = None,
                       zero_shot: bool = False, max_examples: int | None = None,
                       progress: bool = True, device: torch.device | None = None) -> dict:
    """Accuracy of a head (or the zero-shot baseline) on the first ``max_examples`` reviews of ``data``
    (on ``device``: ``kogpt2.devices.resolve_device``; None = the CPU)."""
    from kogpt2.devices import place

    texts, labels, report = read_nsmc(data)
    if max_examples:
        texts, labels = texts[:max_examples], labels[:max_examples]
    clf = load_zero_shot(model) if zero_shot else load_classifier(head, model)
    if device is not None:
        if zero_shot:
            clf.lm = place(clf.lm, device)
        else:
            clf.model = place(clf.model, device)
    acc = accuracy(clf, texts, labels, progress=progress)
    return {"accuracy": acc, "examples": len(texts), "report": str(report),
            "method": "zero-shot" if zero_shot else "fine-tuned head"}
