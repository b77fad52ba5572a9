"""The PPLM discriminator: a linear head on a frozen LM's mean last-layer hidden state.

Trained on labelled sentences (NSMC movie reviews: ``id<TAB>document<TAB>label`` with a
header, 0 = negative, 1 = positive)::

    kogpt2 pplm train-discrim --data ../shared/data/nsmc/ratings_train.txt --out runs/discrim --model runs/mini

The LM stays frozen, so each sentence's features (the mean hidden state over its tokens,
shape (C,)) are computed once and the head is trained on them full-batch. The head only
makes sense with the LM it was trained on: its directory records that model.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from kogpt2.errors import KoGPT2Error

CLASSES = ["negative", "positive"]  # NSMC label 0, 1
HEAD_FILE = "discriminator.safetensors"
META_FILE = "discriminator.json"


class Discriminator(torch.nn.Module):
    """``Linear(n_embd, n_classes)`` applied to a mean hidden state (B, C) -> logits (B, K)."""

    def __init__(self, n_embd: int, classes: Sequence[str]):
        super().__init__()
        self.classes = list(classes)
        self.linear = torch.nn.Linear(n_embd, len(self.classes))

    def forward(self, mean_hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(mean_hidden)

    def save(self, out: str | Path, **meta: Any) -> Path:
        """Write ``discriminator.safetensors`` and ``discriminator.json`` (classes + ``meta``)."""
        from safetensors.torch import save_file

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(out / HEAD_FILE))
        info = {"classes": self.classes, "n_embd": self.linear.in_features, **meta}
        (out / META_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
        return out

    @classmethod
    def load(cls, path: str | Path) -> "Discriminator":
        """Load a head written by :meth:`save` (``kogpt2 pplm train-discrim``)."""
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / META_FILE).is_file() or not (path / HEAD_FILE).is_file():
            raise KoGPT2Error(f"{path} is not a discriminator directory (no {META_FILE} / {HEAD_FILE}); "
                              "train one with `kogpt2 pplm train-discrim --data FILE --out DIR`")
        from kogpt2.model_dir import safetensors_shapes
        from kogpt2.textio import read_json

        info = read_json(path / META_FILE, "discriminator", fix="re-run `kogpt2 pplm train-discrim`")
        safetensors_shapes(path / HEAD_FILE)  # a clear error for a truncated head
        head = cls(int(info["n_embd"]), info["classes"])
        head.load_state_dict(load_file(str(path / HEAD_FILE)))
        head.meta = info
        return head.eval()


# ---------------------------------------------------------------------------- data

def read_labelled(path: str | Path) -> tuple[list[tuple[str, int]], Any]:
    """(text, label) pairs of an NSMC-style file (``kogpt2.sentiment.read_nsmc``: header, no quoting),
    and the ``ReadReport`` that counts the rows left out and why."""
    from kogpt2.sentiment import read_nsmc

    texts, labels, report = read_nsmc(path)
    return list(zip(texts, labels)), report


def balanced_sample(rows: list[tuple[str, int]], n: int, seed: int = 0) -> list[tuple[str, int]]:
    """At most ``n`` rows, as many of each label as possible, shuffled with ``seed``."""
    rng = random.Random(seed)
    by = {0: [r for r in rows if r[1] == 0], 1: [r for r in rows if r[1] == 1]}
    for v in by.values():
        rng.shuffle(v)
    half = n // 2
    take = by[0][:half] + by[1][:n - min(half, len(by[0]))]
    rng.shuffle(take)
    return take[:n]


# ---------------------------------------------------------------------------- features, training

@torch.no_grad()
def mean_hidden_states(model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 32,
                       max_tokens: int = 64, progress: bool = False) -> torch.Tensor:
    """(N, C) mean last-layer hidden state of each text (tokens without special tokens)."""
    from tqdm import tqdm

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"][:max_tokens] or [tokenizer.eos_token_id]
               for t in texts]
    # NOTE: batches of similar length waste little on padding (NSMC: ~4x faster than text order)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    feats = []
    for i in tqdm(range(0, len(order), batch_size), disable=not progress, desc="features", unit="batch"):
        enc = [encoded[k] for k in order[i:i + batch_size]]
        width = max(len(e) for e in enc)
        ids = torch.full((len(enc), width), pad, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for j, e in enumerate(enc):
            ids[j, :len(e)] = torch.tensor(e)
            mask[j, :len(e)] = 1
        ids, mask = ids.to(model.device), mask.to(model.device)
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, logits_to_keep=1)
        h = out.hidden_states[-1].float() * mask[..., None]  # (B, T, C)
        feats.append((h.sum(1) / mask.sum(1, keepdim=True)).cpu())
    out = torch.empty(len(order), model.config.hidden_size)
    if feats:
        out[order] = torch.cat(feats)  # back to the order of ``texts``
    return out


@dataclass
class TrainResult:
    """Accuracy of a trained head."""

    train_examples: int
    valid_examples: int
    train_accuracy: float
    valid_accuracy: float


def fit_head(features: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], *, epochs: int = 300,
             lr: float = 0.01, weight_decay: float = 1e-4, seed: int = 0) -> Discriminator:
    """Train the linear head full-batch with Adam on precomputed features (N, C), labels (N,)."""
    torch.manual_seed(seed)
    head = Discriminator(features.shape[1], classes)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(head(features), labels).backward()
        opt.step()
    return head.eval()


def accuracy(head: Discriminator, features: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((head(features).argmax(-1) == labels).float().mean()) if len(labels) else float("nan")


@dataclass
class DiscrimTrainConfig:
    """How ``train_discriminator`` samples the data and fits the head (``kogpt2 pplm train-discrim`` flags)."""

    max_examples: int = 10000
    """A balanced random sample of this many labelled rows is used."""
    valid_fraction: float = 0.1
    """Share of the sample held out to measure accuracy."""
    epochs: int = 300
    """Full-batch Adam steps on the head."""
    lr: float = 0.01
    """Learning rate of the head."""
    batch_size: int = 32
    """Texts per forward pass when the frozen model computes their features."""
    seed: int = 0
    """Seed of the sample and of the head's initialisation."""

    def __post_init__(self) -> None:
        from kogpt2.validate import number_problems

        p = number_problems(max_examples=(self.max_examples, ">= 2"), valid_fraction=(self.valid_fraction, ">= 0 < 1"),
                            epochs=(self.epochs, ">= 1"), lr=(self.lr, "> 0"), batch_size=(self.batch_size, ">= 1"))
        if p:
            raise KoGPT2Error("invalid discriminator training options: " + "; ".join(p))


