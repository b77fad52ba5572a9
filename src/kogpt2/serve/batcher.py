"""Continuous batching: rows of concurrent requests share one running decoding batch.

One worker thread owns the model and one :class:`kogpt2.generation.loop.DecodeBatch`. Requests
put their rows (prompt x ``n``) in a bounded queue; between two decoding steps the worker moves
waiting rows into the running batch (up to ``max_batch`` rows in all), so a short request sent
while a long one runs starts at the next step and ends when its own tokens are done. When the
batch is empty, the first row to arrive waits ``max_wait_s`` for company. Every row keeps its own
sampling config, generator and stop conditions. Text chunks go back to each request's asyncio
queue on the event loop, all of one step's events in one call (one wake-up of the loop per step,
not one per request); a request that does not stream (``stream=False``) gets its text once, when
its rows end, so the event loop does no work per step for it while the next step decodes. A
request is answered as soon as its own rows end. A cancelled request
(client gone) leaves the batch before the next step, freeing its slot; its rows still waiting
are dropped from the queue.

Failure isolation: when a decoding step raises, the rows in the batch at that moment keep the
tokens they generated; the worker splits them in two halves and resumes each half to its end
from its tokens (prompt + generated ids as the new prompt), down to single rows, then goes back
to continuous batching. A row that fails alone ends its request with an error; its batch-mates
finish with their text intact.

NOTE: after a recovery, a resumed sampling row draws from a fresh generator, and a stop sequence
straddling the moment of the failure is not detected. Rows that join pad the shared cache on the
left; the engine cuts that padding off when the rows that needed it leave (``Decoder.trim``).
With a decoder that cannot cut its cache, the worker stops admitting rows once the cache is
wider than the model's context and lets the batch drain, which bounds the padding.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from kogpt2.serve.metrics import Metrics

log = logging.getLogger("kogpt2.serve")

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
    ids: list[int] = field(default_factory=list)  # prompt ids + generated ids kept from earlier attempts
    generated: int = 0  # generated tokens already in ``ids``
    pending: str = ""  # text of those tokens not yet delivered (held back when an attempt failed)
    held: str = ""  # text of a non-streaming row, delivered when the row ends
    sent: str = ""  # text delivered during the current attempt
    ended: bool = False
    state: Any = None  # its kogpt2.generation.loop.Row in the running batch


@dataclass
class Ticket:
    """One request's rows; ``events`` receives ``("chunks", [(row, text), ...])``,
    ``("end", (row, finish_reason, n_tokens))``, ``("done", None)`` or ``("error", message)``
    on the event loop that submitted it. With ``stream`` False a row's text comes in one
    ``chunks`` event just before its ``end``."""

    n_rows: int
    loop: asyncio.AbstractEventLoop
    request_id: str = "-"
    stream: bool = True
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    failed: bool = False
    _rows_left: int = 0

    def cancel(self) -> None:
        """Stop generating for this request (its rows end at the next decoding step)."""
        self.cancelled = True


def _dispatch(events: list[tuple[Ticket, str, Any]]) -> None:
    """On the event loop: hand each event to its request's queue."""
    for ticket, kind, payload in events:
        ticket.events.put_nowait((kind, payload))


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
        self._outbox: list[tuple[Ticket, str, Any]] = []  # events of this step, sent by _flush
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

    def submit(self, prompts: list[str], configs: list[Any], request_id: str = "-", stream: bool = True) -> Ticket:
        """Queue one request's rows (call on the event loop). Raises ``QueueFull``.

        ``stream`` False: each row's text arrives in one event when the row ends."""
        ticket = Ticket(n_rows=len(prompts), loop=asyncio.get_running_loop(), request_id=request_id,
                        stream=stream, _rows_left=len(prompts))
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
    def _loop(self) -> None:
        batch, live = None, []  # live: rows in ``batch``, each with its engine row in ``.state``
        while (batch := self._admit(batch, live)) is not None:
            self._drop_cancelled(batch, live)
            self._flush()
            if not live:
                continue
            self.metrics.batch_size.observe(len(live))
            self._set_busy(len(live))
            try:
                out = batch.step()
            except Exception as e:  # noqa: BLE001 - a failed step must not fail the rows that did nothing wrong
                self._recover(live, e)
                live.clear()
                self._set_busy(0)
                self._flush()
                continue
            texts = {id(r): t for r, t in out}
            self._deliver(live, [texts.get(id(r.state), "") for r in live], [r.state for r in live])
            self._flush()
            live[:] = [r for r in live if not r.ended]
            self._set_busy(len(live))
        self._flush()

    def _post(self, ticket: Ticket, kind: str, payload: Any) -> None:
        """Queue an event for ``ticket``; it leaves with the step's others at the next ``_flush``."""
        self._outbox.append((ticket, kind, payload))

    def _flush(self) -> None:
        """Send the queued events: one ``call_soon_threadsafe`` per event loop."""
        if not self._outbox:
            return
        by_loop: dict[int, list] = {}
        for event in self._outbox:
            by_loop.setdefault(id(event[0].loop), []).append(event)
        self._outbox = []
        for events in by_loop.values():
            try:
                events[0][0].loop.call_soon_threadsafe(_dispatch, events)
            except RuntimeError:  # the event loop is closed: nobody is listening any more
                for ticket, _, _ in events:
                    ticket.cancelled = True

    def _admit(self, batch: Any, live: list[_Row]) -> Any:
        """Move waiting rows into the running batch and return it; None once the batcher stops and
        the batch is empty. An empty batch is replaced by a new one (on the current decoder).

        With an empty batch, waits for a first row, then ``max_wait_s`` for company; with a running
        batch, takes what is waiting now. No row joins once the shared cache is wider than the
        context (padding bound); the batch then drains and starts afresh.
        """
        from kogpt2.generation.loop import DecodeBatch

        with self._cond:
            if not live:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                deadline = time.monotonic() + self.max_wait_s
                while len(self._queue) < self.max_batch and not self._stopped:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            if self._stopped:  # finish the rows being decoded, take no new ones
                return batch if live else None
            if not live:
                batch = DecodeBatch(self.decoder, self.tokenizer)
            width = 0 if batch.mask is None else batch.mask.shape[1]
            room = self.max_batch - len(live) if width <= self.decoder.context else 0
            taken = [self._queue.popleft() for _ in range(min(room, len(self._queue)))]
            self.metrics.queue_depth.set(len(self._queue))
        for r in taken:
            if not r.ticket.cancelled:
                self._join(batch, live, r)
        return batch

    def _join(self, batch: Any, live: list[_Row], row: _Row) -> None:
        from kogpt2.generation.api import encode_prompt

        try:
            row.ids = encode_prompt(self.tokenizer, row.prompt, self.decoder.context, row.config.max_new_tokens)
            row.state, = batch.add_rows([row.ids], [row.config], stream_text=row.ticket.stream)
        except Exception as e:  # noqa: BLE001 - one bad prompt fails its own request only
            self._fail(row, e)
            return
        live.append(row)

    def _drop_cancelled(self, batch: Any, live: list[_Row]) -> None:
        """Rows of cancelled requests leave the batch now (their slot is free for the next step)."""
        for r in [r for r in live if r.ticket.cancelled]:
            batch.remove_row(r.state)
            self._end(r, "cancelled", r.state.tokens)
            live.remove(r)

    def _recover(self, live: list[_Row], error: Exception) -> None:
        """A step of the running batch failed: resume its unfinished rows in halves, to their end."""
        alive = [r for r in live if not r.ended]
        if len(alive) == 1:
            self._fail(alive[0], error)
            return
        for r in alive:
            self._keep_progress(r, r.state)
        alive = [r for r in alive if not r.ended]
        log.warning("a batch of %d rows failed (%s: %s); resuming its %d unfinished rows in halves",
                    len(live), type(error).__name__, error, len(alive))
        half = (len(alive) + 1) // 2
        self._set_busy(len(alive))
        self._decode(alive[:half])
        self._decode(alive[half:])

    def _set_busy(self, n: int) -> None:
        self.busy_rows = n
        self.metrics.active_rows.set(n)

    def _decode(self, group: list[_Row]) -> None:
        """Decode ``group`` together; on a failure, resume the unfinished rows in halves."""
        from kogpt2.generation.loop import decode_rows

        group = [r for r in group if not r.ended]
        if not group:
            return
        configs = [_resumed_config(r) for r in group]
        for r in group:
            r.sent = ""
        state: list = []  # the sampler's per-row objects: .done, .finish_reason, .gen
        try:
            for chunks in decode_rows(self.decoder, self.tokenizer, [r.ids for r in group], configs,
                                      should_stop=lambda i: group[i].ticket.cancelled, rows_out=state):
                self._deliver(group, chunks, state)
                self._flush()
            return
        except Exception as e:  # noqa: BLE001 - a failed step must not fail the rows that did nothing wrong
            error = e
            self._flush()
        alive = [r for r in group if not r.ended]
        if len(group) == 1:
            if alive:
                self._fail(alive[0], error)
            return
        for r, s in zip(group, state):
            if not r.ended:
                self._keep_progress(r, s)
        log.warning("a batch of %d rows failed (%s: %s); resuming its %d unfinished rows in halves",
                    len(group), type(error).__name__, error, len(alive))
        half = (len(alive) + 1) // 2
        self._decode(alive[:half])
        self._decode(alive[half:])

    def _keep_progress(self, row: _Row, s: Any) -> None:
        """Fold a failed attempt's stable tokens into ``row.ids`` so the next attempt continues them."""
        n = min(getattr(s, "n_stable", len(s.gen)), len(s.gen))
        text = s.text_of(n) if n else ""
        row.pending += text[len(row.sent):] if text.startswith(row.sent) else ""
        row.ids = row.ids + list(s.gen[:n])
        row.generated += n
        if row.generated >= row.config.max_new_tokens:  # nothing left to generate: end it here
            self._end(row, "length", [])

    def _fail(self, row: _Row, error: Exception) -> None:
        t = row.ticket
        log.error("request %s: row %d failed: %s: %s", t.request_id, row.index, type(error).__name__, error,
                  exc_info=error)
        row.ended = True
        self._set_busy(max(0, self.busy_rows - 1))
        if not t.failed:
            t.failed = True
            t.cancel()  # its other rows stop at the next step
            self._post(t, "error", f"{type(error).__name__}: {error}")

    def _deliver(self, group: list[_Row], chunks: list[str], state: list) -> None:
        """Post one step's chunks, then the end of every row that finished in it."""
        posts: dict[int, tuple[Ticket, list]] = {}
        for row, text, s in zip(group, chunks, state):
            if row.ended:
                continue
            if row.pending and (text or s.done):
                row.sent += text
                text, row.pending = row.pending + text, ""
            else:
                row.sent += text
            if text and not row.ticket.stream:
                row.held += text
            elif text and not row.ticket.cancelled:
                posts.setdefault(id(row.ticket), (row.ticket, []))[1].append((row.index, text))
        for t, pieces in posts.values():
            self._post(t, "chunks", pieces)
        for row, s in zip(group, state):
            if s.done and not row.ended:
                self._end(row, s.finish_reason, s.gen)

    def _end(self, row: _Row, reason: str, gen: list) -> None:
        row.ended = True
        n_tokens = row.generated + len(gen)
        self.metrics.completion_tokens.inc(n_tokens)
        self._set_busy(max(0, self.busy_rows - 1))
        if reason == "cancelled" or row.ticket.failed:
            self.metrics.cancelled.inc()
        if row.ticket.failed:
            return
        rest = row.held + row.pending  # a non-streaming row's text; the text of tokens kept from a failed attempt
        row.held = row.pending = ""
        if rest:
            self._post(row.ticket, "chunks", [(row.index, rest)])
        self._post(row.ticket, "end", (row.index, FINISH.get(reason, "stop"), n_tokens))
        row.ticket._rows_left -= 1
        if row.ticket._rows_left == 0:
            self._post(row.ticket, "done", None)


def _resumed_config(row: _Row) -> Any:
    """The row's config for its next attempt: fewer tokens left; a new seed so draws do not repeat."""
    if not row.generated:
        return row.config
    seed = row.config.seed
    return row.config.replace(max_new_tokens=row.config.max_new_tokens - row.generated,
                              seed=None if seed is None else (seed + row.generated) % 2**63)
