"""``SamplingConfig``: the decoding parameters of one row, checked and sanitised once.

Sanitising (so no value that passes here can crash the sampler):
  * NaN or infinite numbers are rejected, and temperatures above :data:`TEMPERATURE_MAX`.
  * ``temperature`` below :data:`TEMPERATURE_FLOOR` (0 included, as OpenAI's API means it)
    turns sampling into greedy decoding: dividing logits by ~1e-300 overflows to inf/NaN.
  * ``top_k`` above the vocabulary means the whole vocabulary (the processor clamps it).
  * ``top_p`` tiny still keeps the most likely token (the processor never cuts it).
  * ``repetition_penalty`` outside [:data:`PENALTY_MIN`, :data:`PENALTY_MAX`] is rejected.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from kogpt2.errors import KoGPT2Error

TEMPERATURE_FLOOR = 1e-4
"""Temperatures below this decode greedily (logits / 1e-300 overflow to inf)."""
TEMPERATURE_MAX = 2.0
"""Temperatures above this are rejected, as in OpenAI's API (1e300 would overflow float32)."""
PENALTY_MIN, PENALTY_MAX = 0.1, 10.0
"""Accepted repetition penalties; outside this a penalty only breaks the text (1 = off)."""
SEED_MAX = 2**63 - 1
TOP_K_ALL = 2**31
"""A top_k above this keeps every token (and would overflow a tensor at 2**63)."""


