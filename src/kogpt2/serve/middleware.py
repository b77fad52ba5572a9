"""One ASGI middleware for every request: Host allow-list, API key, body size cap and UTF-8 check,
request id, request counter, and a log line for every 5xx.

The API key is checked on every path except the public ones (``/health``, the web page and its
static files): new routes, ``/metrics`` and ``/openapi.json`` are guarded without being listed.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid

from kogpt2.serve.metrics import Metrics
from kogpt2.serve.schemas import error_body

KNOWN = ("/v1/completions", "/v1/chat/completions", "/v1/models", "/api/classify", "/health", "/metrics", "/")
PUBLIC = ("/health", "/")
PUBLIC_PREFIX = "/static/"
REQUEST_ID = "kogpt2.request_id"  # scope key
log = logging.getLogger("kogpt2.serve")


def request_id(scope) -> str:
    """The id given to this request by :class:`Guard` (also sent back as ``x-request-id``)."""
    return scope.get(REQUEST_ID, "-")


class Guard:
    """Pure ASGI (no buffering of streamed answers), so server-sent events pass through as they come.

    Args:
        app: the ASGI app to guard.
        api_key: required as ``Authorization: Bearer <key>`` on non-public paths; ``None`` = no key.
        max_body_bytes: larger bodies get 413.
        metrics: the request counter.
        allowed_hosts: accepted ``Host`` header names (port ignored, ``*`` = any); ``None`` = no check.
    """

    def __init__(self, app, api_key: str | None, max_body_bytes: int, metrics: Metrics,
                 allowed_hosts: list[str] | None = None) -> None:
        self.app, self.api_key, self.max_body, self.metrics = app, api_key, max_body_bytes, metrics
        hosts = None if allowed_hosts is None or "*" in allowed_hosts else allowed_hosts
        self.hosts = None if hosts is None else {h.strip().lower().strip("[]") for h in hosts}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = path if path in KNOWN else ("/v1/models" if path.startswith("/v1/models/") else "other")
        rid = scope[REQUEST_ID] = "req_" + uuid.uuid4().hex[:20]
        status = {"code": 500}

        async def counted_send(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = dict(message, headers=list(message.get("headers", [])) + [(b"x-request-id", rid.encode())])
            await send(message)

        try:
            refusal = self._refuse(scope)
            if refusal is None and scope["method"] in ("POST", "PUT", "PATCH"):
                body, too_big = await self._read_body(receive)
                if too_big:
                    refusal = (413, error_body(f"request body is larger than {self.max_body} bytes",
                                               param=None, code="body_too_large"), {})
                else:
                    refusal = _check_text(body)
                    receive = _replay(body, receive)
            if refusal is not None:
                await _send_json(counted_send, *refusal)
                return
            await self.app(scope, receive, counted_send)
        finally:
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()
            if status["code"] in (501, 503):  # expected answers (no sentiment head, busy): no error to look into
                log.warning("request %s: %s %s answered %d", rid, scope["method"], path, status["code"])
            elif status["code"] >= 500:
                log.error("request %s: %s %s answered %d", rid, scope["method"], path, status["code"])

    def _refuse(self, scope) -> tuple[int, dict, dict] | None:
        headers = dict(scope["headers"])
        if self.hosts is not None:
            host = _host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.hosts:
                return (400, error_body(f"Host {host!r} is not served here; allowed: {', '.join(sorted(self.hosts))} "
                                        "(start the server with --allowed-hosts to add names)",
                                        code="invalid_host"), {})
        path = scope["path"]
        if self.api_key is None or scope["method"] == "OPTIONS" or path in PUBLIC or path.startswith(PUBLIC_PREFIX):
            return None
        auth = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode("latin-1"), self.api_key.encode()):
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


def _host_name(host: str) -> str:
    """``Host`` header -> lower-case name without port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _check_text(body: bytes) -> tuple[int, dict, dict] | None:
    """400 unless ``body`` is UTF-8 whose JSON strings are valid Unicode (no lone surrogates:
    ``"\\ud800"`` is legal JSON but no text, and would crash the tokenizer)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return (400, error_body(f"the body is not valid UTF-8 (byte {e.start}: {e.reason}); send UTF-8 JSON",
                                code="invalid_encoding"), {})
    if "\\u" not in text.lower():  # surrogates reach JSON strings only as \u escapes
        return None
    try:
        json.dumps(json.loads(text), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return (400, error_body("the body contains a lone UTF-16 surrogate (e.g. \"\\ud800\"), which is not text; "
                                "send valid Unicode", code="invalid_encoding"), {})
    except ValueError:  # not JSON: the route answers it (422 invalid_json)
        return None
    return None


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
