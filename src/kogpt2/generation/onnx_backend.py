"""ONNX Runtime backend: runs a ``kogpt2 export onnx`` directory through the same decoding loop.

A plain HF directory given with ``--backend onnx`` is exported once into a cache
(``$KOGPT2_CACHE`` or ``~/.cache/kogpt2/onnx/<hash>``) and reused.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kogpt2.devices import default_threads
from kogpt2.errors import KoGPT2Error
from kogpt2.export import ONNX_FILE, ONNX_INT8_FILE, export_onnx, io_names, quantize_int8
from kogpt2.generation.decoder import Decoder, join_pairs
from kogpt2.model_info import context_length
from kogpt2.paths import resolve_model_dir


def cache_dir(model_dir: Path) -> Path:
    """Where an auto-export of ``model_dir`` is kept (keyed by path, config and weight mtime)."""
    weights = model_dir / "model.safetensors"
    key = f"{model_dir.resolve()}|{weights.stat().st_mtime_ns if weights.is_file() else 0}"
    root = Path(os.environ.get("KOGPT2_CACHE", Path.home() / ".cache" / "kogpt2"))
    return root / "onnx" / hashlib.sha256(key.encode()).hexdigest()[:16]


def ready_onnx_dir(path: str | Path | None, dtype: str = "fp32") -> Path | None:
    """The directory holding a ready ONNX file for ``dtype`` (``path`` itself or its cache), or None."""
    p = resolve_model_dir(path)
    file = ONNX_INT8_FILE if dtype == "int8" else ONNX_FILE
    for d in (p, cache_dir(p)):
        if (d / file).is_file():
            return d
    return None


def resolve_onnx_dir(path: str | Path | None, dtype: str) -> Path:
    """An export directory holding the ONNX file for ``dtype``; exports/quantizes when needed."""
    p = resolve_model_dir(path)
    if not p.is_dir():
        raise KoGPT2Error(f"model directory not found: {p}")
    file = ONNX_INT8_FILE if dtype == "int8" else ONNX_FILE
    if not (p / ONNX_FILE).is_file():
        if not (p / "config.json").is_file():
            raise KoGPT2Error(f"{p} has neither {ONNX_FILE} nor config.json: give a `kogpt2 export onnx` "
                              "output or a Hugging Face model directory")
        out = cache_dir(p)
        if not (out / file).is_file():
            print(f"exporting {p} to ONNX once (cache: {out})", flush=True, file=__import__("sys").stderr)
            export_onnx(p, out, int8=dtype == "int8")
        p = out
    if not (p / file).is_file():
        if dtype != "int8":
            raise KoGPT2Error(f"{p / file} not found")
        quantize_int8(p / ONNX_FILE, p / ONNX_INT8_FILE)
    return p


class OnnxDecoder(Decoder):
    """A ``Decoder`` over an ONNX Runtime session of the exported graph (past as numpy arrays)."""

    def __init__(self, onnx_path: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise KoGPT2Error("--backend onnx needs onnxruntime: pip install 'kogpt2[onnx]'") from e
        onnx_path = Path(onnx_path)
        self.model_dir = onnx_path.parent
        cfg = json.loads((self.model_dir / "config.json").read_text(encoding="utf-8"))
        self.context = context_length(cfg)
        self.vocab_size = int(cfg["vocab_size"])
        self.n_layer, self.n_head = int(cfg["n_layer"]), int(cfg["n_head"])
        self.head_dim = int(cfg["n_embd"]) // self.n_head
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads(onnx=True)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.input_names, self.output_names = io_names(self.n_layer)

    @classmethod
    def from_dir(cls, path: str | Path | None, dtype: str = "fp32", threads: int | None = None) -> "OnnxDecoder":
        """Open ``model.onnx`` / ``model_int8.onnx`` of an export (or auto-export a HF directory)."""
        if dtype == "bf16":
            raise KoGPT2Error("--backend onnx runs fp32 or int8; use --backend torch for bf16")
        d = resolve_onnx_dir(path, dtype)
        return cls(d / (ONNX_INT8_FILE if dtype == "int8" else ONNX_FILE), threads=threads)

    def forward_step(self, input_ids, past, attention_mask, position_ids):
        B = input_ids.shape[0]
        if past is None:
            empty = np.zeros((B, self.n_head, 0, self.head_dim), dtype=np.float32)
            past = [empty] * (2 * self.n_layer)
        feed: dict[str, Any] = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy(),
                                "position_ids": position_ids.numpy()}
        feed.update(zip(self.input_names[3:], past))
        logits, *present = self.session.run(None, feed)
        return torch.from_numpy(logits[:, -1, :]), present

    def reorder(self, past, index):
        idx = index.cpu().numpy()
        return [p[idx] for p in past]

    def join(self, past, other):
        pairs = join_pairs([(torch.from_numpy(k), torch.from_numpy(v)) for k, v in zip(past[::2], past[1::2])],
                           [(torch.from_numpy(k), torch.from_numpy(v)) for k, v in zip(other[::2], other[1::2])])
        return [t.numpy() for kv in pairs for t in kv]

    def trim(self, past, start):
        return [np.ascontiguousarray(p[:, :, start:]) for p in past]  # (B, H, S, D)
