"""The FastAPI app: OpenAI-compatible completions and chat, models, classify, health, metrics, web demo.

Build it with ``create_app(model_dir)`` and run it with uvicorn (``kogpt2 serve`` does both)::

    from kogpt2.serve import create_app
    import uvicorn
    uvicorn.run(create_app("runs/mini"), host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from kogpt2.errors import KoGPT2Error
from kogpt2.paths import PACKAGE_DIR
from kogpt2.serve.batcher import Batcher, QueueFull, Ticket
from kogpt2.serve.metrics import CONTENT_TYPE, Metrics
from kogpt2.serve.middleware import Guard, request_id
from kogpt2.serve.prompts import render_chat
from kogpt2.serve.schemas import (SAMPLING_FIELDS, ApiError, ChatRequest, ClassifyRequest, CompletionRequest,
                                  SamplingRequest, error_body)

WEB_DIR = PACKAGE_DIR / "web"
Classifier = Callable[[list[str]], list[dict]]
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|.*\[.*\])$")
log = logging.getLogger("kogpt2.serve")


@dataclass
class ServeConfig:
    """Limits and switches of one server."""

    model_name: str | None = None
    """Id shown in ``/v1/models`` and answers; ``None`` = the model directory's name."""
    max_batch: int = 16
    """Most rows (prompt x n) decoded together."""
    max_queue: int = 64
    """Most rows waiting for a batch; beyond it requests get 503 with ``Retry-After``."""
    max_wait_ms: float = 10.0
    """How long a lone request waits for others to share its batch."""
    max_tokens_cap: int = 512
    """Largest ``max_tokens`` accepted."""
    default_max_tokens: int = 64
    """``max_tokens`` when the request gives none."""
    n_cap: int = 4
    """Largest ``n`` (and number of prompts in one completions request)."""
    max_body_bytes: int = 64 * 1024
    """Largest request body; larger ones get 413."""
    api_key: str | None = None
    """When set, every route but ``/health`` and the web page requires ``Authorization: Bearer <api_key>``."""
    cors_origins: list[str] = field(default_factory=list)
    """Origins allowed by CORS; empty = CORS off."""
    allowed_hosts: list[str] | None = None
    """Host header values accepted (port ignored; ``*`` = any); ``None`` = no check."""
    keep_alive_s: float = 5.0
    """Seconds an idle keep-alive connection stays open (uvicorn's ``timeout_keep_alive``)."""
    max_connections: int = 128
    """Most open connections and requests at once; beyond it uvicorn answers 503 (``limit_concurrency``)."""
    max_header_kb: int = 16
    """Largest request head in KiB (uvicorn's ``h11_max_incomplete_event_size``)."""

    def __post_init__(self) -> None:
        problems = [f"{name} must be >= 1, got {getattr(self, name)}" for name in
                    ("max_batch", "max_queue", "max_tokens_cap", "default_max_tokens", "n_cap", "max_body_bytes",
                     "max_connections", "max_header_kb")
                    if getattr(self, name) < 1]
        if not math.isfinite(self.max_wait_ms) or self.max_wait_ms < 0:
            problems.append(f"max_wait_ms must be a finite number >= 0, got {self.max_wait_ms}")
        if not math.isfinite(self.keep_alive_s) or self.keep_alive_s <= 0:
            problems.append(f"keep_alive_s must be a finite number > 0, got {self.keep_alive_s}")
        if 1 <= self.max_tokens_cap < self.default_max_tokens:
            problems.append(f"default_max_tokens ({self.default_max_tokens}) exceeds max_tokens_cap "
                            f"({self.max_tokens_cap})")
        if self.api_key is not None and (not self.api_key.strip() or self.api_key != self.api_key.strip()):
            problems.append("api_key is empty or has surrounding spaces; give a non-empty key or none")
        bad_origins = [o for o in self.cors_origins if o != "*" and not re.fullmatch(r"https?://[^/\s?#]+", o)]
        if bad_origins:
            problems.append(f"cors_origins: {', '.join(map(repr, bad_origins))} not an origin; give scheme://host"
                            "[:port] with no path or trailing slash (e.g. https://example.org), or '*' for any")
        if self.allowed_hosts is not None and not [h for h in self.allowed_hosts if h.strip()]:
            problems.append("allowed_hosts is empty; give at least one host name, or '*' for any")
        if problems:
            raise KoGPT2Error("bad server settings: " + "; ".join(problems))


