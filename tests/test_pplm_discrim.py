"""PPLM discriminator heads: balanced sampling, the linear head, and its saved directory."""

from __future__ import annotations

import pytest
import torch

from kogpt2.errors import KoGPT2Error
from kogpt2.pplm_discrim import CLASSES, Discriminator, accuracy, balanced_sample, fit_head, mean_hidden_states


def test_balanced_sample_takes_both_labels_evenly_and_is_seeded():
    rows = [(f"neg {i}", 0) for i in range(30)] + [(f"pos {i}", 1) for i in range(5)]
    got = balanced_sample(rows, 8, seed=1)
    assert len(got) == 8 and sum(y for _, y in got) == 4
    assert got == balanced_sample(rows, 8, seed=1) and got != balanced_sample(rows, 8, seed=2)
    assert sum(y for _, y in balanced_sample(rows, 20)) == 5  # fewer positives than half: all of them


def test_fit_head_separates_separable_features():
    torch.manual_seed(0)
    labels = torch.arange(64) % 2
    feats = torch.randn(64, 8) + labels[:, None] * 3.0  # class 1 shifted along every axis
    head = fit_head(feats, labels, CLASSES, epochs=100)
    assert accuracy(head, feats, labels) >= 0.95  # a few points overlap
    untrained = Discriminator(8, CLASSES)
    loss = lambda h: float(torch.nn.functional.cross_entropy(h(feats), labels))  # noqa: E731
    assert loss(head) < 0.5 * loss(untrained)


def test_save_and_load_round_trip_with_metadata(tmp_path):
    head = Discriminator(8, CLASSES)
    head.save(tmp_path / "d", base_model="kogpt2-small", base_fingerprint="abc")
    again = Discriminator.load(tmp_path / "d")
    assert again.classes == list(CLASSES) and again.meta["base_fingerprint"] == "abc"
    x = torch.randn(3, 8)
    torch.testing.assert_close(again(x), head(x))
    with pytest.raises(KoGPT2Error, match="not a discriminator directory"):
        Discriminator.load(tmp_path)


def test_features_keep_text_order_across_length_sorted_batches(tiny_model_dir):
    from kogpt2.generation import api

    decoder, tok = api.load(str(tiny_model_dir))
    texts = ["아주 길고 길어서 여러 토큰이 되는 문장입니다 정말로", "짧다", "중간 길이의 문장", "좋아"]
    batched = mean_hidden_states(decoder.model, tok, texts, batch_size=2)
    alone = torch.cat([mean_hidden_states(decoder.model, tok, [t]) for t in texts])
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=1e-4)
    assert mean_hidden_states(decoder.model, tok, []).shape == (0, decoder.model.config.hidden_size)
