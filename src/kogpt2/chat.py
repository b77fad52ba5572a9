"""Korean chatbot: the KoGPT2 chat format, answer-only fine-tuning, and a multi-turn REPL.

Format (compatible with the public KoGPT2 chatbot), one turn::

    <usr>{question}<unused1>{label}<sys>{answer}</s>

``label`` is the sentiment slot of ChatbotData.csv: 0 everyday, 1 breakup/negative,
2 love/positive. The loss covers the answer tokens and the closing ``</s>`` only. At chat
time earlier turns are kept as context, oldest dropped first to fit the model's window;
answers stream through the generation engine (``kogpt2.generation``, preset ``chat``).

    kogpt2 finetune chat --data ../shared/data/chat/ChatbotData.csv --model runs/mini --out runs/chat
    kogpt2 chat --model runs/mini --adapter runs/chat --sentiment 2
    printf '안녕\\n/sentiment 1\\n헤어졌어\\n' | kogpt2 chat --adapter runs/chat   # one answer per line
    kogpt2 eval chat --data ../shared/data/chat/ChatbotData.csv --adapter runs/chat --samples 10
"""

from __future__ import annotations

import csv
import io
import logging
import math
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

from kogpt2.errors import KoGPT2Error
from kogpt2.finetune.batching import ReadReport
from kogpt2.generation.presets import CHAT_FORMAT_TOKENS, GENERATION_CONFIG_KEYS, PRESETS

USR, SENT, SYS, EOS = "<usr>", "<unused1>", "<sys>", "</s>"
LABELS = ("0", "1", "2")
LABEL_NAMES = {"0": "일상", "1": "이별(부정)", "2": "사랑(긍정)"}
COLUMNS = ("Q", "A", "label")
IGNORE = -100
LN2 = math.log(2.0)
# Tokens of the format that must never appear inside an answer.
BANNED_IN_ANSWER = CHAT_FORMAT_TOKENS
CHAT_DEFAULTS = {k: v for k, v in PRESETS["chat"].items() if k in GENERATION_CONFIG_KEYS}
"""The ``chat`` preset's fields a ``generation_config.json`` can hold (written with full fine-tunes)."""
CONTROL_TOKEN = re.compile(r"</?s>|</?d>|<usr>|<sys>|<pad>|<unk>|<mask>|<unused\d+>")
"""The tokenizer's special tokens spelled out in text: a user who types ``<sys>`` must not end a turn."""
HELP = "명령: /reset (대화 초기화), /sentiment 0|1|2 (0 일상, 1 부정, 2 긍정), /quit (끝내기)"


def bundled_chat_adapter_dir() -> Path:
    """Where the chat adapter for the bundled model is shipped."""
    from kogpt2.paths import PACKAGE_DIR

    return PACKAGE_DIR / "models" / "kogpt2-small-chat"


# ----------------------------------------------------------------------------- format


def check_label(label: int | str) -> str:
    """The label as its one-character slot text; anything outside 0/1/2 is an error."""
    s = str(label).strip()
    if s not in LABELS:
        raise KoGPT2Error(f"sentiment label {label!r} is not one of 0 (everyday), 1 (negative), 2 (positive)")
    return s


def plain_text(text: str) -> str:
    """``text`` without spelled-out special tokens (:data:`CONTROL_TOKEN`), so that it cannot forge turns."""
    return CONTROL_TOKEN.sub("", text)


def format_prompt(question: str, label: int | str = 0) -> str:
    """One user turn, ending where the model starts answering: ``<usr>q<unused1>l<sys>``."""
    return f"{USR}{plain_text(question)}{SENT}{check_label(label)}{SYS}"


def format_turn(question: str, answer: str, label: int | str = 0) -> str:
    """A complete turn: ``<usr>q<unused1>l<sys>a</s>``."""
    return f"{format_prompt(question, label)}{plain_text(answer)}{EOS}"


def encode_pair(tokenizer, question: str, answer: str, label: int | str, max_len: int) -> tuple[list[int], list[int]]:
    """Token ids of one turn and its targets: ``IGNORE`` on the prompt, the ids on answer + ``</s>``.

    Prompt and answer are encoded separately so the boundary is exact. Turns longer than
    ``max_len`` are cut at the end (the answer loses its tail and its ``</s>``).

    Returns:
        ``(input_ids, labels)``, the same length; labels are not shifted.
    """
    prompt = tokenizer(format_prompt(question, label), add_special_tokens=False)["input_ids"]
    answer = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt + answer)[:max_len]
    labels = ([IGNORE] * len(prompt) + answer)[:max_len]
    return ids, labels


