"""ONNX Runtime backend: runs a ``kogpt2 export onnx`` directory through the same decoding loop.

A plain HF directory given with ``--backend onnx`` is exported once into a cache
(``$KOGPT2_CACHE`` or ``~/.cache/kogpt2/onnx/<hash>``) and reused.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from kogpt2.devices import default_threads
from kogpt2.errors import KoGPT2Error
from kogpt2.export import EXPORT_FORMAT, ONNX_FILE, ONNX_INT8_FILE, export_format, export_onnx, io_names, quantize_int8
from kogpt2.generation.decoder import Decoder
from kogpt2.model_info import context_length
from kogpt2.paths import resolve_model_dir

INITIAL_ROOM = 128  # cache slots beyond the prompt allocated at the first step (then doubled as needed)


def cache_dir(model_dir: Path) -> Path:
    """Where an auto-export of ``model_dir`` is kept (keyed by path, weight mtime, graph format)."""
    weights = model_dir / "model.safetensors"
    key = f"{model_dir.resolve()}|{weights.stat().st_mtime_ns if weights.is_file() else 0}"
    if EXPORT_FORMAT > 1:  # NOTE: format 1 caches kept their original key; newer formats get new ones
        key += f"|format{EXPORT_FORMAT}"
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


class KVCache:
    """Per-layer key/value buffers of an ONNX decoder, appended to and compacted in place.

    Each layer's keys and values live in a numpy array (rows, H, slots, D) with room to spare
    in both the batch and the sequence dimension; the cache is the view of its first
    ``n_rows`` rows, wrapped without a copy in an ``OrtValue`` that is bound both as the
    graph's ``past`` input and as its ``present`` output, so the attention kernel writes the
    new keys/values into the free slots and nothing else is copied.

    Every row keeps its own tokens in its first ``lengths[row]`` slots (no padding between
    them): the decoder hands the graph a right-padded mask, so the attention of each row reads
    its own slots only, however long the other rows are. Rows leaving (:meth:`select` with
    increasing indices) are compacted within the arrays and rows joining (:meth:`join`) are
    copied into the spare rows, so continuous batching moves only the rows that change.
    Either dimension grows by doubling when it runs out (amortised, rare). These methods
    return a cache that may share the arrays of the one they were called on, which must not
    be used afterwards.
    """

    def __init__(self, storage: list[np.ndarray], lengths: np.ndarray, n_rows: int | None = None):
        import onnxruntime as ort

        self.storage = storage  # (row capacity, H, slot capacity, D) each
        self.n_rows = storage[0].shape[0] if n_rows is None else n_rows
        self.lengths = np.asarray(lengths, dtype=np.int64)  # (n_rows,) filled slots of each row
        if self.lengths.shape != (self.n_rows,):
            raise ValueError(f"{self.n_rows} rows need {self.n_rows} lengths, got {self.lengths.shape}")
        self.buffers = [a[:self.n_rows] for a in storage]  # contiguous views
        self.values = [ort.OrtValue.ortvalue_from_numpy(b) for b in self.buffers]
        self.binding = None  # the session's IOBinding with these buffers bound, made on first use

    @classmethod
    def empty(cls, n: int, batch: int, heads: int, capacity: int, head_dim: int, rows: int | None = None
              ) -> "KVCache":
        """``n`` zeroed buffers of (batch, heads, capacity, head_dim), with room for ``rows`` rows."""
        return cls([np.zeros((max(batch, rows or 0), heads, capacity, head_dim), np.float32) for _ in range(n)],
                   np.zeros(batch, np.int64), batch)

    @property
    def length(self) -> int:
        """Slots the longest row fills."""
        return int(self.lengths.max()) if self.n_rows else 0

    @property
    def capacity(self) -> int:
        return self.storage[0].shape[2]

    @property
    def row_capacity(self) -> int:
        return self.storage[0].shape[0]

    def _moved(self, rows: int, slots: int) -> "KVCache":
        """A copy of the used part in new arrays with room for ``rows`` rows and ``slots`` slots."""
        _, H, _, D = self.storage[0].shape
        out = KVCache.empty(len(self.storage), self.n_rows, H, slots, D, rows=rows)
        n = self.length
        for new, old in zip(out.storage, self.storage):
            new[:self.n_rows, :, :n] = old[:self.n_rows, :, :n]
        out.lengths = self.lengths.copy()
        return out

    def grown(self, needed: int) -> "KVCache":
        """This cache, or a copy with room for ``needed`` slots."""
        if needed <= self.capacity:
            return self
        return self._moved(self.row_capacity, max(needed, 2 * self.capacity))

    def select(self, index: np.ndarray) -> "KVCache":
        """A cache of the given batch rows (beam reordering, finished rows dropped).

        Rows leaving are compacted in place: distinct indices where every moved row comes from
        a slot at or after its new one (``index[i] >= i``), such as increasing indices or the last
        rows filling the holes; any other order or a repeat (beams) makes a copy."""
        index = np.asarray(index, dtype=np.int64)
        lengths = self.lengths[index]
        if (len(index) and len(np.unique(index)) == len(index) and index.max() < self.n_rows
                and np.all(index >= np.arange(len(index)))):
            for dst, src in enumerate(index.tolist()):
                if dst != src:
                    n = int(self.lengths[src])
                    for a in self.storage:
                        a[dst, :, :n] = a[src, :, :n]
            return KVCache(self.storage, lengths, len(index))
        n = self.length
        _, H, _, D = self.storage[0].shape
        out = KVCache.empty(len(self.storage), len(index), H, self.capacity, D)
        for new, old in zip(out.storage, self.buffers):
            new[:, :, :n] = old[index, :, :n]  # only the used slots are gathered
        out.lengths = lengths
        return out

    def join(self, other: "KVCache") -> "KVCache":
        """This cache's rows then ``other``'s, each row's tokens in its first slots."""
        n = max(self.length, other.length)
        rows = self.n_rows + other.n_rows
        cache = self
        if rows > self.row_capacity or n + 1 > self.capacity:
            cache = self._moved(max(rows, 2 * self.row_capacity), max(n + INITIAL_ROOM, self.capacity))
        m = other.length
        for a, b in zip(cache.storage, other.storage):
            a[self.n_rows:rows, :, :m] = b[:other.n_rows, :, :m]
        return KVCache(cache.storage, np.concatenate([self.lengths, other.lengths]), rows)

    def left_aligned(self, pads: np.ndarray) -> "KVCache":
        """This cache after a prefill of left-padded rows (``pads[row]`` leading slots of padding):
        each row's tokens moved to its first slots, in place."""
        for row, pad in enumerate(pads.tolist()):
            if pad:
                n = int(self.lengths[row])
                for a in self.storage:
                    a[row, :, :n] = a[row, :, pad:pad + n]
        return self


