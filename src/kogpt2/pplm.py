"""Plug and Play Language Models (Dathathri et al., ICLR 2020) on the shared sampler.

Steer a frozen GPT-2 toward a topic (bag of words) or a class (a linear discriminator on
the mean hidden state) by nudging its past key/values at every step::

    from kogpt2 import pplm
    bow = pplm.load_bow("공포", tokenizer)
    print(pplm.generate("오늘 아침에", model="runs/mini", attribute=bow, seed=1))

How one step works (:class:`PPLMDecoder`, a ``kogpt2.generation.torch_decoder.TorchDecoder``
whose ``forward_step`` the decoding loop calls; sampling, stopping and streaming stay in
``kogpt2.generation``):

  1. Unperturbed: run the new token on the clean cache -> ``logits_u``.
  2. Perturb the steered cache (every layer's keys and values of all tokens before the new
     one): ``num_iterations`` gradient steps of size ``stepsize`` on the attribute loss
     plus ``kl_scale * KL(p_perturbed || p_unperturbed)``; each gradient is masked to the last
     ``window_length`` positions (linearly decayed toward older ones with ``decay``) and
     divided by its norm to the power ``gamma``. Norms are taken per batch row, so rows of
     a batch steer exactly as they would alone.
  3. Run the new token on the perturbed cache -> ``logits_p``; the result (perturbed past
     included) becomes the steered cache of the next step, as in the reference code.
  4. Fuse: ``gm_scale * logits_p + (1 - gm_scale) * logits_u``. Softmax of this is the
     renormalised geometric mean ``p_p^gm * p_u^(1-gm)``; with ``gm_scale=0`` it is exactly
     the unsteered logits, so a seed gives the unsteered text. The sampler then applies
     temperature / top-k / top-p / repetition penalty to the fused logits.

After ``grad_length`` generated tokens the perturbation stops (step 3 still uses the
already perturbed cache).

Bags of words with multi-token words: every word is tokenized with and without a leading
space (a bare-space token in front is dropped: predicting a space says nothing of the topic).
The loss is ``-log P(next token in T)`` where ``T`` holds the opening token of every word plus,
for every word whose first k tokens are the last k tokens of the text, its token k+1. So a word
is pulled in as a whole: first its opening token, then its continuation. A one-character
opening token of a multi-token word (해 of 해골) is left out of ``T``: such a syllable opens
thousands of unrelated words, and steering toward it makes the model repeat it (measured:
"해해해..." with the 공포 list); the word's continuation is still pulled in when it appears.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import torch
import torch.nn.functional as F

from kogpt2.generation.torch_decoder import TorchDecoder
from kogpt2.errors import KoGPT2Error
from kogpt2.paths import bow_names, resources_dir

SMALL = 1e-15  # the reference implementation's floor for probabilities and norms


@dataclass
class PPLMConfig:
    """Steering strength. Defaults follow the PPLM paper's bag-of-words examples."""

    stepsize: float = 0.03
    """Size of one gradient step on the past key/values (0 = no steering)."""
    num_iterations: int = 3
    """Gradient steps per generated token."""
    window_length: int = 5
    """Perturb only the last this many past positions; 0 = all."""
    horizon_length: int = 1
    """Future steps (fed the expected embedding) the discriminator looks ahead; >= 1."""
    decay: bool = False
    """Weigh older positions of the window linearly less (1/w ... 1)."""
    gamma: float = 1.5
    """Gradients are divided by their norm to this power."""
    kl_scale: float = 0.01
    """Weight of KL(perturbed || unperturbed) in the loss; larger stays closer to the model."""
    gm_scale: float = 0.95
    """Weight of the perturbed distribution in the geometric-mean fusion (0 = unsteered)."""
    grad_length: int = 10000
    """Stop perturbing after this many generated tokens."""

    def __post_init__(self) -> None:
        from kogpt2.validate import number_problems

        p = number_problems(stepsize=(self.stepsize, ">= 0"), num_iterations=(self.num_iterations, ">= 0"),
                            window_length=(self.window_length, ">= 0"), horizon_length=(self.horizon_length, ">= 1"),
                            gamma=(self.gamma, ">= 0"), kl_scale=(self.kl_scale, ">= 0"),
                            gm_scale=(self.gm_scale, ">= 0 <= 1"), grad_length=(self.grad_length, ">= 0"))
        if p:
            raise KoGPT2Error("invalid PPLM options: " + "; ".join(p))


