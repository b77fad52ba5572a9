"""Shared hermetic fixtures: a tokenizer trained in the test session and a tiny random GPT-2.

Nothing here touches the network; ``SHARED`` points at ``../shared`` beside the checkout
for the tests that read the real corpus or anchor tokenizers (skipped when absent).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = ROOT.parent / "shared"
KOREAN_TXT = FIXTURES / "korean_sentences.txt"


def korean_lines() -> list[str]:
    """The fixture sentences written for these tests (separator lines dropped)."""
    return [l for l in KOREAN_TXT.read_text(encoding="utf-8").splitlines() if l and l != "<|endoftext|>"]


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """A 600-token tokenizer trained on the fixture sentences, saved as a HF directory."""
    from kogpt2.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tiny_tok")
    train_tokenizer([KOREAN_TXT], vocab_size=600, min_frequency=1, out_dir=out, show_progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir):
    from kogpt2.tokenizer import load_tokenizer

    return load_tokenizer(tiny_tokenizer_dir)


def make_tiny_model_dir(out: Path, tokenizer, n_layer: int = 2, n_embd: int = 32, n_head: int = 2,
                        n_positions: int = 128, seed: int = 0) -> Path:
    """Save a random 2-layer GPT-2 with ``tokenizer`` as a complete HF model directory."""
    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                     n_head=n_head, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id)
    model = GPT2LMHeadModel(cfg).eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    GenerationConfig(bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id,
                     pad_token_id=cfg.pad_token_id).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A random 2-layer GPT-2 (32 wide, 128 positions) directory with the tiny tokenizer."""
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny_model"), tiny_tokenizer)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout; tests needing it skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the checkout")
    return SHARED


@pytest.fixture(autouse=True, scope="session")
def _private_export_cache(tmp_path_factory):
    """Keep ONNX auto-exports out of the user's ~/.cache so `--backend auto` is decided by the test."""
    import os

    old = os.environ.get("KOGPT2_CACHE")
    os.environ["KOGPT2_CACHE"] = str(tmp_path_factory.mktemp("kogpt2-cache"))
    yield
    if old is None:
        os.environ.pop("KOGPT2_CACHE", None)
    else:
        os.environ["KOGPT2_CACHE"] = old


class ScoreLog:
    """A logits processor that records each row's scores under its token sequence (padding cut)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id, self.scores = pad_id, {}

    def __call__(self, input_ids, scores):
        for ids, row in zip(input_ids.tolist(), scores):
            start = next(i for i, t in enumerate(ids) if t != self.pad_id)
            self.scores[tuple(ids[start:])] = row.clone()
        return scores