class OnnxDecoder(Decoder):
    """A ``Decoder`` over an ONNX Runtime session of the exported graph (past: a :class:`KVCache`)."""

    def __init__(self, onnx_path: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise KoGPT2Error("--backend onnx needs onnxruntime: pip install 'kogpt2[onnx]'") from e
        onnx_path = Path(onnx_path)
        self.model_dir = onnx_path.parent
        if export_format(self.model_dir) != EXPORT_FORMAT:
            raise KoGPT2Error(f"{onnx_path} was exported by an older kogpt2; export it again: "
                              f"kogpt2 export onnx MODEL_DIR {self.model_dir}")
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
        import onnxruntime as ort

        B, T = input_ids.shape
        counts = attention_mask.sum(1).numpy()  # (B,) tokens of each row, the new ones included
        if past is None:  # a prefill: the graph reads the (left-padded) mask as it is
            cache = KVCache.empty(2 * self.n_layer, B, self.n_head, T + INITIAL_ROOM, self.head_dim)
            mask = attention_mask.numpy()
        else:
            if attention_mask.shape[0] != past.n_rows or not np.array_equal(counts - T, past.lengths):
                raise ValueError(f"attention_mask covers {counts.tolist()} tokens per row; the cache holds "
                                 f"{past.lengths.tolist()} and {T} are new")
            width = int(counts.max())
            cache = past.grown(width)
            # each row's tokens sit in its first slots: a right-padded mask of the cache's layout
            mask = (np.arange(width)[None, :] < counts[:, None]).astype(np.int64)
        io = cache.binding
        if io is None:
            io = cache.binding = self.session.io_binding()
            for name, value in zip(self.input_names[3:], cache.values):
                io.bind_ortvalue_input(name, value)
            for name, value in zip(self.output_names[1:], cache.values):
                io.bind_ortvalue_output(name, value)
        io.bind_cpu_input("input_ids", input_ids.numpy())
        io.bind_cpu_input("attention_mask", mask)
        io.bind_cpu_input("position_ids", position_ids.numpy())
        logits = np.empty((B, 1, self.vocab_size), np.float32)  # fresh each step: the caller may keep it
        io.bind_ortvalue_output("logits", ort.OrtValue.ortvalue_from_numpy(logits))
        self.session.run_with_iobinding(io)
        cache.lengths = counts.astype(np.int64)
        if past is None and (counts < T).any():
            cache = cache.left_aligned(T - counts)
        return torch.from_numpy(logits[:, 0, :]), cache

    def reorder(self, past, index):
        return past.select(index.cpu().numpy())

    def join(self, past, other):
        return past.join(other)

    def trim(self, past, start):
        return past  # rows keep their tokens in their first slots: the leading padding is only in the mask