DISCRIM_DEFAULTS = {"stepsize": 0.3, "num_iterations": 3, "gamma": 1.0}
"""What a discriminator attribute changes in :class:`PPLMConfig` (gamma 1 as in the paper's examples).

NOTE: measured on kogpt2-small with the shipped sentiment discriminator (benchmarks/pplm.py,
6 prompts x 2 samples x 30 tokens, TF-IDF judge; unsteered P(positive) 0.716): the paper's
0.04 x 5 steps did nothing (positive 0.561, negative 0.619); 0.3 x 3 gives 0.815 / 0.411 at
bits/char x1.20 / x1.27, with fewer gradient steps per token. Later (20 x 3 x 40, same judge):
0.787 / 0.430 at x1.068 / x1.172; ``kl_scale`` 0.1 gives 0.765 / 0.494 at x0.972 / x1.085 (more
fluent, weaker negative), so the default stays. No single change of stepsize, window, horizon,
iterations or gm_scale took negative below 0.37 (README, benchmark notes).
"""


def default_config(attribute: "Attribute") -> PPLMConfig:
    """The default strength for ``attribute``: :data:`DISCRIM_DEFAULTS` for a discriminator."""
    return PPLMConfig(**DISCRIM_DEFAULTS) if isinstance(attribute, DiscriminatorAttribute) else PPLMConfig()


# ---------------------------------------------------------------------------- attribute models

@dataclass
class StepView:
    """What an attribute loss may look at during one perturbation iteration."""

    logits: torch.Tensor
    """(B, V) next-token logits under the perturbed past."""
    histories: list[list[int]]
    """Per row: every token so far, the one being fed included."""
    model: Any
    """The HF causal LM."""
    clean_cache: list[tuple[torch.Tensor, torch.Tensor]]
    """Unperturbed keys/values of every token so far, per layer: (B, H, S, D) each."""
    attention_mask: torch.Tensor
    """(B, S) mask of ``clean_cache``'s positions."""
    next_position: torch.Tensor
    """(B, 1) position id of the next token."""
    hidden_sum: torch.Tensor
    """(B, C) sum of last-layer hidden states of every token so far (no gradient)."""
    n_tokens: torch.Tensor
    """(B,) real (non-padding) tokens so far."""
    horizon_length: int


class Attribute(Protocol):
    """An attribute model: a per-row loss that is low when the text has the attribute."""

    def loss(self, view: StepView) -> torch.Tensor:
        """(B,) loss, differentiable with respect to ``view.logits``."""
        ...


