"""kogpt2.generation.processors: greedy choice (numpy argmax on the CPU) and the sampling filters."""

import math

import torch

from kogpt2.generation.config import SamplingConfig
from kogpt2.generation.processors import argmax_rows, choose, top_k


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