def create_app(model_dir: str | Path | None = None, config: ServeConfig | None = None, *, model=None,
               tokenizer=None, classifier: Classifier | None = None,
               chat_adapter: str | Path | None = None, device: str | None = None, backend: str = "torch",
               dtype: str = "auto") -> FastAPI:
    """Build the server app.

    Args:
        model_dir: HF model directory; ``None`` = the bundled model (ignored when ``model`` is given).
        config: limits and switches (defaults: ``ServeConfig()``).
        model: an already loaded causal LM (then ``tokenizer`` is required too).
        tokenizer: its tokenizer.
        classifier: ``texts -> [{"label": ..., "score": ...}, ...]`` behind ``/api/classify``;
            ``None`` = the endpoint answers 501.
        chat_adapter: a ``kogpt2 finetune chat`` output applied to ``/v1/chat/completions`` (and the web
            demo's chat tab), on ``model_dir``; ``None`` = chat uses the model as it is.
        device: ``cpu``, ``cuda`` or ``auto`` for the model (None: the CPU, or where ``model`` is).
        backend: how ``model_dir`` is decoded for ``/v1/completions``: ``torch``, ``onnx`` or ``auto``
            (as ``kogpt2 generate --backend``: ONNX Runtime on the CPU when an export is ready).
            The chat adapter always runs in torch (PEFT).
        dtype: ``auto``, ``fp32``, ``bf16`` (torch) or ``int8`` (as ``kogpt2 generate --dtype``).
    """
    from kogpt2.generation.backends import load_decoder
    from kogpt2.paths import bundled_model_dir
    from kogpt2.tokenizer import load_tokenizer

    cfg = config or ServeConfig()
    if model is None:
        path = Path(model_dir) if model_dir is not None else bundled_model_dir()
        # a ready Decoder (the batcher takes it as it is), chosen as `kogpt2 generate` chooses it
        model = load_decoder(path, backend=backend, dtype=dtype, device=device or "cpu")
        tokenizer = load_tokenizer(path)
        name = cfg.model_name or path.name
    elif tokenizer is None:
        raise KoGPT2Error("create_app: give `tokenizer` together with `model`")
    else:
        name = cfg.model_name or getattr(model.config, "_name_or_path", "") or "kogpt2"
        name = Path(str(name)).name or "kogpt2"
    chat = None
    if chat_adapter is not None:
        from kogpt2.chat import load_chat_model

        chat = load_chat_model(model_dir if model_dir is not None else bundled_model_dir(), chat_adapter)
    state = _State(cfg, name, model, tokenizer, classifier, chat, device)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for b in state.batchers():
            b.start()
        yield
        for b in state.batchers():
            b.stop()

    # NOTE: no /docs: FastAPI's Swagger page loads its scripts from a CDN (blank when offline);
    # /openapi.json stays, behind the API key, for any OpenAPI viewer.
    app = FastAPI(title="KoGPT2", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  redirect_slashes=False)  # a 307 with no body breaks OpenAI clients; a JSON 404 instead
    app.state.kogpt2 = state
    _install_errors(app)
    _install_routes(app, state)
    app.add_middleware(Guard, api_key=cfg.api_key, max_body_bytes=cfg.max_body_bytes, metrics=state.metrics,
                       allowed_hosts=cfg.allowed_hosts)
    if cfg.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=cfg.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


