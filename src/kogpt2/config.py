"""Named model presets in one table, and the typed model configuration built from them.

Parameter counts below are for the 51,200-entry KoGPT2 vocabulary with tied embeddings
(``mini`` uses the bundled 16,384-entry tokenizer); ``tests/test_config.py`` checks them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from kogpt2.errors import KoGPT2Error


@dataclass(frozen=True)
class Preset:
    """A model shape. ``arch`` is ``gpt2`` (GPT2LMHeadModel) or ``gpt-neo`` (GPTNeoForCausalLM)."""

    n_layer: int
    n_embd: int
    n_head: int
    n_positions: int
    """Largest context the preset supports; ``--n-ctx`` may choose any value up to it."""
    arch: str = "gpt2"
    window_size: int = 256
    """GPT-Neo only: width of the locally banded attention in the ``local`` layers."""
    nominal_params: float = 0.0
    """The size the preset is known by, in parameters (at ``nominal_vocab``)."""
    nominal_vocab: int = 51200


PRESETS: dict[str, Preset] = {
    # mini: sized for 2 CPU cores in hours: about 12.6M parameters with the 16k vocabulary,
    # near compute-optimal (~20 tokens/parameter) for the few 1e15 FLOPs such a run has.
    "mini": Preset(6, 320, 5, 1024, nominal_params=12.6e6, nominal_vocab=16384),
    # small: the bundled kogpt2-small (27.1M with the 16k vocabulary), trained on one GPU in minutes.
    "small": Preset(8, 448, 7, 1024, nominal_params=27.1e6, nominal_vocab=16384),
    "base": Preset(12, 768, 12, 1024, nominal_params=125e6),     # GPT-2 117M/124M, KoGPT2 base
    "medium": Preset(24, 1024, 16, 1024, nominal_params=355e6),  # GPT-2 345M
    "large": Preset(36, 1280, 20, 1024, nominal_params=774e6),   # GPT-2 774M
    "xl": Preset(48, 1600, 25, 1024, nominal_params=1.558e9),    # GPT-2 1.5B
    "2.7b": Preset(32, 2560, 20, 2048, nominal_params=2.65e9),   # GPT-3 2.7B shape
    # "True GPT-3 form": dense and locally banded attention layers alternate (GPT-Neo).
    "gpt3-mini": Preset(6, 384, 6, 2048, arch="gpt-neo", nominal_params=17.7e6, nominal_vocab=16384),
    "gpt3-base": Preset(12, 768, 12, 2048, arch="gpt-neo", nominal_params=125e6),
    "gpt3-medium": Preset(24, 1024, 16, 2048, arch="gpt-neo", nominal_params=355e6),
    "gpt3-xl": Preset(24, 2048, 16, 2048, arch="gpt-neo", nominal_params=1.32e9),
    "gpt3-2.7b": Preset(32, 2560, 20, 2048, arch="gpt-neo", nominal_params=2.65e9),
}


@dataclass
class ModelConfig:
    """What ``build_model`` needs: a preset, the vocabulary and the context length."""

    preset: str = "mini"
    """Name from ``PRESETS``."""
    vocab_size: int = 16384
    """Rows of the embedding / LM head; taken from the tokenizer."""
    n_ctx: int | None = None
    """Context length (positions); ``None`` = the preset's maximum."""
    dropout: float = 0.0
    """Dropout on embeddings, attention and residuals (0 for short pretraining runs)."""
    bos_token_id: int = 1
    eos_token_id: int = 1
    pad_token_id: int = 3
    overrides: dict = field(default_factory=dict)
    """Shape overrides (``n_layer``, ``n_embd``, ``n_head``) for experiments and tests."""

    def __post_init__(self) -> None:
        problems = []
        unknown = set(self.overrides) - {"n_layer", "n_embd", "n_head", "n_positions"}
        if unknown:
            problems.append(f"unknown shape overrides {sorted(unknown)}")
        if self.preset not in PRESETS:
            problems.append(f"unknown preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        elif not unknown:  # the shape cannot be built with unknown overrides
            p = self.shape
            if self.n_ctx is not None and not 1 <= self.n_ctx <= p.n_positions:
                problems.append(f"n_ctx {self.n_ctx} is above preset {self.preset!r}'s {p.n_positions} positions "
                                f"(use --n-ctx <= {p.n_positions} or a gpt3-* preset for 2048)")
            if p.n_embd % p.n_head:
                problems.append(f"n_embd {p.n_embd} is not divisible by n_head {p.n_head}")
        if self.vocab_size < 16:
            problems.append(f"vocab_size {self.vocab_size} is too small")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout {self.dropout} must be in [0, 1)")
        if problems:
            raise KoGPT2Error("; ".join(problems))

    @property
    def shape(self) -> Preset:
        """The preset with any overrides applied."""
        base = asdict(PRESETS[self.preset])
        base.update(self.overrides)
        return Preset(**base)

    @property
    def context(self) -> int:
        return self.n_ctx or self.shape.n_positions