@dataclass
class SamplingConfig:
    """Decoding parameters of one request. Validated and sanitised once; every problem in one error."""

    max_new_tokens: int = 64
    """Tokens to generate at most (eos and stop sequences end earlier)."""
    min_new_tokens: int = 0
    """Tokens to generate at least: </s> cannot end the text before (capped by max_new_tokens)."""
    do_sample: bool = True
    """False = greedy (or beam search with num_beams > 1)."""
    temperature: float = 1.0
    """Logits are divided by it, in [0, 2]; below 1e-4 (0 included) decoding is greedy."""
    top_k: int = 0
    """Sample among the k most likely tokens; 0 = off."""
    top_p: float = 1.0
    """Nucleus: keep the most likely tokens whose mass before them is < top_p, in (0, 1]."""
    min_p: float = 0.0
    """Drop tokens less likely than min_p times the most likely, in [0, 1)."""
    typical_p: float = 1.0
    """Locally typical sampling mass in (0, 1]; 1 = off."""
    repetition_penalty: float = 1.0
    """CTRL penalty on tokens already in prompt or output, in [0.1, 10]; 1 = off."""
    no_repeat_ngram_size: int = 0
    """Never repeat an n-gram of this size (prompt included); 0 = off."""
    num_beams: int = 1
    """Beam search width when > 1 (deterministic, not streamed)."""
    num_return_sequences: int = 1
    """Continuations per prompt (sampling: seeds seed + j; beams: the n best)."""
    stop: list[str] = field(default_factory=list)
    """Stop sequences (text, not included in the output); </s> always stops."""
    banned_tokens: list[str] = field(default_factory=list)
    """Tokens (as text, e.g. <usr>) that are never generated."""
    seed: int | None = None
    """Seed of the row's random generator; none = drawn at random."""

    def __post_init__(self) -> None:
        for f in INT_FIELDS:  # numpy and other integral types as plain ints
            value = getattr(self, f)
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                setattr(self, f, int(value))
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        if not isinstance(self.stop, (list, tuple)) and self.stop is not None:
            self.stop = [self.stop]  # reported below as not a string
        if isinstance(self.banned_tokens, str):
            self.banned_tokens = [self.banned_tokens]
        self.stop = list(self.stop or [])
        self.banned_tokens = list(self.banned_tokens or [])
        problems = self.problems()
        if problems:
            err = KoGPT2Error("invalid sampling options: " + "; ".join(problems))
            err.fields = [f for msg in problems for f in FIELDS if msg.startswith(f + " ")]  # type: ignore[attr-defined]
            raise err
        if self.do_sample and self.temperature < TEMPERATURE_FLOOR:
            self.do_sample = False  # NOTE: sanitised, not rejected: OpenAI clients send 0 for greedy
        if self.top_k > TOP_K_ALL:
            self.top_k = 0  # more than any vocabulary: keep every token

    def problems(self) -> list[str]:
        """Every invalid setting, as messages naming the fix."""
        p = [f"{name} must be a finite number, got {value!r}" for name, value in self._numbers()
             if not _is_finite(value)]
        if p:
            return p
        if not isinstance(self.do_sample, bool):
            p.append(f"do_sample must be True or False, got {self.do_sample!r}")
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 1:
            p.append(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if not _is_int(self.min_new_tokens) or self.min_new_tokens < 0:
            p.append(f"min_new_tokens must be an integer >= 0, got {self.min_new_tokens!r}")
        if not 0 <= self.temperature <= TEMPERATURE_MAX:
            p.append(f"temperature must be in [0, {TEMPERATURE_MAX:g}] (0 = greedy), got {self.temperature}")
        if not _is_int(self.top_k) or self.top_k < 0:
            p.append(f"top_k must be an integer >= 0 (0 = off), got {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            p.append(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.min_p < 1:
            p.append(f"min_p must be in [0, 1), got {self.min_p}")
        if not 0 < self.typical_p <= 1:
            p.append(f"typical_p must be in (0, 1], got {self.typical_p}")
        if not PENALTY_MIN <= self.repetition_penalty <= PENALTY_MAX:
            p.append(f"repetition_penalty must be in [{PENALTY_MIN}, {PENALTY_MAX}] (1 = off), "
                     f"got {self.repetition_penalty}")
        if not _is_int(self.no_repeat_ngram_size) or self.no_repeat_ngram_size < 0:
            p.append(f"no_repeat_ngram_size must be an integer >= 0, got {self.no_repeat_ngram_size!r}")
        p += self._search_problems()
        if any(not isinstance(s, str) or not s for s in self.stop):
            p.append(f"stop sequences must be non-empty strings, got {self.stop!r}")
        if any(not isinstance(s, str) or not s for s in self.banned_tokens):
            p.append(f"banned_tokens must be non-empty strings, got {self.banned_tokens!r}")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed <= SEED_MAX):
            p.append(f"seed must be an integer in [0, 2**63 - 1], got {self.seed!r}")
        return p

    def _numbers(self) -> list[tuple[str, Any]]:
        names = ("temperature", "top_p", "min_p", "typical_p", "repetition_penalty")
        return [(n, getattr(self, n)) for n in names]

    def _search_problems(self) -> list[str]:
        p = []
        if not _is_int(self.num_beams) or not _is_int(self.num_return_sequences) \
                or self.num_beams < 1 or self.num_return_sequences < 1:
            return ["num_beams and num_return_sequences must be integers >= 1"]
        greedy = not self.do_sample or self.temperature < TEMPERATURE_FLOOR
        if self.num_beams > 1 and not greedy:
            p.append("beam search is deterministic: set do_sample=False (--no-do-sample) with num_beams > 1")
        if self.num_beams > 1 and self.num_return_sequences > self.num_beams:
            p.append(f"num_return_sequences ({self.num_return_sequences}) cannot exceed num_beams ({self.num_beams})")
        if self.num_beams == 1 and greedy and self.num_return_sequences > 1:
            p.append("greedy decoding would return identical copies: sample, or use num_beams >= num_return_sequences")
        return p

    def replace(self, **overrides: Any) -> "SamplingConfig":
        """A copy with some fields changed (unknown names are an error)."""
        check_names(overrides)
        return dataclasses.replace(self, **overrides)

    @property
    def eos_blocked_until(self) -> int:
        """Generated tokens before which ``</s>`` is masked (``min_new_tokens``, capped by the maximum)."""
        return min(self.min_new_tokens, self.max_new_tokens)


FIELDS = tuple(f.name for f in dataclasses.fields(SamplingConfig))
INT_FIELDS = ("max_new_tokens", "min_new_tokens", "top_k", "no_repeat_ngram_size", "num_beams",
              "num_return_sequences", "seed")


def check_names(values: dict[str, Any]) -> None:
    """Raise a clear error for names that are not ``SamplingConfig`` fields."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise KoGPT2Error(f"unknown sampling option(s) {', '.join(unknown)}; known: {', '.join(sorted(FIELDS))}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
