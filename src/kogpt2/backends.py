"""Model backends for the sampler: one forward step with a KV cache.

The sampler (``kogpt2.sampling``) sees a model only through a :class:`Decoder`:
``forward_step(input_ids, past, attention_mask, position_ids) -> (logits, past)``.
Backends:

* ``torch`` (any HF causal LM directory): ``fp32``, ``bf16``, or ``int8`` (GPT-2's
  ``Conv1D`` swapped for ``nn.Linear``, then ``torch.ao`` dynamic int8 quantization).
* ``onnx``: a directory written by ``kogpt2 export onnx`` run by ONNX Runtime
  (see ``kogpt2.onnx_backend``).

Subclass :class:`TorchDecoder` and override ``forward_step`` to perturb the past
(PPLM) while reusing the sampler's processing, stopping and streaming.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from kogpt2.errors import KoGPT2Error

BACKENDS = ("auto", "torch", "onnx")
DTYPES = ("fp32", "bf16", "int8")


class Decoder:
    """What the sampler needs from a model. Subclasses implement ``forward_step``.

    Attributes:
        context: the longest sequence (prompt + new tokens) the model accepts.
        vocab_size: width of the logits.
    """

    context: int
    vocab_size: int

    def forward_step(self, input_ids: torch.Tensor, past: Any, attention_mask: torch.Tensor,
                     position_ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Run new tokens through the model.

        Args:
            input_ids: (B, T) new tokens (the whole left-padded prompt on the first call, then T=1).
            past: the cache returned by the previous call, or ``None`` on the first call.
            attention_mask: (B, P+T) 1 for real tokens, 0 for left padding (P = cached length).
            position_ids: (B, T) positions of the new tokens (padding does not count).

        Returns:
            (B, V) float32 logits for the next token after the last position, and the new cache.
        """
        raise NotImplementedError

    def reorder(self, past: Any, index: torch.Tensor) -> Any:
        """Select / repeat batch rows of the cache (beam search). ``index``: (B',) row indices."""
        raise NotImplementedError


class TorchDecoder(Decoder):
    """A Hugging Face causal LM (GPT-2, GPT-Neo, ...) with its ``DynamicCache``."""

    def __init__(self, model):
        self.model = model
        cfg = model.config
        self.context = int(getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", 1024))
        self.vocab_size = int(cfg.vocab_size)

    def forward_step(self, input_ids, past, attention_mask, position_ids):
        out = self.model(input_ids=input_ids, past_key_values=past, attention_mask=attention_mask,
                         position_ids=position_ids, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :].float(), out.past_key_values

    def reorder(self, past, index):
        past.reorder_cache(index)
        return past


def linearize(model) -> int:
    """Replace GPT-2's ``Conv1D`` layers by equivalent ``nn.Linear`` in place; returns how many.

    ``Conv1D`` stores its weight as (in, out); ``nn.Linear`` as (out, in). Dynamic int8
    quantization only knows ``nn.Linear``.
    """
    from transformers.pytorch_utils import Conv1D

    n = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                lin = torch.nn.Linear(child.weight.shape[0], child.weight.shape[1], dtype=child.weight.dtype)
                with torch.no_grad():
                    lin.weight.copy_(child.weight.t())
                    lin.bias.copy_(child.bias)
                setattr(parent, name, lin)
                n += 1
    return n


def quantize_int8(model):
    """Dynamic int8 quantization of every ``nn.Linear`` (lm head included) of a CPU model."""
    linearize(model)
    with warnings.catch_warnings():
        # NOTE: torch.ao.quantization is deprecated in favour of torchao, which is not a dependency.
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        # Untie the lm head first so the quantized copy does not replace the embedding.
        head = model.get_output_embeddings()
        if head is not None and head.weight is model.get_input_embeddings().weight:
            new_head = torch.nn.Linear(head.in_features, head.out_features, bias=head.bias is not None)
            with torch.no_grad():
                new_head.weight.copy_(head.weight)
            model.set_output_embeddings(new_head)
            model.config.tie_word_embeddings = False
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    """Raise a clear error unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise KoGPT2Error(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return value


def load_decoder(model: Any = None, backend: str = "torch", dtype: str = "fp32") -> Decoder:
    """Build a :class:`Decoder` from a directory (``None`` = bundled model), a HF model, or a Decoder.

    Args:
        model: model directory, loaded ``transformers`` model, or a ready ``Decoder``.
        backend: ``torch``, ``onnx``, or ``auto`` (``onnx`` where onnxruntime is installed and an
            export of the directory is ready, see :func:`pick_backend`; else ``torch``).
        dtype: ``fp32``, ``bf16`` or ``int8`` (``onnx``: ``fp32``/``int8``, picks ``model.onnx``
            or ``model_int8.onnx`` in the directory).
    """
    check_choice(backend, BACKENDS, "backend")
    check_choice(dtype, DTYPES, "dtype")
    if isinstance(model, Decoder):
        return model
    if backend == "auto":
        backend = pick_backend(model, dtype) if model is None or isinstance(model, (str, Path)) else "torch"
    if backend == "onnx":
        from kogpt2.onnx_backend import OnnxDecoder

        if model is not None and not isinstance(model, (str, Path)):
            raise KoGPT2Error("--backend onnx needs a directory written by `kogpt2 export onnx`")
        return OnnxDecoder.from_dir(model, dtype=dtype)
    if model is None or isinstance(model, (str, Path)):
        from kogpt2.model import load_model

        model = load_model(_model_dir(model), dtype="bf16" if dtype == "bf16" else "fp32")
    elif dtype == "bf16":
        model = model.to(torch.bfloat16)
    if dtype == "int8":
        model = quantize_int8(model)
    return TorchDecoder(model.eval())


def pick_backend(model: str | Path | None, dtype: str = "fp32") -> str:
    """What ``--backend auto`` runs: ``onnx`` when onnxruntime is installed and an ONNX file for
    ``dtype`` is ready (in the directory itself or in the export cache that
    ``kogpt2 export onnx DIR --cache`` fills), else ``torch``.

    ONNX Runtime starts without importing ``transformers``' model code and decodes a small
    model several times faster at batch 1, so this is what ``kogpt2 generate`` uses by default.
    """
    import importlib.util

    if dtype == "bf16" or importlib.util.find_spec("onnxruntime") is None:
        return "torch"
    from kogpt2.onnx_backend import ready_onnx_dir

    try:
        return "onnx" if ready_onnx_dir(model, dtype) is not None else "torch"
    except (KoGPT2Error, OSError):
        return "torch"


def _model_dir(path: str | Path | None) -> Path:
    """The model directory to load; a missing bundled model gets a clear error."""
    if path is not None:
        return Path(path)
    from kogpt2.paths import bundled_model_dir

    p = bundled_model_dir()
    if not (p / "config.json").is_file():
        raise KoGPT2Error(f"the bundled model is not installed ({p} is missing); "
                          "pass a model directory with --model DIR (or model=DIR)")
    return p
