"""Model backends for the decoding loop: one forward step with a KV cache.

The loop sees a model only through a :class:`kogpt2.generation.decoder.Decoder`.
Backends:

* ``torch`` (any HF causal LM directory, :class:`~kogpt2.generation.torch_decoder.TorchDecoder`):
  on the CPU ``fp32``, ``bf16``, or ``int8`` (GPT-2's ``Conv1D`` swapped for ``nn.Linear``, then
  ``torch.ao`` dynamic int8 quantization); on CUDA bf16 (fp16 where bf16 is missing), and GPT-2
  models decode with CUDA graphs (:class:`~kogpt2.generation.graph_decoder.GraphDecoder`).
* ``onnx``: a directory written by ``kogpt2 export onnx`` run by ONNX Runtime on the CPU
  (see ``kogpt2.generation.onnx_backend``).

"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from kogpt2.devices import inference_dtype, resolve_device
from kogpt2.errors import KoGPT2Error
from kogpt2.generation.decoder import Decoder
from kogpt2.generation.graph_decoder import GraphDecoder
from kogpt2.generation.torch_decoder import TorchDecoder
from kogpt2.paths import resolve_model_dir

BACKENDS = ("auto", "torch", "onnx")
DTYPES = ("auto", "fp32", "bf16", "int8")


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


def load_decoder(model: Any = None, backend: str = "torch", dtype: str = "auto",
                 device: str | torch.device | None = None, threads: int | None = None) -> Decoder:
    """Build a :class:`Decoder` from a directory (``None`` = bundled model), a HF model, or a Decoder.

    Args:
        model: model directory, loaded ``transformers`` model, or a ready ``Decoder``.
        backend: ``torch``, ``onnx``, or ``auto`` (on the CPU ``onnx`` where onnxruntime is
            installed and an export of the directory is ready, see :func:`pick_backend`; else ``torch``).
        dtype: ``auto`` (fp32 on the CPU, bf16/fp16 on CUDA), ``fp32``, ``bf16`` or ``int8``
            (``onnx``: ``fp32``/``int8``, picks ``model.onnx`` or ``model_int8.onnx``).
        device: ``cpu``, ``cuda`` or ``auto`` (cuda when available); None = ``auto`` for a
            directory, where it already is for a loaded model. ONNX runs on the CPU.
        threads: ONNX Runtime intra-op threads (None = ``kogpt2.devices.default_threads()``).
    """
    check_choice(backend, BACKENDS, "backend")
    check_choice(dtype, DTYPES, "dtype")
    if isinstance(model, Decoder):
        return model
    is_dir = model is None or isinstance(model, (str, Path))
    if device is None and not is_dir:
        param = next(model.parameters(), None)
        dev = param.device if param is not None else torch.device("cpu")
    else:
        dev = resolve_device(device)
    if backend == "auto":
        backend = pick_backend(model, dtype) if is_dir and dev.type == "cpu" else "torch"
    if backend == "onnx":
        if dev.type != "cpu":
            raise KoGPT2Error("the ONNX backend runs on the CPU; use --backend torch with --device cuda")
        from kogpt2.generation.onnx_backend import OnnxDecoder

        if model is not None and not isinstance(model, (str, Path)):
            raise KoGPT2Error("--backend onnx needs a directory written by `kogpt2 export onnx`")
        return OnnxDecoder.from_dir(model, dtype="fp32" if dtype == "auto" else dtype, threads=threads)
    if dtype == "int8" and dev.type != "cpu":
        raise KoGPT2Error("int8 runs on the CPU; use --dtype auto (bf16) with --device cuda")
    torch_dtype = inference_dtype(dev) if dtype == "auto" else torch.bfloat16 if dtype == "bf16" else torch.float32
    if is_dir:
        from kogpt2.model import load_model

        model = load_model(resolve_model_dir(model), dtype=torch_dtype)
    elif dtype != "auto" or (device is not None and dev.type != "cpu"):
        model = model.to(torch_dtype)
    if dtype == "int8":
        model = quantize_int8(model)
    model = model.to(dev).eval()
    if dev.type == "cuda" and getattr(model.config, "model_type", None) == "gpt2":
        return GraphDecoder(model)
    return TorchDecoder(model)


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
    from kogpt2.generation.onnx_backend import ready_onnx_dir

    try:
        return "onnx" if ready_onnx_dir(model, "fp32" if dtype == "auto" else dtype) is not None else "torch"
    except (KoGPT2Error, OSError):
        return "torch"