class _State:
    """Everything the routes share."""

    def __init__(self, cfg: ServeConfig, name: str, model, tokenizer, classifier, chat=None,
                 device: str | None = None) -> None:
        self.cfg, self.name, self.model, self.classifier = cfg, name, model, classifier
        self.created = int(time.time())
        self.metrics = Metrics()
        # NOTE: a second tokenizer for the event loop: HF fast tokenizers raise "Already borrowed"
        # when one object is used from two threads while the worker pads a batch.
        self.counter_tok = _clone_tokenizer(tokenizer)
        self.batcher = Batcher(model, tokenizer, cfg.max_batch, cfg.max_queue, cfg.max_wait_ms / 1000,
                               self.metrics, device=device)
        # chat answers come from the chat adapter's model, decoded by its own worker
        self.chat_batcher = self.batcher if chat is None else Batcher(
            chat[0], chat[1], cfg.max_batch, cfg.max_queue, cfg.max_wait_ms / 1000, self.metrics,
            device=device)
        self.context = self.batcher.decoder.context

    def batchers(self) -> list[Batcher]:
        return [self.batcher] if self.chat_batcher is self.batcher else [self.batcher, self.chat_batcher]

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as the model sees it (an empty prompt still feeds ``</s>``)."""
        return max(1, len(self.counter_tok(text, add_special_tokens=False)["input_ids"])) if text else 1


def _clone_tokenizer(tokenizer):
    import copy

    try:
        return copy.deepcopy(tokenizer)
    except Exception:  # noqa: BLE001 - a tokenizer that cannot be copied is shared
        return tokenizer


# --- errors ------------------------------------------------------------------------------------
def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return JSONResponse(error_body(f"the body is not valid JSON: {first.get('ctx', {}).get('error', '')}",
                                           code="invalid_json"), status_code=422)
        if tuple(first.get("loc", ())) == ("body",):  # no body, or one that is not a JSON object
            what = "is empty" if first.get("type") == "missing" else "is not a JSON object"
            return JSONResponse(error_body(f"the body {what}; send a JSON object with Content-Type: "
                                           "application/json", code="invalid_body"), status_code=422)
        # pydantic adds union members to the location ("prompt", "str"); OpenAI's param is the field path
        loc = [str(x) for x in first.get("loc", ()) if x != "body" and not _UNION_TAG.match(str(x))]
        param = ".".join(loc) or None
        msg = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        message = f"{param}: {msg}" if param else msg
        return JSONResponse(error_body(message, param=param, code="invalid_value"), status_code=422)

    @app.exception_handler(KoGPT2Error)
    async def _kogpt2_error(request: Request, exc: KoGPT2Error) -> JSONResponse:
        return JSONResponse(error_body(str(exc), code="invalid_value"), status_code=422)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id(request.scope)
        log.error("request %s: %s %s failed", rid, request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body(f"internal error (request {rid}); see the server log", "server_error",
                                       code="internal_error"), status_code=500, headers={"x-request-id": rid})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Any other HTTP error raised by the framework (e.g. a body it cannot parse): OpenAI's shape."""
        return JSONResponse(error_body(str(exc.detail), code=f"http_{exc.status_code}"),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(404)
    async def _not_found(request: Request, exc) -> JSONResponse:
        return JSONResponse(error_body(f"no route {request.method} {request.url.path}", code="not_found"),
                            status_code=404)

    @app.exception_handler(405)
    async def _bad_method(request: Request, exc) -> JSONResponse:
        return JSONResponse(error_body(f"method {request.method} is not allowed on {request.url.path}",
                                       code="method_not_allowed"), status_code=405)


# --- routes ------------------------------------------------------------------------------------
def _install_routes(app: FastAPI, st: _State) -> None:
    if WEB_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        page = WEB_DIR / "index.html"
        if not page.is_file():
            raise ApiError(404, "the web demo is not installed (kogpt2/web/index.html is missing)")
        return FileResponse(page, media_type="text/html; charset=utf-8")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": st.name, "queue_depth": sum(b.queue_depth() for b in st.batchers()),
                "active_rows": sum(b.busy_rows for b in st.batchers()), "sentiment": st.classifier is not None,
                "chat_adapter": st.chat_batcher is not st.batcher}

    @app.get("/metrics")
    async def metrics() -> Response:
        st.metrics.queue_depth.set(sum(b.queue_depth() for b in st.batchers()))
        st.metrics.active_rows.set(sum(b.busy_rows for b in st.batchers()))
        return Response(st.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [_model_card(st)]}

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str) -> dict:
        _check_model(st, model_id)
        return _model_card(st)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request) -> Response:
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts or len(prompts) > st.cfg.n_cap:
            raise ApiError(422, f"prompt: give 1 to {st.cfg.n_cap} prompts, got {len(prompts)}", "prompt",
                           code="invalid_value")
        return await _generate(st, request, req, prompts, chat=False)

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest, request: Request) -> Response:
        if req.messages[-1].role != "user":
            raise ApiError(422, "messages: the last message must have role 'user'", "messages",
                           code="invalid_value")
        prompt = render_chat([(m.role, m.content) for m in req.messages], req.label)
        return await _generate(st, request, req, [prompt], chat=True)

    @app.post("/api/classify")
    async def classify(req: ClassifyRequest) -> dict:
        if st.classifier is None:
            raise ApiError(501, "no sentiment head is loaded; start the server with "
                                "`kogpt2 serve --sentiment DIR`", type_="not_implemented", code="no_sentiment")
        texts = [req.input] if isinstance(req.input, str) else req.input
        if not texts or len(texts) > 64 or any(len(t) > 4096 for t in texts):
            raise ApiError(422, "input: give 1 to 64 texts of at most 4096 characters", "input",
                           code="invalid_value")
        from starlette.concurrency import run_in_threadpool

        results = await run_in_threadpool(st.classifier, texts)
        return {"object": "list", "model": "sentiment", "data": [dict(r, index=i) for i, r in enumerate(results)]}