class BagOfWords:
    """Topic words as token sequences; see the module docstring for multi-token words.

    Args:
        words: the topic words (phrases allowed).
        tokenizer: the model's tokenizer.
        name: shown in messages.
    """

    def __init__(self, words: Sequence[str], tokenizer: Any, name: str = "custom"):
        self.name = name
        self.words = [w.strip() for w in words if w.strip()]
        if not self.words:
            raise KoGPT2Error(f"bag of words {name!r} is empty; give at least one word")
        seqs = set()
        for w in self.words:
            for variant in (" " + w, w):
                ids = list(tokenizer(variant, add_special_tokens=False)["input_ids"])
                # NOTE: a tokenizer that keeps spaces as their own tokens encodes " 유령" as [" ", "유령"];
                # a bare-space first target would let the loss be met by predicting spaces.
                while ids and not tokenizer.decode(ids[:1]).strip():
                    ids = ids[1:]
                if ids:
                    seqs.add(tuple(ids))
        self.sequences = sorted(seqs)
        # one-character openings of multi-token words are not targets (see the module docstring)
        opening = {s[0] for s in self.sequences if len(s) == 1 or len(tokenizer.decode(s[:1]).strip()) > 1}
        self.first = sorted(opening or {s[0] for s in self.sequences})
        self.next: dict[tuple[int, ...], set[int]] = {}  # word prefix -> its possible next tokens
        for s in self.sequences:
            for k in range(1, len(s)):
                self.next.setdefault(s[:k], set()).add(s[k])
        self.longest = max(len(s) for s in self.sequences)

    def targets(self, history: Sequence[int]) -> list[int]:
        """Token ids that start a topic word or continue one the history has begun."""
        out = set(self.first)
        for k in range(1, min(self.longest, len(history) + 1)):
            out |= self.next.get(tuple(history[-k:]), set())
        return sorted(out)

    def loss(self, view: StepView) -> torch.Tensor:
        mask = torch.zeros_like(view.logits, dtype=torch.bool)  # (B, V)
        for i, h in enumerate(view.histories):
            mask[i, self.targets(h)] = True
        probs = view.logits.softmax(-1)
        return -torch.log((probs * mask).sum(-1) + SMALL)

    def __repr__(self) -> str:
        return f"BagOfWords({self.name!r}, {len(self.words)} words, {len(self.sequences)} token sequences)"


class DiscriminatorAttribute:
    """Steer toward ``label`` of a classifier on the mean last-layer hidden state.

    The loss is the classifier's cross-entropy on the mean hidden state of the text so far
    plus ``horizon_length`` future positions fed the expected next-token embedding
    (``softmax(logits) @ wte``) on the unperturbed cache, as in the reference code.
    """

    def __init__(self, head: torch.nn.Module, label: int):
        self.head = head
        self.label = label

    def loss(self, view: StepView) -> torch.Tensor:
        from transformers import DynamicCache

        model = view.model
        wte = model.get_input_embeddings().weight  # (V, C)
        embeds = view.logits.softmax(-1)[:, None, :].to(wte.dtype) @ wte  # (B, 1, C)
        cache = DynamicCache(ddp_cache_data=view.clean_cache)
        mask, pos = view.attention_mask, view.next_position
        total = view.hidden_sum
        for _ in range(view.horizon_length):
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            out = model(inputs_embeds=embeds, past_key_values=cache, attention_mask=mask, position_ids=pos,
                        use_cache=True, output_hidden_states=True, logits_to_keep=1)
            total = total + out.hidden_states[-1][:, -1].float()
            pos = pos + 1
        mean = total / (view.n_tokens + view.horizon_length)[:, None].float()  # (B, C)
        target = torch.full((mean.shape[0],), self.label, dtype=torch.long)
        return F.cross_entropy(self.head(mean), target, reduction="none")


# ---------------------------------------------------------------------------- word lists

def read_word_list(path: str | Path) -> list[str]:
    """Words of a list file: one per line, ``#`` starts a comment, blank lines skipped."""
    from kogpt2.textio import read_text

    lines = (l.split("#", 1)[0].strip() for l in read_text(path, "word list").splitlines())
    return [l for l in lines if l]


def load_bow(name_or_path: str | Path, tokenizer: Any) -> BagOfWords:
    """A shipped bag of words by name (``공포``) or a word-list file."""
    shipped = resources_dir() / "bow" / f"{name_or_path}.txt"
    if shipped.is_file():
        return BagOfWords(read_word_list(shipped), tokenizer, name=str(name_or_path))
    if Path(name_or_path).is_file():
        return BagOfWords(read_word_list(name_or_path), tokenizer, name=Path(name_or_path).stem)
    raise KoGPT2Error(f"unknown bag of words {str(name_or_path)!r}; choose one of: {', '.join(bow_names())} "
                      "(or give a word-list file, one word per line)")


# ---------------------------------------------------------------------------- the decoder

