"""``kogpt2 serve``: an OpenAI-compatible HTTP API with dynamic batching, and the web demo.

Modules: ``schemas`` (request/response models and limits), ``batcher`` (the dynamic batcher
around ``kogpt2.generation``, isolating a failing row from its batch-mates),
``metrics`` (Prometheus counters), ``middleware`` (Host allow-list, API key on every non-public
route, body size and UTF-8 checks, request ids), ``prompts`` (chat messages -> KoGPT2 chat
prompt), ``app`` (the FastAPI app factory ``create_app``).

Example::

    kogpt2 serve                       # bundled model (+ chat adapter) on http://127.0.0.1:8000
    kogpt2 serve --model runs/chat --port 8080 --api-key secret
"""

from kogpt2.serve.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
