"""Export a GPT-2 directory to a standalone ONNX model with past key/values (optional int8).

    kogpt2 export onnx runs/mini runs/mini-onnx            # model.onnx
    kogpt2 export onnx runs/mini runs/mini-onnx --int8     # + model_int8.onnx

The output directory holds ``model.onnx`` (and ``model_int8.onnx``), ``config.json``,
``generation_config.json`` and the tokenizer files, so it runs from ONNX Runtime in any
language. Graph interface (L layers, H heads, D = head size, P = cached length)::

    inputs   input_ids (B, T) int64, attention_mask (B, P+T) int64 (1 = token, 0 = left pad),
             position_ids (B, T) int64, past_key_values.{i}.key / .value (B, H, P, D) float32
    outputs  logits (B, T, V) float32, present.{i}.key / .value (B, H, P+T, D) float32

The first call passes pasts with P = 0. The graph is traced from :class:`KVGraph`, which
reuses the HF modules (layer norms, projections, MLP) and spells out only the attention
with its cache, so the ONNX file needs no custom operator.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import torch
from torch import nn

from kogpt2.atomic import atomic_dir
from kogpt2.errors import KoGPT2Error

ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model_int8.onnx"
OPSET = 17
COPIED_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json")


def _proj(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A GPT-2 ``Conv1D`` as MatMul + Add (what ONNX Runtime's int8 quantizer recognises)."""
    return x @ conv.weight + conv.bias


class KVGraph(nn.Module):
    """GPT-2 forward with explicit past key/values, written to trace cleanly to ONNX."""

    def __init__(self, model):
        super().__init__()
        if model.config.model_type != "gpt2":
            raise KoGPT2Error(f"ONNX export supports GPT-2 models; this one is {model.config.model_type!r} "
                              "(use --backend torch for it)")
        if getattr(model.config, "add_cross_attention", False) or getattr(model.config, "scale_attn_by_inverse_layer_idx", False) \
                or getattr(model.config, "reorder_and_upcast_attn", False):
            raise KoGPT2Error("ONNX export supports the standard GPT-2 attention only")
        self.model = model.eval()
        self.n_head = model.config.n_head

    def _attention(self, block: nn.Module, h: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor,
                   bias: torch.Tensor):
        B, T, C = h.shape
        H, D = self.n_head, C // self.n_head
        q, k, v = _proj(block.attn.c_attn, h).split(C, dim=2)  # (B, T, C) each
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        k = torch.cat([past_k, k], dim=2)  # (B, H, P+T, D)
        v = torch.cat([past_v, v], dim=2)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(D)) + bias  # (B, H, T, P+T)
        y = att.softmax(-1) @ v  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)
        return _proj(block.attn.c_proj, y), k, v

    def forward(self, input_ids, attention_mask, position_ids, *past):
        tr = self.model.transformer
        x = tr.wte(input_ids) + tr.wpe(position_ids)  # (B, T, C)
        T, S = input_ids.shape[1], attention_mask.shape[1]
        q_pos = torch.arange(T, device=x.device) + (S - T)  # absolute slot of each query
        causal = torch.arange(S, device=x.device)[None, :] <= q_pos[:, None]  # (T, S)
        allowed = causal[None, None] & attention_mask[:, None, None, :].bool()  # (B, 1, T, S)
        # -1e9, not -inf: a fully padded query row stays finite (no NaN in the cache).
        bias = torch.where(allowed, torch.tensor(0.0), torch.tensor(-1e9))  # (B, 1, T, S)
        presents = []
        for i, block in enumerate(tr.h):
            a, k, v = self._attention(block, block.ln_1(x), past[2 * i], past[2 * i + 1], bias)
            x = x + a
            m = block.mlp
            x = x + _proj(m.c_proj, m.act(_proj(m.c_fc, block.ln_2(x))))
            presents += [k, v]
        logits = tr.ln_f(x) @ tr.wte.weight.t()  # (B, T, V), tied head
        return (logits, *presents)


def io_names(n_layer: int) -> tuple[list[str], list[str]]:
    """(input names, output names) of the exported graph."""
    past = [f"past_key_values.{i}.{kv}" for i in range(n_layer) for kv in ("key", "value")]
    present = [f"present.{i}.{kv}" for i in range(n_layer) for kv in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids", *past], ["logits", *present]


def export_onnx(model_dir: str | Path, out_dir: str | Path, int8: bool = False) -> Path:
    """Write ``model.onnx`` (+ ``model_int8.onnx``), config and tokenizer files to ``out_dir``.

    Args:
        model_dir: a HF GPT-2 directory (``kogpt2 train`` output, SKT's layout, ...).
        out_dir: where to write; created if needed.
        int8: also write a dynamically int8-quantized copy (ONNX Runtime's ``quantize_dynamic``).
    """
    from kogpt2.model import load_model

    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise KoGPT2Error("ONNX export needs the onnx extra: pip install 'kogpt2[onnx]'") from e
    src = Path(model_dir)
    model = load_model(src)
    final = Path(out_dir)
    graph = KVGraph(model)
    cfg = model.config
    H, D, L = cfg.n_head, cfg.n_embd // cfg.n_head, cfg.n_layer
    ids = torch.tensor([[5, 6, 7]])
    args = (ids, torch.ones(1, 3, dtype=torch.long), torch.arange(3)[None], *[torch.zeros(1, H, 0, D)] * (2 * L))
    inputs, outputs = io_names(L)
    axes = {"input_ids": {0: "batch", 1: "new"}, "position_ids": {0: "batch", 1: "new"},
            "attention_mask": {0: "batch", 1: "total"}, "logits": {0: "batch", 1: "new"}}
    axes.update({n: {0: "batch", 2: "past"} for n in inputs[3:]})
    axes.update({n: {0: "batch", 2: "total"} for n in outputs[1:]})
    # merge: OUT may be the model directory itself; the .onnx files land last, once their config is there
    with atomic_dir(final, merge=True, last=(".onnx",)) as out:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, args, str(out / ONNX_FILE), input_names=inputs, output_names=outputs,
                              dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)
        for name in COPIED_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, out / name)
        if int8:
            quantize_int8(out / ONNX_FILE, out / ONNX_INT8_FILE)
        (out / "onnx_export.json").write_text(json.dumps(
            {"source": str(src.resolve()), "opset": OPSET, "n_layer": L, "n_head": H, "head_dim": D,
             "files": [ONNX_FILE] + ([ONNX_INT8_FILE] if int8 else [])}, indent=2) + "\n", encoding="utf-8")
    return final


def quantize_int8(src: Path, dst: Path) -> Path:
    """Dynamic int8 quantization of the MatMul weights (activations quantized at run time)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a pre-processing hint on the root logger
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    finally:
        root.setLevel(level)
    return dst
