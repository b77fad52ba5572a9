"""One ASGI middleware for every request: API key on ``/v1/*``, body size cap, request counter."""

from __future__ import annotations

import json
import secrets

from kogpt2.serve.metrics import Metrics
from kogpt2.serve.schemas import error_body

KNOWN = ("/v1/completions", "/v1/chat/completions", "/v1/models", "/api/classify", "/health", "/metrics", "/")


class Guard:
    """Pure ASGI (no buffering of streamed answers), so server-sent events pass through as they come."""

    def __init__(self, app, api_key: str | None, max_body_bytes: int, metrics: Metrics) -> None:
        self.app, self.api_key, self.max_body, self.metrics = app, api_key, max_body_bytes, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = path if path in KNOWN else ("/v1/models" if path.startswith("/v1/models/") else "other")
        status = {"code": 500}

        async def counted_send(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            refusal = self._refuse(scope)
            if refusal is None and scope["method"] in ("POST", "PUT", "PATCH"):
                body, too_big = await self._read_body(receive)
                if too_big:
                    refusal = (413, error_body(f"request body is larger than {self.max_body} bytes",
                                               param=None, code="body_too_large"), {})
                else:
                    receive = _replay(body, receive)
            if refusal is not None:
                await _send_json(counted_send, *refusal)
                return
            await self.app(scope, receive, counted_send)
        finally:
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()

    def _refuse(self, scope) -> tuple[int, dict, dict] | None:
        if self.api_key is None or not scope["path"].startswith("/v1/") or scope["method"] == "OPTIONS":
            return None
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), self.api_key.encode()):
            return None
        return (401, error_body("missing or wrong API key: send `Authorization: Bearer <key>`",
                                "invalid_request_error", code="invalid_api_key"),
                {"www-authenticate": "Bearer"})

    async def _read_body(self, receive) -> tuple[bytes, bool]:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            size += len(message.get("body", b""))
            if size > self.max_body:
                return b"", True
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return b"".join(chunks), False


def _replay(body: bytes, receive):
    """A ``receive`` that hands ``body`` over once, then waits on the real one (for disconnects)."""
    sent = {"done": False}

    async def replay():
        if not sent["done"]:
            sent["done"] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(send, status: int, body: dict, headers: dict) -> None:
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})
