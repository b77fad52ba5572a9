"""A GPT-2 :class:`~kogpt2.generation.decoder.Decoder` whose decoding step replays a CUDA graph.

At batch 1 a small GPT-2 on a GPU spends most of a decoding step launching kernels from
Python, not running them. This decoder records one decoding step as a CUDA graph
(``torch.cuda.CUDAGraph``) and replays it, so a step costs one launch.

How the step is made replayable:

* Keys and values live in a Hugging Face ``StaticCache`` of a fixed number of physical rows
  (a power of two) and ``context`` slots. Slot ``j`` holds mask column ``j`` of the decoding
  loop's left-padded layout; the cache's write position (``cumulative_length``, a tensor the
  graph advances) is the loop's mask width.
* The step reads its token ids, positions and a 4-D boolean attention mask from buffers that
  are filled before each replay, and writes float32 logits into a buffer.
* Prefills (the prompt, or rows joining a running batch) run eagerly with a ``DynamicCache``,
  as :class:`~kogpt2.generation.torch_decoder.TorchDecoder` does; their keys and values are copied
  into the static cache at the first decoding step (or the join).
* Rows that leave become spare physical rows (the loop's row ``i`` lives in physical row
  ``slots[i]``): nothing moves unless rows repeat (beam search), which gathers in place.
  Joining rows take spare rows; the cache grows (a new graph) only when none are left.
  Trims shift the slots left in place, so the graph's addresses never change.

The static state of a batch (cache, buffers, graph) is a :class:`Slab`. A decoder keeps the
slabs it made and reuses one whose batch has ended, so repeated ``generate`` calls capture once.

On the CPU (``capture=False``) the same code runs the step eagerly; the tests compare it with
:class:`TorchDecoder` there. A capture that fails warns once and the decoder steps eagerly.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Any

import torch

from kogpt2.errors import KoGPT2Error
from kogpt2.generation.torch_decoder import TorchDecoder

def physical_rows(n: int) -> int:
    """The slab size for ``n`` rows: the next power of two (so a batch that grows by one row
    rarely needs a new graph)."""
    return 1 << max(0, n - 1).bit_length()


class Slab:
    """The fixed-address state of one decoding batch: cache, input/output buffers, graph."""

    def __init__(self, model: Any, rows: int, slots: int, device: torch.device, dtype: torch.dtype):
        from transformers import StaticCache

        cfg = model.config
        heads = int(cfg.num_attention_heads)
        self.rows, self.slots = rows, slots
        self.cache = StaticCache(config=cfg, max_cache_len=slots)
        self.cache.early_initialization(rows, heads, int(cfg.hidden_size) // heads, dtype, device)
        self.ids = torch.zeros((rows, 1), dtype=torch.long, device=device)
        self.pos = torch.zeros((rows, 1), dtype=torch.long, device=device)
        self.mask = torch.zeros((rows, 1, 1, slots), dtype=torch.bool, device=device)
        self.logits: torch.Tensor | None = None
        self.graph: Any = None
        self.owner: Any = None  # weakref to the StaticPast using this slab

    def pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (keys, values), each (rows, heads, slots, head_dim)."""
        return [(layer.keys, layer.values) for layer in self.cache.layers]

    def set_width(self, width: int) -> None:
        """Where the next step writes (every layer's ``cumulative_length``), in place."""
        for layer in self.cache.layers:
            layer.cumulative_length.fill_(width)

    @property
    def free(self) -> bool:
        return self.owner is None or self.owner() is None


class StaticPast:
    """The ``past`` the decoding loop holds for a batch on a :class:`GraphDecoder`.

    Attributes:
        slab: the fixed-address state.
        slots: physical row of each of the loop's rows, in the loop's order.
        width: filled columns (the loop's mask width).
    """

    def __init__(self, slab: Slab, slots: list[int], width: int):
        self.slab, self.slots, self.width = slab, slots, width
        slab.owner = weakref.ref(self)
        self._index: torch.Tensor | None = None

    def index(self) -> torch.Tensor | None:
        """Physical rows as a device tensor, or None when they are 0..n-1 of a slab of n rows."""
        if self.slots == list(range(self.slab.rows)):
            return None
        if self._index is None or self._index.numel() != len(self.slots):
            self._index = torch.tensor(self.slots, dtype=torch.long, device=self.slab.ids.device)
        return self._index

    def moved(self, slots: list[int]) -> None:
        self.slots, self._index = slots, None