Pairs = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class _State:
    """The PPLM cache the sampler carries between steps (rows follow the sampler's batch)."""

    clean: Pairs
    """Unperturbed keys/values of every token fed so far."""
    steered: Pairs
    """Perturbed keys/values of every token fed so far."""
    histories: list[list[int]]
    hidden_sum: torch.Tensor
    """(B, C) unperturbed last-layer hidden states summed over real tokens fed so far."""
    step: int = 0
    grad_norms: list[torch.Tensor] | None = None
    """BoW only, as in the reference: running max of each tensor's gradient norm, (B,) each."""
    losses: list[float] = field(default_factory=list)


def _pairs(cache: Any) -> Pairs:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _cache(pairs: Pairs) -> Any:
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=pairs)


class PPLMDecoder(TorchDecoder):
    """A :class:`TorchDecoder` that perturbs its past toward an attribute (see module docstring).

    Args:
        model: a Hugging Face causal LM whose cache is a ``DynamicCache`` (GPT-2, GPT-Neo).
        attribute: a :class:`BagOfWords`, a :class:`DiscriminatorAttribute`, or anything with
            ``loss(StepView) -> (B,)``.
        config: steering strength.
    """

    def __init__(self, model: Any, attribute: Attribute, config: PPLMConfig | None = None):
        super().__init__(model)
        self.attribute = attribute
        self.config = config or PPLMConfig()
        self.last_state: _State | None = None

    def forward_step(self, input_ids, past, attention_mask, position_ids):
        # NOTE: the sampler runs under inference_mode; gradients need ordinary tensors, hence clones.
        with torch.inference_mode(False):
            ids, mask, pos = input_ids.clone(), attention_mask.clone(), position_ids.clone()
            with torch.no_grad():
                out = self.model(input_ids=ids, **{self.cache_arg: None if past is None else _cache(past.clean)},
                                 attention_mask=mask, position_ids=pos, use_cache=True,
                                 output_hidden_states=True, logits_to_keep=1)
            logits_u = out.logits[:, -1].float()  # (B, V)
            hidden = out.hidden_states[-1].float() * mask[:, -ids.shape[1]:, None]  # (B, T, C)
            if past is None:
                clean = _pairs(out[self.cache_arg])
                state = _State(clean=clean, steered=[(k[:, :, :-1], v[:, :, :-1]) for k, v in clean],
                               histories=[[t for t, m in zip(r, mk) if m] for r, mk in
                                          zip(ids.tolist(), mask.tolist())],
                               hidden_sum=hidden.new_zeros(ids.shape[0], hidden.shape[-1]))
            else:
                state = past
                state.clean = _pairs(out[self.cache_arg])
                for h, t in zip(state.histories, ids[:, -1].tolist()):
                    h.append(t)
            before = state.hidden_sum + hidden[:, :-1].sum(1)  # tokens before the new last one
            last, last_pos = ids[:, -1:], pos[:, -1:]
            delta = self._perturb(state, last, mask, last_pos, logits_u, before)
            steered = state.steered if delta is None else [(k + dk, v + dv) for (k, v), (dk, dv)
                                                             in zip(state.steered, delta)]
            with torch.no_grad():
                out_p = self.model(input_ids=last, **{self.cache_arg: _cache(steered)}, attention_mask=mask,
                                   position_ids=last_pos, use_cache=True, logits_to_keep=1)
            state.steered = _pairs(out_p[self.cache_arg])
            state.hidden_sum = before + hidden[:, -1]
            state.step += 1
            self.last_state = state
            gm = self.config.gm_scale
            fused = gm * out_p.logits[:, -1].float() + (1 - gm) * logits_u
        return fused, state

    def _window(self, length: int) -> torch.Tensor:
        """(1, 1, length, 1) gradient mask over the past positions."""
        w = self.config.window_length
        m = torch.ones(length, device=self.device)
        if w and length > w:
            m[:-w] = 0
        if w and self.config.decay:
            n = min(w, length)
            m[length - n:] = torch.arange(1, n + 1, device=self.device) / w  # oldest 1/w ... newest 1
        return m[None, None, :, None]

    def _perturb(self, state: _State, last: torch.Tensor, mask: torch.Tensor, last_pos: torch.Tensor,
                 logits_u: torch.Tensor, before: torch.Tensor) -> Pairs | None:
        """Accumulated perturbation of ``state.steered`` for this step (None = none)."""
        cfg = self.config
        past = state.steered
        if (cfg.num_iterations == 0 or cfg.stepsize == 0 or state.step >= cfg.grad_length
                or past[0][0].shape[2] == 0):  # a one-token prompt has no past to perturb
            return None
        window = self._window(past[0][0].shape[2])
        acc = [(torch.zeros_like(k), torch.zeros_like(v)) for k, v in past]
        flat_acc = [t for pair in acc for t in pair]
        is_bow = isinstance(self.attribute, BagOfWords)
        logp_u = logits_u.log_softmax(-1)
        for _ in range(cfg.num_iterations):
            delta = [t.clone().requires_grad_(True) for t in flat_acc]
            pert = [(k + delta[2 * i], v + delta[2 * i + 1]) for i, (k, v) in enumerate(past)]
            out = self.model(input_ids=last, **{self.cache_arg: _cache(pert)}, attention_mask=mask,
                             position_ids=last_pos, use_cache=True, output_hidden_states=True, logits_to_keep=1)
            logits = out.logits[:, -1].float()  # (B, V)
            # the new token's perturbed hidden state counts in the mean, without gradient (as the reference)
            hidden_sum = before + out.hidden_states[-1][:, -1].detach().float()
            view = StepView(logits=logits, histories=state.histories, model=self.model,
                            clean_cache=state.clean, attention_mask=mask, next_position=last_pos + 1,
                            hidden_sum=hidden_sum, n_tokens=mask.sum(-1), horizon_length=cfg.horizon_length)
            loss = self.attribute.loss(view)  # (B,)
            if cfg.kl_scale > 0:
                logp = logits.log_softmax(-1)
                p = logp.exp()
                loss = loss + cfg.kl_scale * (p * (logp - logp_u)).sum(-1)
            state.losses.append(float(loss.detach().mean()))
            grads = torch.autograd.grad(loss.sum(), delta, allow_unused=True)
            grads = [torch.zeros_like(d) if g is None else g * window for g, d in zip(grads, delta)]
            norms = [g.flatten(1).norm(dim=1) for g in grads]  # (B,) per tensor
            if is_bow and state.grad_norms is not None:
                norms = [torch.maximum(a, b) for a, b in zip(state.grad_norms, norms)]
            elif not is_bow:
                norms = [n + SMALL for n in norms]
            if is_bow:
                state.grad_norms = norms
            flat_acc = [a - cfg.stepsize * g / (n.clamp_min(SMALL) ** cfg.gamma)[:, None, None, None]
                        for a, g, n in zip(flat_acc, grads, norms)]
        return [(flat_acc[2 * i].detach(), flat_acc[2 * i + 1].detach()) for i in range(len(past))]

    def reorder(self, past: _State, index: torch.Tensor) -> _State:
        with torch.inference_mode(False):
            idx = index.clone()
            past.clean = [(k[idx], v[idx]) for k, v in past.clean]
            past.steered = [(k[idx], v[idx]) for k, v in past.steered]
            past.histories = [past.histories[i] for i in idx.tolist()]
            past.hidden_sum = past.hidden_sum[idx]
            if past.grad_norms is not None:
                past.grad_norms = [n[idx] for n in past.grad_norms]
        return past


