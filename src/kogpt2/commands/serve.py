"""``kogpt2 serve``: the OpenAI-compatible HTTP API and the "아무말 대잔치" web demo.

Examples::

    kogpt2 serve                                   # bundled model (+ bundled chat adapter), http://127.0.0.1:8000
    kogpt2 serve --model runs/mini --port 8080
    KOGPT2_API_KEY=secret kogpt2 serve --host 0.0.0.0 --allowed-hosts kogpt2.example.org --cors-origin https://example.org
    kogpt2 serve --model runs/base --chat-adapter runs/chat --sentiment runs/sentiment --max-batch 32
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import math
import os
import socket

from kogpt2.config_flags import add_dataclass_flags, dataclass_kwargs
from kogpt2.errors import KoGPT2Error

LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "::1"]
log = logging.getLogger("kogpt2.serve")


def configure(parser: argparse.ArgumentParser) -> None:
    from kogpt2.serve.app import ServeConfig

    parser.add_argument("--model", default=None, help="model directory (default: the bundled kogpt2-small)")
    parser.add_argument("--chat-adapter", default=None, metavar="DIR",
                        help="chat adapter (`kogpt2 finetune chat` output) for /v1/chat/completions and the web "
                             "demo's chat tab (default: the bundled kogpt2-small-chat with the bundled model)")
    parser.add_argument("--no-chat-adapter", action="store_true", help="chat with the model as it is")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--api-key", default=None,
                        help="require `Authorization: Bearer KEY` on every route but /health and the web page "
                             "(default: env KOGPT2_API_KEY, else none)")
    parser.add_argument("--allowed-hosts", nargs="+", default=None, metavar="HOST",
                        help="Host header names accepted, '*' = any (default: localhost, 127.0.0.1, ::1 when "
                             "bound to loopback, else any)")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="allow this browser origin (repeatable); CORS is off by default")
    parser.add_argument("--sentiment", default=None, metavar="DIR",
                        help="sentiment head directory; enables POST /api/classify")
    parser.add_argument("--max-body-kb", type=int, default=64, help="largest request body in KiB (default 64)")
    parser.add_argument("--backend", default="auto",
                        help="auto (default: on the CPU onnx when onnxruntime and a ready export exist, see "
                             "`kogpt2 export onnx DIR --cache`; else torch), torch or onnx; chat stays in torch")
    parser.add_argument("--dtype", default="auto",
                        help="auto (default: fp32 on the CPU, bf16 on CUDA), fp32, bf16 (torch) or int8 (CPU)")
    from kogpt2.devices import add_device_flags

    add_device_flags(parser)
    add_dataclass_flags(parser, ServeConfig, exclude={"model_name", "max_body_bytes", "api_key", "cors_origins",
                                                      "allowed_hosts", "default_max_tokens"})
    parser.add_argument("--model-name", default=None, help="id shown in /v1/models (default: directory name)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from kogpt2.devices import resolve_device, set_threads
    from kogpt2.serve.app import ServeConfig, create_app, load_sentiment

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not 0 < args.port < 65536:
        raise KoGPT2Error(f"--port must be between 1 and 65535, got {args.port}")
    if args.threads is not None and args.threads < 1:
        raise KoGPT2Error(f"--threads must be >= 1, got {args.threads}")
    device = resolve_device(args.device)
    set_threads(args.threads)
    if args.max_body_kb < 1:
        raise KoGPT2Error(f"--max-body-kb must be >= 1, got {args.max_body_kb}")
    if args.chat_adapter and args.no_chat_adapter:
        raise KoGPT2Error("--chat-adapter and --no-chat-adapter conflict; give one")
    key = args.api_key if args.api_key is not None else os.environ.get("KOGPT2_API_KEY")
    if key is not None and (not key.strip() or key != key.strip()):
        raise KoGPT2Error("--api-key (or KOGPT2_API_KEY) is empty or has surrounding spaces; give a real key, "
                          "or leave it unset to serve without one")
    settings = dataclass_kwargs(ServeConfig, args)
    settings.update(default_max_tokens=min(64, max(1, args.max_tokens_cap)), max_body_bytes=args.max_body_kb * 1024,
                    api_key=key, cors_origins=args.cors_origin,
                    allowed_hosts=args.allowed_hosts or (LOOPBACK_HOSTS if _is_loopback(args.host) else None))
    cfg = ServeConfig(**settings)
    if args.model is not None:  # a bad model directory is the first error, before the chat adapter's notes
        from kogpt2.model_dir import check_model_dir
        from kogpt2.paths import resolve_model_dir

        check_model_dir(resolve_model_dir(args.model))
    sock = bind(args.host, args.port)
    try:
        classifier = load_sentiment(args.sentiment) if args.sentiment else None
        app = create_app(args.model, cfg, classifier=classifier, chat_adapter=chat_adapter(args),
                         device=device, backend=args.backend, dtype=args.dtype)
        print(f"serving {app.state.kogpt2.name} on http://{_url_host(args.host)}:{args.port}/  (API: /v1)",
              flush=True)
        config = uvicorn.Config(app, log_level="warning", timeout_keep_alive=math.ceil(cfg.keep_alive_s),
                                limit_concurrency=cfg.max_connections,
                                h11_max_incomplete_event_size=cfg.max_header_kb * 1024)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def chat_adapter(args: argparse.Namespace) -> str | None:
    """The chat adapter to serve: ``--chat-adapter``, else the bundled one with the bundled model."""
    from kogpt2.chat import bundled_chat_adapter_dir

    if args.no_chat_adapter:
        return None
    if args.chat_adapter:
        return args.chat_adapter
    default = bundled_chat_adapter_dir()
    if args.model is None and (default / "kogpt2_finetune.json").is_file():
        return str(default)
    log.warning("no chat adapter: /v1/chat/completions answers with the base model as it is "
                "(give --chat-adapter DIR, from `kogpt2 finetune chat`)")
    return None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, bound here so a busy port is one clear error, not uvicorn's exit 3."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno in (errno.EADDRINUSE, errno.EACCES):
            fix = "stop what uses it or give another --port" if e.errno == errno.EADDRINUSE else \
                "ports below 1024 need root; give a --port from 1024 up"
        else:  # an unknown name or an address this machine does not have
            fix = ("--host must be an address of this machine: 127.0.0.1 (loopback), 0.0.0.0 (every interface), "
                   "::1, or one of its own addresses")
        raise KoGPT2Error(f"cannot listen on {host}:{port}: {e.strerror or e}; {fix}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