class GraphDecoder(TorchDecoder):
    """A GPT-2 model decoding from a static cache, each step one CUDA graph replay.

    Args:
        model: a Hugging Face GPT-2 causal LM (on CUDA for capture).
        capture: record and replay CUDA graphs (default: on CUDA); False steps eagerly.
    """

    def __init__(self, model: Any, capture: bool | None = None):
        super().__init__(model)
        if getattr(model.config, "model_type", None) != "gpt2":
            raise KoGPT2Error(f"GraphDecoder runs GPT-2 models, not {model.config.model_type!r}")
        self.capture = self.device.type == "cuda" if capture is None else capture
        self.dtype = next(model.parameters()).dtype
        self.slabs: list[Slab] = []
        self.capture_error: str | None = None

    # ---------------------------------------------------------------- slabs
    def _slab(self, rows: int) -> Slab:
        for slab in self.slabs:
            if slab.rows == rows and slab.free:
                return slab
        self.slabs = [s for s in self.slabs if not s.free or s.rows != rows]  # at most one idle slab per size
        slab = Slab(self.model, rows, self.context, self.device, self.dtype)
        self.slabs.append(slab)
        return slab

    def _adopt(self, dynamic: Any) -> StaticPast:
        """A static past holding the rows of a prefill's ``DynamicCache``."""
        layers = [(layer.keys, layer.values) for layer in dynamic.layers]
        n, width = layers[0][0].shape[0], layers[0][0].shape[2]
        slab = self._slab(physical_rows(n))
        for (k, v), (sk, sv) in zip(layers, slab.pairs()):
            sk[:n, :, :width].copy_(k)
            sv[:n, :, :width].copy_(v)
        slab.set_width(width)
        return StaticPast(slab, list(range(n)), width)

    def _grow(self, past: StaticPast, rows: int) -> StaticPast:
        """``past`` moved to a slab of at least ``rows`` physical rows (rows keep their order)."""
        slab = self._slab(physical_rows(rows))
        index = torch.tensor(past.slots, dtype=torch.long, device=self.device)
        n, w = len(past.slots), past.width
        for (k, v), (sk, sv) in zip(past.slab.pairs(), slab.pairs()):
            sk[:n, :, :w].copy_(k.index_select(0, index)[:, :, :w])
            sv[:n, :, :w].copy_(v.index_select(0, index)[:, :, :w])
        slab.set_width(w)
        past.slab.owner = None
        return StaticPast(slab, list(range(n)), w)

    # ---------------------------------------------------------------- Decoder
    def forward_step(self, input_ids, past, attention_mask, position_ids):
        if past is not None and not isinstance(past, StaticPast):
            past = self._adopt(past)
        if past is None or input_ids.shape[1] != 1:
            if past is not None:
                raise KoGPT2Error("GraphDecoder feeds one token per row after the prefill")
            return super().forward_step(input_ids, None, attention_mask, position_ids)
        width = past.width + 1
        if attention_mask.shape != (len(past.slots), width):
            raise KoGPT2Error(f"GraphDecoder expected a ({len(past.slots)}, {width}) mask, got "
                              f"{tuple(attention_mask.shape)}")
        if width > past.slab.slots:
            raise KoGPT2Error(f"the batch is {width} tokens wide, past the model's context of {past.slab.slots}")
        slab, index = past.slab, past.index()
        slab.mask.zero_()
        slab.mask[:, 0, 0, width - 1] = True  # spare rows see their own token only
        if index is None:
            slab.ids.copy_(input_ids)
            slab.pos.copy_(position_ids)
            slab.mask[:, 0, 0, :width].copy_(attention_mask.bool())
        else:
            slab.ids[index] = input_ids
            slab.pos[index] = position_ids
            slab.mask[index, 0, 0, :width] = attention_mask.bool()
        logits = self._step(slab, past.width)
        past.width = width
        return (logits.clone() if index is None else logits.index_select(0, index)), past

    def _run(self, slab: Slab) -> torch.Tensor:
        """One eager step of the model on the slab's buffers (what the graph records)."""
        # An additive mask: GPT-2's eager attention adds it, SDPA takes it as it is.
        bias = torch.zeros(slab.mask.shape, dtype=self.dtype, device=self.device)
        bias.masked_fill_(~slab.mask, torch.finfo(self.dtype).min)
        out = self.model(input_ids=slab.ids, attention_mask=bias, position_ids=slab.pos, use_cache=True,
                         logits_to_keep=1, **{self.cache_arg: slab.cache})
        return out.logits[:, -1, :].float()

    def _step(self, slab: Slab, width: int) -> torch.Tensor:
        if not self.capture:
            return self._run(slab)
        if slab.graph is None:
            try:
                self._record(slab, width)
            except Exception as e:  # noqa: BLE001 - any capture failure falls back to eager steps
                self.capture, self.capture_error = False, f"{type(e).__name__}: {e}"
                warnings.warn(f"CUDA graph capture failed, decoding without graphs ({self.capture_error})",
                              RuntimeWarning, stacklevel=4)
                slab.set_width(width)
                return self._run(slab)
        slab.graph.replay()
        return slab.logits

    def _record(self, slab: Slab, width: int) -> None:
        """Warm up on a side stream, then capture one step; the cache's write position is restored."""
        stream = torch.cuda.Stream(device=self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                slab.set_width(width)
                self._run(slab)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        slab.set_width(width)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            slab.logits = self._run(slab)
        slab.graph = graph

    def reorder(self, past, index):
        if not isinstance(past, StaticPast):
            return super().reorder(past, index)
        slots = [past.slots[i] for i in index.tolist()]
        if len(set(slots)) == len(slots):  # a subset: the others become spare rows
            past.moved(slots)
            return past
        if len(slots) > past.slab.rows:
            past = self._grow(past, len(slots))
            slots = [past.slots[i] for i in index.tolist()]
        full = slots + [0] * (past.slab.rows - len(slots))  # repeated rows (beams): gather in place
        gather = torch.tensor(full, dtype=torch.long, device=self.device)
        for k, v in past.slab.pairs():
            k.copy_(k.index_select(0, gather))
            v.copy_(v.index_select(0, gather))
        past.moved(list(range(len(slots))))
        return past

    def join(self, past, other):
        if not isinstance(past, StaticPast):
            if isinstance(other, StaticPast):
                raise NotImplementedError("a static past joins after a dynamic one only")
            return super().join(past, other)
        layers = [(layer.keys, layer.values) for layer in other.layers]
        n, new_width = layers[0][0].shape[0], layers[0][0].shape[2]
        spare = [r for r in range(past.slab.rows) if r not in set(past.slots)]
        if len(spare) < n:
            past = self._grow(past, len(past.slots) + n)
            spare = list(range(len(past.slots), past.slab.rows))
        width = max(past.width, new_width)
        shift = width - past.width
        if width > past.slab.slots:
            raise KoGPT2Error(f"joining rows makes the batch {width} tokens wide, past the context of "
                              f"{past.slab.slots}")
        pairs = past.slab.pairs()
        if shift:  # the running rows are left-padded by `shift` columns
            for k, v in pairs:
                k[:, :, shift:width].copy_(k[:, :, :past.width].clone())
                v[:, :, shift:width].copy_(v[:, :, :past.width].clone())
        rows = torch.tensor(spare[:n], dtype=torch.long, device=self.device)
        for (k, v), (nk, nv) in zip(pairs, layers):
            k[rows, :, width - new_width:width] = nk
            v[rows, :, width - new_width:width] = nv
        past.slab.set_width(width)
        past.width = width
        past.moved(past.slots + spare[:n])
        return past

    def trim(self, past, start):
        if not isinstance(past, StaticPast):
            return super().trim(past, start)
        keep = past.width - start
        for k, v in past.slab.pairs():
            k[:, :, :keep].copy_(k[:, :, start:past.width].clone())
            v[:, :, :keep].copy_(v[:, :, start:past.width].clone())
        past.slab.set_width(keep)
        past.width = keep
        return past