def train_discriminator(rows: list[tuple[str, int]], out: str | Path, model: Any = None,
                        config: DiscrimTrainConfig | None = None, *, progress: bool = True,
                        device: str | torch.device | None = None, **fields: Any) -> TrainResult:
    """Train a positive/negative head for ``model`` (None = bundled) on ``rows`` and save it to ``out``.

    Args:
        rows: (text, label) pairs, label 0 = negative, 1 = positive.
        out: directory to write.
        model: model directory, None (bundled), or a loaded HF model (then pass a tokenizer via
            ``kogpt2.generation.api.load`` first).
        config: sampling and fitting options; or give its fields as keywords
            (``valid_fraction=0.25, epochs=50``).
        device: where the model computes the features (``kogpt2.devices.resolve_device``; None = the CPU,
            or where a loaded model is).
    """
    cfg = config if config is not None else DiscrimTrainConfig(**fields)
    from kogpt2.generation.api import load
    from kogpt2.generation.torch_decoder import TorchDecoder

    decoder, tok = load(model, device=device)
    if not isinstance(decoder, TorchDecoder):
        raise KoGPT2Error("train-discrim needs a PyTorch model directory")
    data = balanced_sample(rows, cfg.max_examples, cfg.seed)
    feats = mean_hidden_states(decoder.model, tok, [t for t, _ in data], batch_size=cfg.batch_size,
                               progress=progress)
    labels = torch.tensor([y for _, y in data])
    n_valid = int(len(data) * cfg.valid_fraction)
    head = fit_head(feats[n_valid:], labels[n_valid:], CLASSES, epochs=cfg.epochs, lr=cfg.lr, seed=cfg.seed)
    result = TrainResult(train_examples=len(data) - n_valid, valid_examples=n_valid,
                         train_accuracy=accuracy(head, feats[n_valid:], labels[n_valid:]),
                         valid_accuracy=accuracy(head, feats[:n_valid], labels[:n_valid]))
    base = getattr(decoder, "model_dir", None) or (str(model) if isinstance(model, (str, Path)) else None)
    from kogpt2.finetune import base_name, model_fingerprint

    head.save(out, base_model=base_name(Path(base)) if base else ("bundled" if model is None else None),
              base_fingerprint=model_fingerprint(decoder.model), **asdict(result))
    return result


__all__ = ["Discriminator", "CLASSES", "read_labelled", "balanced_sample", "mean_hidden_states", "fit_head",
           "accuracy", "train_discriminator", "TrainResult", "DiscrimTrainConfig"]