# ---------------------------------------------------------------------------- public API

def steering_decoder(model: Any, attribute: Attribute, config: PPLMConfig | None = None,
                     tokenizer: Any = None) -> tuple[PPLMDecoder, Any]:
    """A :class:`PPLMDecoder` and tokenizer for a model given as None (bundled), a directory or objects."""
    from kogpt2.generation.api import load

    if isinstance(model, PPLMDecoder):
        model.attribute, model.config = attribute, config or default_config(attribute)
        return model, load(model, tokenizer)[1] if tokenizer is None else tokenizer
    decoder, tok = load(model, tokenizer)
    if not isinstance(decoder, TorchDecoder):
        raise KoGPT2Error("PPLM needs gradients: use a PyTorch model directory (not the ONNX backend)")
    _check_discriminator_base(attribute, decoder.model)
    return PPLMDecoder(decoder.model, attribute, config or default_config(attribute)), tok


def _check_discriminator_base(attribute: Attribute, model: Any) -> None:
    """A discriminator reads one model's hidden states: refuse it on another model."""
    meta = getattr(getattr(attribute, "head", None), "meta", None) or {}
    want = meta.get("base_fingerprint")
    if want is None:
        return
    from kogpt2.finetune import model_fingerprint

    if model_fingerprint(model) != want:
        raise KoGPT2Error(f"the discriminator was trained on another model ({meta.get('base_model') or 'unknown'}); "
                          "train one for this model with `kogpt2 pplm train-discrim --model DIR`")