def _model_card(st: _State) -> dict:
    return {"id": st.name, "object": "model", "created": st.created, "owned_by": "kogpt2",
            "context_length": st.context}


def _check_model(st: _State, model: str | None) -> None:
    if model and model != st.name:
        raise ApiError(404, f"model {model!r} is not served here; this server serves {st.name!r} "
                            "(see GET /v1/models)", "model", code="model_not_found")


# --- generation --------------------------------------------------------------------------------
def _row_configs(st: _State, req: SamplingRequest, chat: bool, n_prompts: int) -> tuple[list, int]:
    """One SamplingConfig per row (prompt-major, then n), and the max_tokens used.

    Defaults: the ``default`` preset (the model's generation_config.json) for completions, the
    ``chat`` preset for chat completions; the request's values over them.
    """
    from kogpt2.generation.api import config_for

    cap = st.cfg
    max_tokens = (getattr(req, "max_completion_tokens", None) if chat else None) or req.max_tokens \
        or cap.default_max_tokens
    if max_tokens > cap.max_tokens_cap:
        name = "max_completion_tokens" if chat and getattr(req, "max_completion_tokens", None) else "max_tokens"
        raise ApiError(422, f"{name}: {max_tokens} exceeds this server's cap of {cap.max_tokens_cap}",
                       name, code="invalid_value")
    if req.n > cap.n_cap:
        raise ApiError(422, f"n: {req.n} exceeds this server's cap of {cap.n_cap}", "n", code="invalid_value")
    stops = req.stop_list()
    if len(stops) > 4 or any(not s or len(s) > 64 for s in stops):
        raise ApiError(422, "stop: give at most 4 non-empty sequences of at most 64 characters", "stop",
                       code="invalid_value")
    try:
        base = config_for(st.batcher.decoder, "chat" if chat else "default", max_new_tokens=max_tokens,
                          stop=stops, **req.sampling_values())
        seeds = [None if base.seed is None else (base.seed + j) % 2**63 for j in range(req.n)]
        configs = [base.replace(seed=seed) for _ in range(n_prompts) for seed in seeds]
    except (KoGPT2Error, ValueError) as e:
        api_names = {name: api for api, name in SAMPLING_FIELDS.items()} | {"max_new_tokens": "max_tokens"}
        fields = [api_names.get(f, f) for f in getattr(e, "fields", [])]
        raise ApiError(422, str(e), fields[0] if fields else None, code="invalid_value") from e
    return configs, max_tokens


