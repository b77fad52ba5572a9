"""``kogpt2 serve``: an OpenAI-compatible HTTP API with dynamic batching, and the web demo.

Modules: ``schemas`` (request/response models and limits), ``batcher`` (the dynamic batcher
around ``kogpt2.generation``), ``metrics`` (Prometheus counters), ``prompts``
(chat messages -> KoGPT2 chat prompt), ``app`` (the FastAPI app factory ``create_app``).

Example::

    kogpt2 serve                       # bundled model on http://127.0.0.1:8000
    kogpt2 serve --model runs/chat --port 8080 --api-key secret
"""

from kogpt2.serve.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
