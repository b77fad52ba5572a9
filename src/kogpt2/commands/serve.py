"""``kogpt2 serve``: the OpenAI-compatible HTTP API and the "아무말 대잔치" web demo.

Examples::

    kogpt2 serve                                   # bundled model, http://127.0.0.1:8000
    kogpt2 serve --model runs/mini --port 8080
    KOGPT2_API_KEY=secret kogpt2 serve --host 0.0.0.0 --cors-origin https://example.org
    kogpt2 serve --model runs/chat --sentiment runs/sentiment --max-batch 32
"""

from __future__ import annotations

import argparse
import os

from kogpt2.errors import KoGPT2Error


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model directory (default: the bundled kogpt2-small)")
    parser.add_argument("--model-name", default=None, help="id shown in /v1/models (default: directory name)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--api-key", default=None,
                        help="require `Authorization: Bearer KEY` on /v1/* (default: env KOGPT2_API_KEY, else none)")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="allow this browser origin (repeatable); CORS is off by default")
    parser.add_argument("--sentiment", default=None, metavar="DIR",
                        help="sentiment head directory; enables POST /api/classify")
    parser.add_argument("--max-batch", type=int, default=16, help="most rows decoded together (default 16)")
    parser.add_argument("--max-queue", type=int, default=64, help="most rows waiting before 503 (default 64)")
    parser.add_argument("--max-wait-ms", type=float, default=10.0,
                        help="how long a request waits for others to batch with (default 10)")
    parser.add_argument("--max-tokens-cap", type=int, default=512, help="largest max_tokens accepted (default 512)")
    parser.add_argument("--n-cap", type=int, default=4, help="largest n accepted (default 4)")
    parser.add_argument("--max-body-kb", type=int, default=64, help="largest request body in KiB (default 64)")
    from kogpt2.devices import add_device_flags

    add_device_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from kogpt2.devices import resolve_device, set_threads
    from kogpt2.serve.app import ServeConfig, create_app, load_sentiment

    if not 0 < args.port < 65536:
        raise KoGPT2Error(f"--port must be between 1 and 65535, got {args.port}")
    device = resolve_device(args.device)
    set_threads(args.threads)
    cfg = ServeConfig(model_name=args.model_name, max_batch=args.max_batch, max_queue=args.max_queue,
                      max_wait_ms=args.max_wait_ms, max_tokens_cap=args.max_tokens_cap, n_cap=args.n_cap,
                      default_max_tokens=min(64, args.max_tokens_cap), max_body_bytes=args.max_body_kb * 1024,
                      api_key=args.api_key or os.environ.get("KOGPT2_API_KEY") or None,
                      cors_origins=args.cors_origin)
    classifier = load_sentiment(args.sentiment) if args.sentiment else None
    app = create_app(args.model, cfg, classifier=classifier, device=device)
    print(f"serving {app.state.kogpt2.name} on http://{args.host}:{args.port}/  (API: /v1, docs: /docs)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