def generate(prompts: str | list[str], model: Any = None, tokenizer: Any = None, *, attribute: Attribute,
             pplm: PPLMConfig | None = None, config: Any = None, **overrides: Any) -> str | list[str]:
    """Steered continuations (without the prompt); arguments as in ``kogpt2.generate``.

    Sampling defaults are the ``pplm`` preset (``kogpt2.generation.presets``) under ``config``
    or ``**overrides``.

    Args:
        attribute: what to steer toward (:func:`load_bow`, :func:`load_discriminator`).
        pplm: steering strength.
    """
    from kogpt2.generation import api

    decoder, tok = steering_decoder(model, attribute, pplm, tokenizer)
    return api.generate(prompts, model=decoder, tokenizer=tok, config=config, preset="pplm", **overrides)


def stream(prompt: str, model: Any = None, tokenizer: Any = None, *, attribute: Attribute,
           pplm: PPLMConfig | None = None, config: Any = None, **overrides: Any) -> Iterator[str]:
    """Stream a steered continuation as text chunks; arguments as in :func:`generate`."""
    from kogpt2.generation import api

    decoder, tok = steering_decoder(model, attribute, pplm, tokenizer)
    return api.stream(prompt, model=decoder, tokenizer=tok, config=config, preset="pplm", **overrides)


SHIPPED_DISCRIMINATORS = {"sentiment": "kogpt2-small-pplm-sentiment"}
"""Discriminators for the bundled model shipped in the package (``--discrim sentiment``)."""


def discriminator_dir(name_or_path: str | Path) -> Path:
    """A discriminator directory: a path, or the name of a shipped one (``sentiment``)."""
    p = Path(name_or_path)
    if not p.exists() and str(name_or_path) in SHIPPED_DISCRIMINATORS:
        from kogpt2.paths import PACKAGE_DIR

        return PACKAGE_DIR / "models" / SHIPPED_DISCRIMINATORS[str(name_or_path)]
    return p


def load_discriminator(path: str | Path, label: str) -> DiscriminatorAttribute:
    """The attribute "class ``label``" of a discriminator: a directory written by
    ``kogpt2 pplm train-discrim``, or ``sentiment`` for the one shipped for the bundled model."""
    from kogpt2.pplm_discrim import Discriminator

    path = discriminator_dir(path)
    head = Discriminator.load(path)
    if label not in head.classes:
        raise KoGPT2Error(f"unknown class {label!r} for the discriminator in {path}; "
                          f"choose one of: {', '.join(head.classes)}")
    return DiscriminatorAttribute(head, head.classes.index(label))


__all__ = ["PPLMConfig", "DISCRIM_DEFAULTS", "default_config", "PPLMDecoder", "BagOfWords",
           "DiscriminatorAttribute", "StepView", "bow_names", "load_bow", "read_word_list", "load_discriminator",
           "discriminator_dir", "steering_decoder", "generate", "stream"]
