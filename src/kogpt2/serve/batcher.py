"""Dynamic batching: rows of concurrent requests are decoded together by the shared sampler.

One worker thread owns the model. Requests put their rows (prompt x ``n``) in a bounded queue;
the worker takes up to ``max_batch`` rows, waiting ``max_wait_s`` for company once the first
arrives, and decodes them with per-row sampling configs through ``kogpt2.generation.loop.decode_rows``
(the loop behind ``stream_batch``, used directly for its per-row finish reasons and token counts).
Text chunks go back to each request's asyncio queue on the event loop; a request is answered as
soon as its own rows end. A cancelled request (client gone) stops its rows through
``should_stop``; its rows still waiting are dropped from the queue.

NOTE: the sampler takes its rows up front, so requests join between batches, not between
decoding steps.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from kogpt2.serve.metrics import Metrics

# finish reasons of kogpt2.generation -> OpenAI's
FINISH = {"eos": "stop", "stop": "stop", "length": "length", "cancelled": "stop"}


class QueueFull(Exception):
    """The queue holds ``max_queue`` rows already; the caller answers 503."""


@dataclass
class _Row:
    ticket: "Ticket"
    index: int  # row index inside its ticket
    prompt: str
    config: Any  # kogpt2.generation.config.SamplingConfig


@dataclass
class Ticket:
    """One request's rows; ``events`` receives ``("chunks", [(row, text), ...])``,
    ``("end", (row, finish_reason, n_tokens))``, ``("done", None)`` or ``("error", message)``
    on the event loop that submitted it."""

    n_rows: int
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    _rows_left: int = 0

    def cancel(self) -> None:
        """Stop generating for this request (its rows end at the next decoding step)."""
        self.cancelled = True

    def _post(self, kind: str, payload: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, payload))
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            self.cancelled = True


class Batcher:
    """The worker thread and its bounded queue.

    Args:
        model: a loaded causal LM.
        tokenizer: its tokenizer (used by the worker thread only).
        max_batch: most rows decoded together.
        max_queue: most rows waiting; beyond it ``submit`` raises ``QueueFull``.
        max_wait_s: how long the first waiting row waits for others before a batch starts.
        metrics: counters to update.
        device: where the model runs (``kogpt2.devices.resolve_device``; None = where it is).
    """

    def __init__(self, model, tokenizer, max_batch: int = 16, max_queue: int = 64, max_wait_s: float = 0.01,
                 metrics: Metrics | None = None, device: Any = None) -> None:
        from kogpt2.generation.api import load

        self.decoder, self.tokenizer = load(model, tokenizer, device=device)
        self.max_batch, self.max_queue, self.max_wait_s = max_batch, max_queue, max_wait_s
        self.metrics = metrics or Metrics()
        self._queue: deque[_Row] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.busy_rows = 0

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="kogpt2-batcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    # --- requests ------------------------------------------------------------------------------
    def queue_depth(self) -> int:
        return len(self._queue)

    def submit(self, prompts: list[str], configs: list[Any]) -> Ticket:
        """Queue one request's rows (call on the event loop). Raises ``QueueFull``."""
        ticket = Ticket(n_rows=len(prompts), loop=asyncio.get_running_loop(), _rows_left=len(prompts))
        rows = [_Row(ticket, i, p, c) for i, (p, c) in enumerate(zip(prompts, configs))]
        with self._cond:
            if self._stopped:
                raise QueueFull("the server is shutting down")
            if len(self._queue) + len(rows) > self.max_queue:
                self.metrics.rejected.inc()
                raise QueueFull(f"{len(self._queue)} rows are waiting (limit {self.max_queue})")
            self._queue.extend(rows)
            self.metrics.queue_depth.set(len(self._queue))
            self._cond.notify()
        return ticket

    def forget(self, ticket: Ticket) -> None:
        """Cancel ``ticket`` and drop its rows that are still waiting."""
        ticket.cancel()
        with self._cond:
            self._queue = deque(r for r in self._queue if r.ticket is not ticket)
            self.metrics.queue_depth.set(len(self._queue))

    # --- worker --------------------------------------------------------------------------------
    def _take(self) -> list[_Row] | None:
        with self._cond:
            while not self._queue and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return None
            deadline = time.monotonic() + self.max_wait_s
            while len(self._queue) < self.max_batch and not self._stopped:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            self.metrics.queue_depth.set(len(self._queue))
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            batch = [r for r in batch if not r.ticket.cancelled]
            if batch:
                self._run(batch)

    def _run(self, batch: list[_Row]) -> None:
        from kogpt2.generation.api import encode_prompt
        from kogpt2.generation.loop import decode_rows

        self.busy_rows = len(batch)
        self.metrics.active_rows.set(len(batch))
        self.metrics.batch_size.observe(len(batch))
        tickets = list({id(r.ticket): r.ticket for r in batch}.values())
        try:
            ctx = self.decoder.context
            ids = [encode_prompt(self.tokenizer, r.prompt, ctx, r.config.max_new_tokens) for r in batch]
            state: list = []  # the sampler's per-row objects: .done, .finish_reason, .gen
            ended = [False] * len(batch)
            for chunks in decode_rows(self.decoder, self.tokenizer, ids, [r.config for r in batch],
                                      should_stop=lambda i: batch[i].ticket.cancelled, rows_out=state):
                self._deliver(batch, chunks, state, ended)
        except Exception as e:  # noqa: BLE001 - a failed batch must not kill the worker
            for t in tickets:
                t._post("error", f"{type(e).__name__}: {e}")
        finally:
            self.busy_rows = 0
            self.metrics.active_rows.set(0)

    def _deliver(self, batch: list[_Row], chunks: list[str], state: list, ended: list[bool]) -> None:
        """Post one step's chunks, then the end of every row that finished in it."""
        posts: dict[int, tuple[Ticket, list]] = {}
        for row, text in zip(batch, chunks):
            if text and not row.ticket.cancelled:
                posts.setdefault(id(row.ticket), (row.ticket, []))[1].append((row.index, text))
        for t, pieces in posts.values():
            t._post("chunks", pieces)
        for k, (row, s) in enumerate(zip(batch, state)):
            if s.done and not ended[k]:
                ended[k] = True
                n_tokens = len(s.gen)
                self.metrics.completion_tokens.inc(n_tokens)
                if s.finish_reason == "cancelled":
                    self.metrics.cancelled.inc()
                row.ticket._post("end", (row.index, FINISH.get(s.finish_reason, "stop"), n_tokens))
                row.ticket._rows_left -= 1
                if row.ticket._rows_left == 0:
                    row.ticket._post("done", None)
