"""Request bodies of the OpenAI-compatible endpoints, and the error shape.

The sampling fields are generated from ``kogpt2.generation.config.SamplingConfig`` (one table,
:data:`SAMPLING_FIELDS`) and validated by it; limits that depend on the server (``max_tokens``
cap, ``n`` cap, context length) are checked in ``app`` with the tokenizer.
Unknown fields are ignored, as OpenAI clients send optional fields we do not use; OpenAI fields
this server cannot honour (:data:`UNSUPPORTED`) are refused when set, never silently dropped.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator


class ApiError(Exception):
    """An error answered as ``{"error": {"message", "type", "param", "code"}}`` with ``status``."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 type_: str = "invalid_request_error", code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
        self.type, self.code, self.headers = type_, code, headers

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    """OpenAI's error JSON."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class StreamOptions(BaseModel):
    include_usage: bool = False


# Request field -> SamplingConfig field. The OpenAI names where OpenAI (or vLLM: min_tokens) has
# one; types and descriptions come from SamplingConfig, and every value is validated there
# (an invalid one is answered 422). None = the endpoint's preset decides.
SAMPLING_FIELDS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
                   "typical_p": "typical_p", "repetition_penalty": "repetition_penalty",
                   "no_repeat_ngram_size": "no_repeat_ngram_size", "min_tokens": "min_new_tokens",
                   "seed": "seed"}


def _sampling_fields() -> dict[str, Any]:
    """pydantic field definitions generated from ``SamplingConfig``'s fields and their docs."""
    from kogpt2.config_flags import field_docs
    from kogpt2.generation.config import SamplingConfig

    hints = typing.get_type_hints(SamplingConfig)
    docs = field_docs(SamplingConfig)
    out = {}
    for api, name in SAMPLING_FIELDS.items():
        kind = hints[name]
        base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
        out[api] = (base | None, Field(None, description=docs.get(name, "") + " (default: the endpoint's preset)"))
    return out


_SamplingFields = create_model("_SamplingFields", __config__=ConfigDict(extra="allow"), **_sampling_fields())

UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "logprobs": (None, False), "top_logprobs": (None, 0), "echo": (None, False), "best_of": (None, 1),
    "suffix": (None, ""), "logit_bias": (None, {}), "presence_penalty": (None, 0), "frequency_penalty": (None, 0),
    "tools": (None, []), "tool_choice": (None, "none", "auto"), "functions": (None, []),
    "function_call": (None, "none", "auto"), "response_format": (None, {"type": "text"}),
}
"""OpenAI request fields this server does not implement, with the values that ask for nothing (accepted)."""


class SamplingRequest(_SamplingFields):
    """Fields shared by completion and chat-completion requests (the base of both)."""

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    @field_validator("n", "stream", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: Any) -> Any:
        """OpenAI allows ``null`` for these: the default."""
        return cls.model_fields[info.field_name].default if value is None else value

    def unsupported(self) -> str | None:
        """The first field of :data:`UNSUPPORTED` this request sets to a value that asks for something."""
        extra = self.model_extra or {}
        return next((k for k, fine in UNSUPPORTED.items() if k in extra and extra[k] not in fine), None)

    def stop_list(self) -> list[str]:
        """``stop`` as a list (OpenAI allows a string, a list, or null)."""
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def sampling_values(self) -> dict[str, Any]:
        """The ``SamplingConfig`` fields this request sets (unset ones are left to the preset)."""
        return {name: getattr(self, api) for api, name in SAMPLING_FIELDS.items() if getattr(self, api) is not None}


class CompletionRequest(SamplingRequest):
    """``POST /v1/completions``: one prompt (or a short list of prompts)."""

    prompt: str | list[str] = ""

    @field_validator("prompt", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(v, int) or (isinstance(v, list) and v and all(
                isinstance(x, int) for x in v)) for v in value):
            raise ValueError("token-id prompts are not supported; send the prompt as text")
        return value


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str

    @field_validator("content", mode="before")
    @classmethod
    def _join_text_parts(cls, value: Any) -> Any:
        """OpenAI's list of content parts: the text parts joined; any other kind is refused by name."""
        if not isinstance(value, list):
            return value
        texts = []
        for part in value:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            if kind != "text" or not isinstance(part.get("text"), str):
                raise ValueError(f"only text content parts are supported, got {kind!r}")
            texts.append(part["text"])
        return "\n".join(texts)


class ChatRequest(SamplingRequest):
    """``POST /v1/chat/completions``; ``max_completion_tokens`` is the newer name of ``max_tokens``.

    ``label`` is KoGPT2 chat's sentiment slot (the text between ``<unused1>`` and ``<sys>``).
    """

    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    label: str = Field("0", max_length=16)


class ClassifyRequest(BaseModel):
    """``POST /api/classify``: one text or a list of texts."""

    model_config = ConfigDict(extra="ignore")

    input: str | list[str] = Field(..., description="text(s) to classify")