# ----------------------------------------------------------------------------- data


@dataclass
class ChatPair:
    """One row of ChatbotData.csv."""

    question: str
    answer: str
    label: str
    line: int


def read_chat_csv(path: str | Path) -> tuple[list[ChatPair], ReadReport]:
    """Read a ``Q,A,label`` CSV (CRLF or LF). Bad rows are counted in the report, not kept.

    Raises:
        KoGPT2Error: the file is missing, lacks a column, or has no good row.
    """
    from kogpt2.textio import read_text

    p = Path(path)
    report = ReadReport(str(p))
    pairs: list[ChatPair] = []
    with io.StringIO(read_text(p, "chat data"), newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise KoGPT2Error(f"{p} lacks column(s) {', '.join(missing)}; the header must name Q,A,label "
                              f"(found {','.join(header) or 'nothing'})")
        col = {c: header.index(c) for c in COLUMNS}
        for row in reader:
            report.rows += 1
            line = reader.line_num
            if len(row) < len(header):
                report.add_bad("missing fields", line)
                continue
            q, a, label = (row[col[c]].strip() for c in COLUMNS)
            if not q or not a:
                report.add_bad("empty question or answer", line)
            elif label not in LABELS:
                report.add_bad("label outside 0/1/2", line)
            else:
                pairs.append(ChatPair(q, a, label, line))
    report.kept = len(pairs)
    if not pairs:
        raise KoGPT2Error(f"no usable row in {p}: {report}")
    return pairs, report


def val_split(pairs: list[ChatPair], meta: dict) -> tuple[list[ChatPair], list[ChatPair]]:
    """The (train, validation) pairs of a fine-tuning run, from the split recorded in ``meta``."""
    from kogpt2.finetune.batching import run_split

    tr, va = run_split(len(pairs), meta["seed"], meta["val_fraction"], meta["max_val"], meta.get("max_examples"))
    return [pairs[i] for i in tr], [pairs[i] for i in va]


# ----------------------------------------------------------------------------- loss


def answer_nll(model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed next-token NLL (nats) over answer targets, and their count.

    ids, mask, labels: (B, T), right-padded; labels are ``IGNORE`` off the answer.
    """
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits  # (B, T, V)
    targets = labels[:, 1:]
    nll = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                          ignore_index=IGNORE, reduction="sum")
    return nll, int((targets != IGNORE).sum())


def batch_of(encoded: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[torch.Tensor, ...]:
    """(ids, mask, labels), each (B, T), right-padded."""
    from kogpt2.finetune.batching import pad_right

    ids, mask = pad_right([e[0] for e in encoded], pad_id)
    labels, _ = pad_right([e[1] for e in encoded], pad_id, fill=IGNORE)
    return ids, mask, labels


@torch.no_grad()
def answer_bpc(model, tokenizer, pairs: list[ChatPair], max_len: int = 128, batch_size: int = 32,
               dtype: str = "fp32") -> tuple[float, float]:
    """``(mean NLL per answer token, answer bits per character)`` of ``pairs``.

    Characters are those of the answers; the closing ``</s>`` is predicted but has none.
    """
    from kogpt2.finetune.batching import autocast_ctx, iter_chunks

    was = model.training
    model.eval()
    device = next(model.parameters()).device  # scored where the model is
    nll, n_tok = 0.0, 0
    for chunk in iter_chunks(pairs, batch_size):
        enc = [encode_pair(tokenizer, p.question, p.answer, p.label, max_len) for p in chunk]
        ids, mask, labels = (t.to(device) for t in batch_of(enc, tokenizer.pad_token_id))
        with autocast_ctx(dtype, device):
            s, n = answer_nll(model, ids, mask, labels)
        nll, n_tok = nll + float(s), n_tok + n
    model.train(was)
    chars = sum(len(p.answer) for p in pairs)
    return nll / max(1, n_tok), nll / LN2 / max(1, chars)


# ----------------------------------------------------------------------------- loading


def load_chat_model(model: str | Path | None = None, adapter: str | Path | None = None) -> tuple[Any, Any]:
    """``(causal LM, tokenizer)`` for chatting: a base model with a chat adapter merged in.

    Args:
        model: base model directory (None = the adapter's recorded base, else the bundled model);
            or a full fine-tune directory when ``adapter`` is None.
        adapter: a ``kogpt2 finetune chat`` output: LoRA adapter, or a full fine-tune directory.
            With neither ``model`` nor ``adapter``: the bundled chat adapter on the bundled model
            (the bundled model as it is, with a logged warning, when the adapter is not installed).

    Raises:
        KoGPT2Error: the adapter is not a chat fine-tune, or was trained on another base model.
    """
    from kogpt2.finetune.base import adapter_base, check_base, quiet_transformers, read_meta, resolve_base
    from kogpt2.model import load_model
    from kogpt2.tokenizer import load_tokenizer

    if adapter is None and model is None:
        adapter = bundled_chat_adapter_dir()
        if not (adapter / "kogpt2_finetune.json").is_file():
            logging.getLogger("kogpt2.chat").warning(
                "the bundled chat adapter (%s) is not installed; chatting with the base model as it is", adapter)
            adapter = None
    if adapter is None:
        base = resolve_base(model)
        return load_model(base), load_tokenizer(base)
    meta = read_meta(adapter, "chat")
    if meta["mode"] == "full":
        if model is not None:
            raise KoGPT2Error(f"{adapter} is a fully fine-tuned model; give it as --model alone, without --adapter")
        return load_model(adapter), load_tokenizer(adapter)
    base = adapter_base(meta, model)
    lm = load_model(base)
    check_base(meta, lm, adapter, base)
    from peft import PeftModel

    with quiet_transformers():
        merged = PeftModel.from_pretrained(lm, str(adapter)).merge_and_unload()
    return merged.eval(), load_tokenizer(base)


# ----------------------------------------------------------------------------- the chat session


class ChatSession:
    """A conversation: earlier turns, the sentiment label, and streamed answers.

    Args:
        model: a loaded causal LM (e.g. from :func:`load_chat_model`).
        tokenizer: its tokenizer.
        label: sentiment slot for the user's turns (0 everyday, 1 negative, 2 positive).
        device: ``cpu``, ``cuda``, ``auto``, or None (where the model is).
        **sampling: ``kogpt2.SamplingConfig`` fields over the ``chat`` preset
            (``kogpt2.generation.presets``), which keeps the format's tokens out of answers.
    """

    def __init__(self, model, tokenizer, label: int | str = 0, device: str | None = None, **sampling: Any):
        from kogpt2.generation.api import config_for, load

        self.decoder, self.tokenizer = load(model, tokenizer, device=device)
        self.model = model
        self.label = check_label(label)
        self.config = config_for(self.decoder, "chat", tokenizer=self.tokenizer, **sampling)
        if self.config.num_beams > 1 or self.config.num_return_sequences > 1:
            raise KoGPT2Error("a chat answer is one streamed sequence: use num_beams=1 and num_return_sequences=1")
        if self.config.max_new_tokens >= self.decoder.context:
            raise KoGPT2Error(f"max_new_tokens {self.config.max_new_tokens} leaves no room for the question in the "
                              f"model's context of {self.decoder.context} tokens; give a smaller value")
        self.context = self.decoder.context
        if self.config.max_new_tokens >= self.context:
            raise KoGPT2Error(f"--max-new-tokens {self.config.max_new_tokens} leaves no room for the question in "
                              f"the model's {self.context}-token context")
        self.history: list[tuple[str, str, str]] = []  # (question, answer, label)
        self.replies = 0  # with a seed, reply n samples with seed + n: reproducible, yet not the same draw each turn

    def reset(self) -> None:
        """Forget earlier turns."""
        self.history.clear()

    def set_label(self, label: int | str) -> None:
        self.label = check_label(label)

    def _n_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt(self, question: str) -> str:
        """The model input for ``question``: the newest earlier turns that fit, then the question.

        Raises:
            KoGPT2Error: the question alone does not fit the context.
        """
        budget = self.context - self.config.max_new_tokens
        current = format_prompt(question, self.label)
        used = self._n_tokens(current)
        if used > budget:
            raise KoGPT2Error(f"the question is {used} tokens; at most {budget} fit with "
                              f"max_new_tokens={self.config.max_new_tokens}. Ask something shorter.")
        kept: list[str] = []
        for q, a, l in reversed(self.history):
            turn = format_turn(q, a, l)
            used += self._n_tokens(turn)
            if used > budget:
                break
            kept.append(turn)
        return "".join(reversed(kept)) + current

    def reply(self, question: str) -> Iterator[str]:
        """Stream the answer to ``question``; the turn joins the history when the answer ends."""
        from kogpt2.generation.api import stream

        if not isinstance(question, str):
            raise KoGPT2Error(f"the question must be a string, got {type(question).__name__}")
        question = question.strip()
        if not question:
            raise KoGPT2Error("empty question: type something to say (" + HELP + ")")
        prompt = self.prompt(question)
        answer = []
        config = self.config if self.config.seed is None else \
            self.config.replace(seed=(self.config.seed + self.replies) % 2**63)
        self.replies += 1
        for chunk in stream(prompt, model=self.decoder, tokenizer=self.tokenizer, config=config):
            answer.append(chunk)
            yield chunk
        self.history.append((question, "".join(answer).strip(), self.label))


def run_repl(session: ChatSession, lines: Iterable[str], write: Callable[[str], None], interactive: bool,
             err: Callable[[str], None] | None = None) -> int:
    """Drive a session from input lines: questions, ``/reset``, ``/sentiment N``, ``/quit``.

    Interactive mode prints a banner, prompts and notices. Batch mode prints exactly one
    line per input line that is not a command (newlines inside an answer become spaces), so
    answers line up with questions: a blank line, or a question that fails, gets an empty
    line; hints go to ``err`` (stderr).

    Returns:
        the exit status (0).
    """
    err = err or (lambda s: print(s, file=sys.stderr, flush=True))
    notice = write if interactive else err
    if interactive:
        write(f"KoGPT2 챗봇 — 감정 {session.label} ({LABEL_NAMES[session.label]}). {HELP}\n나> ")
    for raw in lines:
        line = raw.strip()
        if line in ("/quit", "/exit"):
            break
        try:
            if line == "/reset":
                session.reset()
                notice("(대화를 초기화했습니다)\n")
            elif line.startswith("/sentiment"):
                session.set_label(line[len("/sentiment"):].strip())
                notice(f"(감정 {session.label}: {LABEL_NAMES[session.label]})\n")
            elif line.startswith("/"):
                notice(f"알 수 없는 명령 {line.split()[0]}. {HELP}\n")
            elif not line:
                notice("(질문을 입력하세요. " + HELP + ")\n")
                if not interactive:
                    write("\n")
            else:
                if interactive:
                    write("봇> ")
                answered = False
                try:
                    for chunk in session.reply(line):
                        answered = True
                        write(chunk if interactive else chunk.replace("\r", " ").replace("\n", " "))
                finally:
                    if answered or not interactive:
                        write("\n")
        except KoGPT2Error as e:
            notice(f"({e})\n")
        if interactive:
            write("나> ")
    if interactive:
        write("\n")
    return 0


# ----------------------------------------------------------------------------- evaluation


def evaluate_chat(data: str | Path, model: str | Path | None = None, adapter: str | Path | None = None,
                  max_pairs: int | None = None, samples: int = 0, seed: int = 0,
                  device: torch.device | None = None) -> dict:
    """Answer bits/char on validation pairs for the base model and, with ``adapter``, the fine-tuned one
    (on ``device``: ``kogpt2.devices.resolve_device``; None = the CPU).

    The validation pairs are those the adapter's run held out (its recorded split), or a
    default 5% split without an adapter.

    Returns:
        ``{"pairs": n, "base_bpc": x, "finetuned_bpc": y or None, "samples": [(q, label, ref, answer)]}``.
    """
    from kogpt2.finetune.base import adapter_base, read_meta, resolve_base
    from kogpt2.finetune.config import FinetuneConfig
    from kogpt2.finetune.task import get_task
    from kogpt2.model import load_model
    from kogpt2.tokenizer import load_tokenizer

    pairs, report = read_chat_csv(data)
    print(report)
    if adapter is not None:
        meta = read_meta(adapter, "chat")
        base = resolve_base(model) if meta["mode"] == "full" and model else adapter_base(meta, model)
    else:
        d = FinetuneConfig(data=str(data), out="-", **get_task("chat").defaults)
        meta = dict(seed=d.seed, val_fraction=d.val_fraction, max_val=d.max_val, max_examples=None, max_len=d.max_len)
        base = resolve_base(model)
    _, val = val_split(pairs, meta)
    val = val[:max_pairs] if max_pairs else val
    max_len = max(meta.get("max_len", 128), 128)
    from kogpt2.devices import place

    device = device if device is not None else torch.device("cpu")
    base_bpc = answer_bpc(place(load_model(base), device), load_tokenizer(base), val, max_len)[1]
    result = {"pairs": len(val), "base": str(base), "base_bpc": base_bpc, "finetuned_bpc": None, "samples": []}
    if adapter is not None:
        lm, tok = load_chat_model(None if meta["mode"] == "full" else base, adapter)
        lm = place(lm, device)
        result["finetuned_bpc"] = answer_bpc(lm, tok, val, max_len)[1]
        if samples:
            session = ChatSession(lm, tok, seed=seed, device=device)
            for p in random.Random(seed).sample(val, min(samples, len(val))):
                session.reset()
                session.set_label(p.label)
                result["samples"].append((p.question, p.label, p.answer, "".join(session.reply(p.question))))
    return result
