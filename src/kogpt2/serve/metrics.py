"""Prometheus metrics of one server (own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Requests, tokens, queue depth, batch sizes and latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("kogpt2_requests", "HTTP requests answered", ["endpoint", "status"], registry=r)
        self.prompt_tokens = Counter("kogpt2_prompt_tokens", "prompt tokens received", registry=r)
        self.completion_tokens = Counter("kogpt2_completion_tokens", "tokens generated", registry=r)
        self.queue_depth = Gauge("kogpt2_queue_depth", "rows waiting for a batch", registry=r)
        self.active_rows = Gauge("kogpt2_active_rows", "rows being decoded now", registry=r)
        self.batch_size = Histogram("kogpt2_batch_rows", "rows per decoded batch", registry=r,
                                    buckets=(1, 2, 4, 8, 16, 32, 64))
        self.latency = Histogram("kogpt2_request_latency_seconds", "request latency, arrival to last byte",
                                 ["endpoint"], registry=r,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.cancelled = Counter("kogpt2_cancelled_rows", "rows stopped because the client went away", registry=r)
        self.rejected = Counter("kogpt2_rejected", "requests refused because the queue was full", registry=r)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