async def _generate(st: _State, request: Request, req: SamplingRequest, prompts: list[str], chat: bool) -> Response:
    started = time.perf_counter()
    _check_model(st, req.model)
    unsupported = req.unsupported()
    if unsupported:
        raise ApiError(422, f"{unsupported}: not supported by this server (it returns text only); leave it out",
                       unsupported, code="unsupported_parameter")
    configs, max_tokens = _row_configs(st, req, chat, len(prompts))
    prompt_tokens = [st.count_tokens(p) for p in prompts]
    longest = max(prompt_tokens)
    if longest + max_tokens > st.context:
        given = (getattr(req, "max_completion_tokens", None) if chat else None) or req.max_tokens
        asked = "max_tokens" if given else "max_tokens (not given: the server's default)"
        raise ApiError(422, f"this model's context is {st.context} tokens; the prompt has {longest} and "
                            f"{asked} asks for {max_tokens} more; shorten the prompt or lower max_tokens",
                       "messages" if chat else "prompt", code="context_length_exceeded")
    rows = [p for p in prompts for _ in range(req.n)]
    batcher = st.chat_batcher if chat else st.batcher
    try:
        ticket = batcher.submit(rows, configs, request_id(request.scope), stream=bool(req.stream))
    except QueueFull as e:
        retry = max(1, math.ceil(batcher.queue_depth() / st.cfg.max_batch))
        raise ApiError(503, f"the server is busy ({e}); retry in {retry} s", type_="server_busy",
                       code="queue_full", headers={"Retry-After": str(retry)}) from e
    batcher.start()
    st.metrics.prompt_tokens.inc(sum(prompt_tokens) * req.n)
    call = _Call(st, batcher, req, chat, ticket, max_tokens, sum(prompt_tokens), started)  # usage: each prompt once
    if req.stream:
        return StreamingResponse(call.sse(request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return JSONResponse(await call.collect(request))


class _Call:
    """One generation request in flight: collects or streams its rows' text."""

    def __init__(self, st: _State, batcher: Batcher, req: SamplingRequest, chat: bool, ticket: Ticket,
                 max_tokens: int, prompt_tokens: int, started: float) -> None:
        self.st, self.batcher, self.req, self.chat, self.ticket = st, batcher, req, chat, ticket
        self.max_tokens, self.prompt_tokens, self.started = max_tokens, prompt_tokens, started
        self.texts = [""] * ticket.n_rows
        self.reasons: list[str | None] = [None] * ticket.n_rows
        self.tokens = [0] * ticket.n_rows
        prefix = "chatcmpl-" if chat else "cmpl-"
        self.id, self.created = prefix + uuid.uuid4().hex[:24], int(time.time())
        self.endpoint = "chat" if chat else "completions"

    async def _events(self, request: Request) -> AsyncIterator[tuple[str, Any]]:
        """``("chunks", [(row, text)])`` and ``("end", row)`` until every row ended;
        stops early (the rows cancelled) as soon as the client goes away."""
        watcher = asyncio.ensure_future(self._watch_disconnect(request))
        try:
            while True:
                kind, payload = await self.ticket.events.get()
                if kind == "gone":
                    return
                async for event in self._event(kind, payload):
                    yield event
                if kind == "done":
                    return
        finally:
            watcher.cancel()

    async def _event(self, kind: str, payload: Any) -> AsyncIterator[tuple[str, Any]]:
        if kind == "chunks":
            for i, text in payload:
                self.texts[i] += text
            yield kind, payload
        elif kind == "end":
            i, self.reasons[i], self.tokens[i] = payload
            yield kind, i
        elif kind == "error":
            raise RuntimeError(payload)

    def _usage(self) -> dict:
        self.st.metrics.latency.labels(self.endpoint).observe(time.perf_counter() - self.started)
        total = sum(self.tokens)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": total,
                "total_tokens": self.prompt_tokens + total}

    async def _watch_disconnect(self, request: Request) -> None:
        """Cancel the rows as soon as the client goes away (the body is read: the next message is the end)."""
        while (await request.receive())["type"] != "http.disconnect":
            pass
        self.batcher.forget(self.ticket)
        self.ticket.events.put_nowait(("gone", None))

    def _failed(self, e: Exception) -> dict:
        self.batcher.forget(self.ticket)
        rid = self.ticket.request_id
        log.error("request %s: generation failed: %s", rid, e)
        return error_body(f"generation failed (request {rid}): {e}", "server_error", code="generation_failed")

    async def collect(self, request: Request) -> dict:
        try:
            async for _ in self._events(request):
                pass
        except RuntimeError as e:
            body = self._failed(e)
            raise ApiError(500, body["error"]["message"], type_="server_error", code="generation_failed") from e
        except asyncio.CancelledError:
            self.batcher.forget(self.ticket)
            raise
        usage = self._usage()
        rows = enumerate(zip(self.texts, self.reasons))
        if self.chat:
            choices = [{"index": i, "message": {"role": "assistant", "content": t}, "logprobs": None,
                        "finish_reason": r} for i, (t, r) in rows]
        else:
            choices = [{"index": i, "text": t, "logprobs": None, "finish_reason": r} for i, (t, r) in rows]
        return {"id": self.id, "object": "chat.completion" if self.chat else "text_completion",
                "created": self.created, "model": self.st.name, "system_fingerprint": None,
                "choices": choices, "usage": usage}

    def _chunk(self, choices: list[dict], usage: dict | None = None) -> str:
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        body: dict[str, Any] = {"id": self.id, "object": obj, "created": self.created, "model": self.st.name,
                                "system_fingerprint": None, "choices": choices}
        if usage is not None:
            body["usage"] = usage
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def _choice(self, i: int, text: str | None, reason: str | None = None, role: bool = False) -> dict:
        if not self.chat:
            return {"index": i, "text": text or "", "logprobs": None, "finish_reason": reason}
        delta: dict[str, str] = {"role": "assistant"} if role else {}
        if text is not None:
            delta["content"] = text
        return {"index": i, "delta": delta, "logprobs": None, "finish_reason": reason}

    async def sse(self, request: Request) -> AsyncIterator[str]:
        """Server-sent events in OpenAI's streaming format, ending with ``data: [DONE]``."""
        finished = False
        try:
            if self.chat:
                for i in range(self.ticket.n_rows):
                    yield self._chunk([self._choice(i, "", role=True)])
            async for kind, payload in self._events(request):
                if kind == "chunks":
                    for i, text in payload:
                        yield self._chunk([self._choice(i, text)])
                else:
                    yield self._chunk([self._choice(payload, None if self.chat else "", self.reasons[payload])])
            if self.ticket.cancelled:
                return
            usage = self._usage()
            opts = self.req.stream_options
            if opts is not None and opts.include_usage:
                yield self._chunk([], usage)
            yield "data: [DONE]\n\n"
            finished = True
        except RuntimeError as e:
            yield f"data: {json.dumps(self._failed(e), ensure_ascii=False)}\n\n"
        finally:
            if not finished:  # client gone or failure: stop the rows still decoding
                self.batcher.forget(self.ticket)

def load_sentiment(path: str | Path) -> Classifier:
    """A ``/api/classify`` backend from a sentiment head directory (``kogpt2.sentiment``).

    ``kogpt2.sentiment.load_classifier(path).classify(texts)`` gives ``(label, probability)`` per
    text; the API returns ``{"label", "score"}`` objects.
    """
    try:
        from kogpt2 import sentiment
    except ImportError as e:
        raise KoGPT2Error("--sentiment needs the kogpt2.sentiment module, which this install lacks") from e
    loader = getattr(sentiment, "load_classifier", None)
    if loader is None:
        raise KoGPT2Error("kogpt2.sentiment has no load_classifier(path); cannot serve /api/classify")
    clf = loader(path)
    predict = getattr(clf, "classify", clf)

    def classify(texts: list[str]) -> list[dict]:
        out = predict(texts)
        return [r if isinstance(r, dict) else {"label": r[0], "score": float(r[1])} if isinstance(r, (tuple, list))
                else {"label": str(r)} for r in out]

    return classify
