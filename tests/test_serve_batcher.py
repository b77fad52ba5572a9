"""``kogpt2.serve.batcher``: continuous batching on the tiny model, without HTTP.

Rows join the running batch between decoding steps and leave it when done or cancelled. The
decoder is wrapped so that every step is a little slow (a long request really is long) and so that
the test sees the number of rows fed at each step.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from kogpt2.generation.config import SamplingConfig
from kogpt2.serve.batcher import Batcher


class SlowDecoder:
    """A decoder that sleeps ``delay`` s per step and records the rows fed at each step."""

    def __init__(self, inner, delay: float = 0.004) -> None:
        self.inner, self.delay = inner, delay
        self.context, self.vocab_size, self.device = inner.context, inner.vocab_size, inner.device
        self.rows_per_step: list[int] = []

    def forward_step(self, input_ids, past, attention_mask, position_ids):
        if past is not None:  # a decoding step (prefills of joining rows are not steps)
            self.rows_per_step.append(input_ids.shape[0])
        time.sleep(self.delay)
        return self.inner.forward_step(input_ids, past, attention_mask, position_ids)

    def reorder(self, past, index):
        return self.inner.reorder(past, index)

    def join(self, past, other):
        return self.inner.join(past, other)

    def trim(self, past, start):
        return self.inner.trim(past, start)


@pytest.fixture(scope="module")
def long_model_dir(tmp_path_factory, tiny_tokenizer):
    from conftest import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("batcher"), tiny_tokenizer, n_positions=1024)


@pytest.fixture
def batcher(request, long_model_dir):
    """A running batcher on the torch decoder, or (``graph``, by indirect parametrization) on the
    static-cache decoder that CUDA runs, stepping eagerly on the CPU."""
    b = Batcher(str(long_model_dir), None, max_batch=4, max_wait_s=0.0)
    if getattr(request, "param", "torch") == "graph":
        from kogpt2.generation.graph_decoder import GraphDecoder

        b.decoder = GraphDecoder(b.decoder.model, capture=False)
    b.decoder = SlowDecoder(b.decoder)
    b.start()
    yield b
    b.stop()


def greedy(n: int) -> SamplingConfig:
    return SamplingConfig(max_new_tokens=n, do_sample=False)


def sampled(n: int, seed: int) -> SamplingConfig:
    return SamplingConfig(max_new_tokens=n, do_sample=True, seed=seed, top_k=0, top_p=1.0, temperature=1.0)


async def collect(ticket, finished: list | None = None) -> str:
    """The text of a one-row ticket; appends its request id to ``finished`` when it ends."""
    text = ""
    while True:
        kind, payload = await ticket.events.get()
        if kind == "chunks":
            text += "".join(t for _, t in payload)
        elif kind == "error":
            raise AssertionError(payload)
        elif kind == "done":
            if finished is not None:
                finished.append(ticket.request_id)
            return text


async def wait_steps(decoder: SlowDecoder, n: int) -> None:
    """Until the decoder has run ``n`` more decoding steps."""
    target = len(decoder.rows_per_step) + n
    while len(decoder.rows_per_step) < target:
        await asyncio.sleep(0.002)


@pytest.mark.parametrize("batcher", ["torch", "graph"], indirect=True)
def test_a_row_joining_mid_batch_gets_the_tokens_it_gets_alone(batcher):
    # greedy rows, and seeded sampled ones (far more sensitive to a wrong mask or position on this
    # tiny random model, whose greedy text soon repeats one token)
    rows = [("나는 어두운 숲 속을", greedy(24)), ("바다", greedy(24)),
            ("나는 어두운 숲 속을", sampled(24, 1)), ("바다", sampled(24, 2))]

    async def alone() -> list[str]:
        return [await collect(batcher.submit([p], [c])) for p, c in rows]

    async def joined(first: int, second: int) -> list[str]:
        a = asyncio.ensure_future(collect(batcher.submit([rows[first][0]], [rows[first][1]])))
        await wait_steps(batcher.decoder, 8)  # the first row is 8 tokens in when the second joins
        b = collect(batcher.submit([rows[second][0]], [rows[second][1]]))
        return [await a, await b]

    expected = asyncio.run(alone())
    steps = len(batcher.decoder.rows_per_step)
    assert asyncio.run(joined(0, 1)) == expected[:2]
    assert asyncio.run(joined(2, 3)) == expected[2:]
    assert 2 in batcher.decoder.rows_per_step[steps:]  # they did share steps


def test_a_short_request_does_not_wait_for_a_long_one(batcher):
    async def run() -> list:
        finished: list = []
        long = asyncio.ensure_future(collect(batcher.submit(["끝없이"], [greedy(400)], "long"), finished))
        await wait_steps(batcher.decoder, 3)
        await collect(batcher.submit(["하늘"], [greedy(8)], "short"), finished)
        assert not long.done()
        await long
        return finished

    assert asyncio.run(run()) == ["short", "long"]


@pytest.mark.parametrize("batcher", ["torch", "graph"], indirect=True)
def test_a_cancelled_row_frees_its_slot_at_the_next_step(batcher):
    async def run() -> None:
        keep = batcher.submit(["끝없이"], [greedy(300)])
        gone = batcher.submit(["바다"], [greedy(300)])
        kept = asyncio.ensure_future(collect(keep))
        await wait_steps(batcher.decoder, 3)
        assert batcher.busy_rows == 2 and batcher.decoder.rows_per_step[-1] == 2
        batcher.forget(gone)
        n = len(batcher.decoder.rows_per_step)  # steps started before the cancellation
        await wait_steps(batcher.decoder, 2)
        # the step in flight at the cancellation may still hold it; the one after it does not
        assert batcher.decoder.rows_per_step[n + 1] == 1
        assert batcher.busy_rows == 1 and batcher.metrics.active_rows._value.get() == 1
        assert batcher.metrics.cancelled._value.get() == 1
        await kept

    asyncio.run(run())


async def events_of(ticket) -> list[tuple[str, object]]:
    """Every event of a ticket, up to and including ``done``."""
    out = []
    while True:
        kind, payload = await ticket.events.get()
        out.append((kind, payload))
        if kind in ("done", "error"):
            return out


def test_a_non_streaming_request_gets_its_text_once_when_its_row_ends(batcher):
    prompt, config = "나는 어두운 숲 속을", sampled(24, 7)

    async def run() -> tuple[list, list]:
        streamed = await events_of(batcher.submit([prompt], [config]))
        held = await events_of(batcher.submit([prompt], [config], stream=False))
        return streamed, held

    streamed, held = asyncio.run(run())
    assert sum(kind == "chunks" for kind, _ in streamed) > 1  # the same row streams step by step
    assert [kind for kind, _ in held] == ["chunks", "end", "done"]
    text = "".join(t for kind, p in streamed if kind == "chunks" for _, t in p)
    assert held[0][1] == [(0, text)] and text
    assert held[1][1] == streamed[-2][1]  # same finish reason and token count


def test_one_steps_events_reach_the_event_loop_in_one_call(batcher):
    async def run() -> int:
        loop = asyncio.get_running_loop()
        calls = []
        real = loop.call_soon_threadsafe

        def counting(*args):
            calls.append(args)
            return real(*args)

        loop.call_soon_threadsafe = counting
        tickets = [batcher.submit([p], [greedy(16)]) for p in ("하늘", "바다", "숲", "강")]
        await asyncio.gather(*(events_of(t) for t in tickets))
        return len(calls)

    steps = len(batcher.decoder.rows_per_step)
    calls = asyncio.run(run())
    steps = len(batcher.decoder.rows_per_step) - steps
    # four streaming rows post text at every step; one call per step carries all four
    assert 0 < calls <= steps + 2, (calls, steps)
