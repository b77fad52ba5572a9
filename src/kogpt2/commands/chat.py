"""``kogpt2 chat``: talk with a fine-tuned KoGPT2 chatbot.

Examples::

    kogpt2 chat                                        # bundled model + bundled chat adapter
    kogpt2 chat --model runs/mini --adapter runs/chat --sentiment 2
    printf '안녕하세요\\n요즘 너무 힘들어\\n' | kogpt2 chat --adapter runs/chat   # one answer per line

In the REPL: ``/reset`` forgets the conversation, ``/sentiment 0|1|2`` sets the sentiment
slot (0 everyday, 1 negative, 2 positive), ``/quit`` ends. When stdin is not a terminal
(or with ``--batch``) each input line is a question and each output line its answer.
"""

from __future__ import annotations

import argparse
import sys

from kogpt2.errors import KoGPT2Error


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="base model directory, or a fully fine-tuned chat model (default: bundled kogpt2-small)")
    parser.add_argument("--adapter", default=None,
                        help="chat adapter from `kogpt2 finetune chat` (default: the bundled one, with the "
                             "bundled model)")
    parser.add_argument("--no-adapter", action="store_true", help="chat with the base model as it is")
    parser.add_argument("--sentiment", type=int, default=0, choices=[0, 1, 2],
                        help="sentiment slot: 0 everyday (default), 1 negative, 2 positive")
    parser.add_argument("--batch", action="store_true",
                        help="one question per stdin line, one answer line per input line (empty for a blank "
                        "line or a failed question; /commands print none)")
    from kogpt2.commands.sampling_args import add_sampling_flags
    from kogpt2.devices import add_device_flags

    add_device_flags(parser)
    add_sampling_flags(parser, "chat", exclude={"num_beams", "num_return_sequences"})
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kogpt2.commands.sampling_args import sampling_values
    from kogpt2.devices import resolve_device, set_threads

    from kogpt2.chat import ChatSession, bundled_chat_adapter_dir, load_chat_model, run_repl

    sampling = sampling_values(args)
    device = resolve_device(args.device)
    set_threads(args.threads)

    if args.no_adapter and args.adapter:
        raise KoGPT2Error("--adapter and --no-adapter conflict; give one")
    adapter = args.adapter
    if adapter is None and not args.no_adapter and args.model is None:
        default = bundled_chat_adapter_dir()
        adapter = default if (default / "kogpt2_finetune.json").is_file() else None
    if adapter is None and args.model is None:  # the base model as it is (load_chat_model() would add the adapter)
        from kogpt2.paths import bundled_model_dir

        model, tokenizer = load_chat_model(bundled_model_dir(), None)
    else:
        model, tokenizer = load_chat_model(args.model, adapter)
    session = ChatSession(model, tokenizer, label=args.sentiment, device=device, **sampling)
    interactive = sys.stdin.isatty() and not args.batch

    def write(s: str) -> None:
        sys.stdout.write(s)
        sys.stdout.flush()

    lines = _interactive_lines() if interactive else sys.stdin
    return run_repl(session, lines, write, interactive)


def _interactive_lines():
    """Lines typed at the terminal (Ctrl-D ends)."""
    try:
        import readline  # noqa: F401  line editing and history for input()
    except ImportError:
        pass
    while True:
        try:
            yield input()
        except EOFError:
            return
