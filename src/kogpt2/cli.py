"""The single ``kogpt2`` command.

Every subcommand is registered in ``COMMANDS`` below: name -> (module, one-line help).
A command module exposes ``configure(parser)``, which adds its arguments (or its own
sub-subcommands) and sets ``func`` as the parser default; ``func(args)`` does the work
by calling the library. A command whose first argument is free text (``kogpt2 pplm PROMPT``)
lists its sub-subcommands in ``SUBCOMMANDS`` (word -> ``configure``): that word in first place
selects the other parser. Modules are imported only when their command runs, so
``kogpt2 generate`` starts fast.

Examples::

    kogpt2 --help
    kogpt2 tokenizer train ../shared/data/text --out runs/tok --vocab-size 16384
    python -m kogpt2 data prepare ../shared/data/text --tokenizer runs/tok --out runs/data
"""

from __future__ import annotations

import argparse
import importlib
import io
import sys
from typing import Callable, NoReturn, Sequence

from kogpt2.errors import KoGPT2Error

# NOTE: one table, one place. Keep it sorted by pipeline stage.
COMMANDS: dict[str, tuple[str, str]] = {
    "tokenizer": ("kogpt2.commands.tokenizer", "train, inspect and run Korean tokenizers"),
    "data": ("kogpt2.commands.data", "prepare tokenized training shards, inspect them"),
    "train": ("kogpt2.commands.train", "pretrain a GPT-2 / GPT-Neo from data shards (CPU, GPU, torchrun)"),
    "generate": ("kogpt2.commands.generate", "generate Korean text (streaming) with any model directory"),
    "eval": ("kogpt2.commands.eval", "evaluate models: bits per character, chat, sentiment"),
    "export": ("kogpt2.commands.export", "export to ONNX (past key/values, int8) or a compact bf16 HF release"),
    "convert": ("kogpt2.commands.convert", "import TF GPT-2 checkpoints and normalise KoGPT2 v1/v2 directories"),
    "finetune": ("kogpt2.commands.finetune", "fine-tune a chatbot or a sentiment classifier (LoRA or full)"),
    "chat": ("kogpt2.commands.chat", "chat with a fine-tuned model in Korean"),
    "classify": ("kogpt2.commands.classify", "classify the sentiment of Korean text"),
    "pplm": ("kogpt2.commands.pplm", "steer generation with PPLM (bag of words or discriminator)"),
    "adventure": ("kogpt2.commands.adventure", "play a Korean text adventure steered by PPLM"),
    "serve": ("kogpt2.commands.serve", "serve an OpenAI-compatible HTTP API and the web demo"),
}


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line: the problem and where the help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def _top_parser() -> argparse.ArgumentParser:
    width = max(len(n) for n in COMMANDS)
    lines = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items())
    return Parser(
        prog="kogpt2",
        description="KoGPT2: Korean GPT-2 toolkit.",
        epilog=f"commands:\n{lines}\n\nRun `kogpt2 COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser(name: str, sub: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser of one subcommand (imports its module), or of its ``sub`` word."""
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    if sub is not None:
        parser = Parser(prog=f"kogpt2 {name} {sub}")
        module.SUBCOMMANDS[sub](parser)
        return parser
    parser = Parser(prog=f"kogpt2 {name}", description=help_)
    module.configure(parser)
    return parser


def _sub_word(name: str, rest: Sequence[str]) -> str | None:
    """``rest[0]`` when it names one of the command's ``SUBCOMMANDS``."""
    if not rest:
        return None
    module = importlib.import_module(COMMANDS[name][0])
    return rest[0] if rest[0] in getattr(module, "SUBCOMMANDS", {}) else None


def _is_text(arg: str) -> bool:
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kogpt2`` console script. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if isinstance(sys.stdin, io.TextIOWrapper):  # bad bytes on stdin: an error below, not lone surrogates
        sys.stdin.reconfigure(errors="strict")
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0
    if argv[0] == "--version":
        from kogpt2 import __version__

        print(f"kogpt2 {__version__}")
        return 0
    bad = next((a for a in argv if not _is_text(a)), None)
    if bad is not None:  # bytes that are not UTF-8 reach Python as lone surrogates
        print(f"error: the argument {bad.encode('utf-8', 'replace').decode()!r} is not UTF-8 text; type it "
              "again, or convert the text first (e.g. `iconv -f cp949 -t utf-8`)", file=sys.stderr)
        return 2
    name = argv[0]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose one of: {', '.join(COMMANDS)} "
              "(see `kogpt2 --help`)", file=sys.stderr)
        return 2
    sub = _sub_word(name, argv[1:])
    parser = build_parser(name, sub)
    args = parser.parse_args(argv[2:] if sub else argv[1:])
    func: Callable[[argparse.Namespace], int | None] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        from kogpt2.commands.common import quiet_libraries

        quiet_libraries()  # every command: no loading bars from transformers, warnings on one line
        return int(func(args) or 0)
    except KoGPT2Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as e:
        print(f"error: the input is not UTF-8 text ({e.reason}); convert it first, "
              "e.g. `iconv -f cp949 -t utf-8 IN > OUT`", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
