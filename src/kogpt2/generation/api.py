"""The public generation API: ``kogpt2.generate`` / ``kogpt2.stream`` / ``kogpt2.stream_batch``.

    import kogpt2
    print(kogpt2.generate("나는 어두운 숲 속을 거닐고 있다."))             # bundled model, its defaults
    print(kogpt2.generate("오늘", model="runs/mini", top_p=0.9, seed=1))     # a value over the defaults
    for chunk in kogpt2.stream("오늘 날씨는", device="cuda"):
        print(chunk, end="", flush=True)

Defaults are layered as everywhere: the ``preset`` (``default`` = the model's
``generation_config.json``, see :mod:`kogpt2.generation.presets`) under the values given.
A prompt too long for the context is left-truncated to ``context - max_new_tokens`` tokens with
a warning (chat histories grow; keeping the most recent text is the useful choice);
``max_new_tokens >= context`` is an error.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from kogpt2.errors import KoGPT2Error
from kogpt2.generation.backends import load_decoder
from kogpt2.generation.beam import beam_search
from kogpt2.generation.config import SamplingConfig
from kogpt2.generation.decoder import Decoder
from kogpt2.generation.loop import decode_rows
from kogpt2.generation.presets import resolve_config
from kogpt2.generation.processors import LogitsProcessor, check_single_tokens

_CACHE: dict[tuple, tuple[Decoder, Any]] = {}


def load(model: Any = None, tokenizer: Any = None, backend: str = "torch", dtype: str = "auto",
         device: str | torch.device | None = None, threads: int | None = None) -> tuple[Decoder, Any]:
    """Resolve a model and tokenizer given as None (bundled), a directory, or objects.

    Directories are loaded once and kept (the two most recent), so repeated calls are cheap.
    Arguments as in :func:`kogpt2.generation.backends.load_decoder`.

    Returns:
        (decoder, tokenizer)
    """
    from kogpt2.tokenizer import load_tokenizer

    if model is None or isinstance(model, (str, Path)):
        key = (str(model), backend, dtype, str(device), threads, id(tokenizer))
        if key not in _CACHE:
            decoder = load_decoder(model, backend=backend, dtype=dtype, device=device, threads=threads)
            tok = tokenizer if tokenizer is not None else load_tokenizer(decoder.model_dir or model)
            while len(_CACHE) >= 2:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = (decoder, _as_tokenizer(tok))
        return _CACHE[key]
    decoder = load_decoder(model, backend=backend, dtype=dtype, device=device, threads=threads)
    if tokenizer is None:
        src = getattr(decoder, "model_dir", None)
        if src is None or not Path(src, "tokenizer.json").is_file():
            raise KoGPT2Error("pass tokenizer=... with a loaded model (it has no tokenizer directory to load)")
        tokenizer = load_tokenizer(src)
    return decoder, _as_tokenizer(tokenizer)


def _as_tokenizer(tok: Any) -> Any:
    if isinstance(tok, (str, Path)):
        from kogpt2.tokenizer import load_tokenizer

        return load_tokenizer(tok)
    return tok


def encode_prompt(tokenizer: Any, prompt: str, context: int, max_new_tokens: int) -> list[int]:
    """Token ids of a prompt: empty -> ``[eos]`` (``</s>`` starts a document); left-truncated to fit."""
    if not isinstance(prompt, str):
        raise KoGPT2Error(f"prompts must be strings, got {type(prompt).__name__}")
    if max_new_tokens >= context:
        raise KoGPT2Error(f"max_new_tokens={max_new_tokens} does not fit the model's context of {context} "
                          f"tokens; ask for fewer than {context}")
    ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else []
    if not ids:
        ids = [tokenizer.eos_token_id]
    room = context - max_new_tokens
    if len(ids) > room:
        warnings.warn(f"prompt of {len(ids)} tokens + max_new_tokens={max_new_tokens} exceeds the context of "
                      f"{context}; keeping the last {room} prompt tokens", UserWarning, stacklevel=3)
        ids = ids[-room:]
    return ids


def prompt_list(prompts: Any) -> list[str]:
    """``prompts`` (one string, or a list or tuple of strings) as a list; anything else is a ``KoGPT2Error``."""
    if isinstance(prompts, str):
        return [prompts]
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
        shown = type(prompts).__name__ if not isinstance(prompts, (list, tuple)) else \
            f"a {type(prompts).__name__} holding {sorted({type(p).__name__ for p in prompts} - {'str'})}"
        raise KoGPT2Error(f"prompts must be a string or a list of strings, got {shown}")
    return list(prompts)


def config_for(decoder: Decoder, preset: str = "default", config: SamplingConfig | None = None,
               tokenizer: Any = None, **given: Any) -> SamplingConfig:
    """The config of a request on ``decoder``: ``preset`` (its model's defaults) or ``config``, then ``given``.

    With ``tokenizer``, ``banned_tokens`` in ``given`` must be single tokens of it (else a ``KoGPT2Error``).
    """
    if config is not None and not isinstance(config, SamplingConfig):
        raise KoGPT2Error(f"config must be a SamplingConfig, got {type(config).__name__}; or give its fields as "
                          "keyword arguments (max_new_tokens=32, ...)")
    if tokenizer is not None and given.get("banned_tokens"):
        check_single_tokens(tokenizer, given["banned_tokens"])
    return resolve_config(preset, getattr(decoder, "model_dir", None), config, **given)


def generate(prompts: str | list[str], model: Any = None, tokenizer: Any = None,
             config: SamplingConfig | None = None, *, preset: str = "default", backend: str = "torch",
             dtype: str = "auto", device: str | torch.device | None = None,
             logits_processors: Sequence[LogitsProcessor] = (), **overrides: Any) -> str | list[str]:
    """Generate continuations (without the prompt).

    Args:
        prompts: one prompt, or a list (decoded together as a left-padded batch).
        model: None (bundled), a directory, a loaded HF model, or a ``Decoder``.
        tokenizer: None (the model directory's), a directory, or a loaded tokenizer.
        config: a complete config (instead of ``preset``); ``**overrides`` change single fields.
        preset: named defaults (``default``: the model's ``generation_config.json``; ``chat``; ``pplm``).
        backend, dtype, device: for a model given as a directory (see ``load_decoder``); ``device``
            moves a loaded model too.
        logits_processors: HF-style hooks ``fn(input_ids, scores) -> scores``.

    Returns:
        a string for a single prompt with ``num_return_sequences == 1``; otherwise a list with
        ``num_return_sequences`` entries per prompt, in prompt order.
    """
    decoder, tok = load(model, tokenizer, backend, dtype, device)
    cfg = config_for(decoder, preset, config, tok, **overrides)
    single = isinstance(prompts, str)
    plist = prompt_list(prompts)
    if not plist:
        return []
    ids = [encode_prompt(tok, p, decoder.context, cfg.max_new_tokens) for p in plist]
    if cfg.num_beams > 1:
        texts = beam_search(decoder, tok, ids, cfg, logits_processors=logits_processors)
    else:
        n = cfg.num_return_sequences
        row_cfg = cfg.replace(num_return_sequences=1)
        cfgs = [row_cfg if cfg.seed is None else row_cfg.replace(seed=(cfg.seed + j) % 2**63)
                for _ in plist for j in range(n)]
        row_ids = [p for p in ids for _ in range(n)]
        texts = [""] * len(row_ids)
        for chunks in decode_rows(decoder, tok, row_ids, cfgs, logits_processors=logits_processors,
                                  stream_text=False):
            texts = [t + c for t, c in zip(texts, chunks)]
    return texts[0] if single and cfg.num_return_sequences == 1 else texts


def stream(prompt: str, model: Any = None, tokenizer: Any = None, config: SamplingConfig | None = None, *,
           preset: str = "default", backend: str = "torch", dtype: str = "auto",
           device: str | torch.device | None = None, logits_processors: Sequence[LogitsProcessor] = (),
           **overrides: Any) -> Iterator[str]:
    """Yield the continuation of one prompt as text chunks (never a broken syllable).

    The chunks concatenate to exactly what :func:`generate` returns for the same seed.
    Arguments as in :func:`generate`; ``num_beams`` and ``num_return_sequences`` must be 1.
    """
    decoder, tok = load(model, tokenizer, backend, dtype, device)
    cfg = config_for(decoder, preset, config, tok, **overrides)
    if cfg.num_beams > 1 or cfg.num_return_sequences > 1:
        raise KoGPT2Error("streaming produces one sequence: use num_beams=1 and num_return_sequences=1 "
                          "(or generate() / --no-stream)")
    if not isinstance(prompt, str):
        raise KoGPT2Error(f"stream takes one prompt string, got {type(prompt).__name__}; for several prompts "
                          "use generate (or stream_batch)")
    ids = [encode_prompt(tok, prompt, decoder.context, cfg.max_new_tokens)]  # errors raise here, not lazily
    return (chunks[0] for chunks in decode_rows(decoder, tok, ids, [cfg], logits_processors=logits_processors)
            if chunks[0])


def stream_batch(prompts: list[str], model: Any, tokenizer: Any, configs: list[SamplingConfig], *,
                 should_stop: Callable[[int], bool] | None = None,
                 logits_processors: Sequence[LogitsProcessor] = ()) -> Iterator[list[str]]:
    """Batched decoding with per-row configs; yields every step the new chunk of each row.

    Rows finish independently (eos, stop sequence, ``max_new_tokens``, or ``should_stop(row)``);
    a finished row's chunk is ``""``. Each prompt is one row: for several continuations of a
    prompt, repeat it (with different seeds). ``num_beams`` must be 1.
    """
    if isinstance(prompts, str):
        raise KoGPT2Error("stream_batch takes a list of prompt strings, got one string; wrap it in a list")
    prompts = prompt_list(prompts)
    if len(prompts) != len(configs):
        raise KoGPT2Error(f"stream_batch needs one config per prompt, got {len(prompts)} prompts "
                          f"and {len(configs)} configs")
    decoder, tok = load(model, tokenizer)
    ids = [encode_prompt(tok, p, decoder.context, c.max_new_tokens) for p, c in zip(prompts, configs)]
    if not ids:
        return iter(())
    return decode_rows(decoder, tok, ids, configs, should_stop=should_stop, logits_processors=logits_processors)
