"""kogpt2.generation.processors: greedy choice (numpy argmax on the CPU) and the sampling filters."""

import math

import pytest

import torch

from kogpt2.generation.config import SamplingConfig
from kogpt2.generation.processors import NgramIndex, apply_constraints, argmax_rows, choose, draw, top_k, top_p


def test_argmax_rows_matches_torch_on_random_scores():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(8, 51200, generator=g)
    assert argmax_rows(scores) == scores.argmax(-1).tolist()


def test_argmax_rows_takes_the_first_of_tied_maxima_and_skips_masked_tokens():
    scores = torch.full((3, 6), -math.inf)
    scores[0, [2, 4]] = 5.0  # a tie: the first index wins, as with torch.argmax
    scores[1, 5] = 0.5
    scores[2, [0, 1]] = torch.tensor([-1.0, -0.5])
    assert argmax_rows(scores) == [2, 5, 1]


def test_argmax_rows_reads_a_non_contiguous_view_and_other_dtypes():
    base = torch.tensor([[0.0, 9.0], [7.0, 1.0], [3.0, 4.0]])
    view = base.t()  # (2, 3), not contiguous
    assert argmax_rows(view) == [1, 0]
    assert argmax_rows(base.to(torch.bfloat16)) == [1, 0, 1]


def test_choose_is_greedy_for_greedy_rows_and_draws_for_sampling_rows():
    scores = torch.tensor([[0.0, 3.0, 1.0], [0.0, 3.0, 1.0]])
    scores = top_k(scores, torch.tensor([0, 1]))  # the sampling row keeps only its top token
    cfgs = [SamplingConfig(do_sample=False), SamplingConfig(do_sample=True, seed=1)]
    out = choose(scores, cfgs, [None, torch.Generator().manual_seed(1)])
    assert out == [1, 1]


def _top_p_by_full_sort(logits: torch.Tensor, p: float) -> torch.Tensor:
    """The nucleus by the textbook recipe: sort with indices, cumulative mass, scatter back."""
    sorted_logits, idx = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    remove = (probs.cumsum(-1) - probs) >= p
    remove[:, 0] = False
    return logits.masked_fill(remove.scatter(1, idx, remove), -math.inf)


def test_top_p_keeps_the_same_nucleus_as_a_full_sort():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(16, 16384, generator=g) * 3
    for p in (0.05, 0.5, 0.95):
        ours = top_p(logits, torch.full((16, 1), p))
        assert torch.equal(torch.isinf(ours), torch.isinf(_top_p_by_full_sort(logits, p)))
        kept = torch.isfinite(ours).sum(-1)
        assert (kept >= 1).all() and (kept < 16384).all()


@pytest.mark.parametrize("candidates", [8, 256])
def test_top_p_matches_a_full_sort_whether_the_nucleus_is_inside_the_candidates_or_not(monkeypatch, candidates):
    import kogpt2.generation.processors as processors

    monkeypatch.setattr(processors, "TOP_P_CANDIDATES", candidates)
    g = torch.Generator().manual_seed(5)
    scale = torch.tensor([0.05, 0.5, 2.0, 8.0, 30.0, 100.0] * 2)[:, None]  # flat rows to peaked ones
    logits = torch.randn(12, 4096, generator=g) * scale
    logits[6, ::2] = -math.inf  # masked tokens
    for p in (0.01, 0.3, 0.9, 0.99):
        ours = top_p(logits, torch.full((12, 1), p))
        assert torch.equal(torch.isinf(ours), torch.isinf(_top_p_by_full_sort(logits, p))), p
    tied = logits.clone()
    tied[1, :40] = 7.0  # the top value 40 times, straddling the candidates' boundary when there are 8
    assert torch.isfinite(top_p(tied, torch.full((12, 1), 0.01))[1]).sum() == 40  # ties with the last kept stay
    kept = torch.isfinite(top_p(logits, torch.full((12, 1), 0.9))).sum(-1)
    assert kept.min() < candidates < kept.max()  # both ways were taken


def test_top_p_always_keeps_the_top_token_and_ignores_masked_ones():
    logits = torch.tensor([[10.0, 0.0, -math.inf, 1.0]])
    out = top_p(logits, torch.tensor([[0.01]]))
    assert torch.isfinite(out).tolist() == [[True, False, False, False]]


def test_draw_follows_the_probabilities_and_never_picks_an_impossible_token():
    probs = torch.tensor([0.5, 0.0, 0.3, 0.2, 0.0])
    g = torch.Generator().manual_seed(0)
    counts = torch.bincount(torch.tensor([draw(probs, g) for _ in range(4000)]), minlength=5).double() / 4000
    assert counts[1] == 0 and counts[4] == 0
    assert torch.allclose(counts, probs.double(), atol=0.03)
    a = [draw(probs, torch.Generator().manual_seed(7)) for _ in range(3)]
    assert len(set(a)) == 1  # the same seed, the same token


class _Row:
    """The fields ``apply_constraints`` reads from a decoding row."""

    def __init__(self, config: SamplingConfig, banned: list[int], ngrams=None, n_generated: int = 0) -> None:
        self.config, self.banned_ids, self.ngrams, self.n_generated = config, banned, ngrams, n_generated


def test_apply_constraints_penalises_only_seen_tokens_and_masks_each_rows_bans():
    scores = torch.tensor([[2.0, -2.0, 2.0, -2.0, 1.0, 1.0], [2.0, -2.0, 2.0, -2.0, 1.0, 1.0]])  # exact in float32
    seen = torch.tensor([[True, True, False, False, False, False], [False, False, True, False, False, False]])
    ngrams = NgramIndex(2, [4, 5, 4])  # "4 5" was seen: after 4, 5 is banned
    rows = [_Row(SamplingConfig(repetition_penalty=2.0, min_new_tokens=3), [3], n_generated=1),
            _Row(SamplingConfig(repetition_penalty=1.6), [], ngrams=ngrams, n_generated=5)]
    out = apply_constraints(scores.clone(), rows, seen, eos_id=0)
    inf = -math.inf
    assert out[0].tolist() == [inf, -4.0, 2.0, inf, 1.0, 1.0]  # eos blocked (1 < 3 new tokens), 3 banned
    assert out[1].tolist() == [2.0, -2.0, 1.25, -2.0, 1.0, inf]
