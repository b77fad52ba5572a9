"""Helpers shared by the command modules (which never import each other): prompts and quiet libraries."""

from __future__ import annotations

import argparse
import sys

from kogpt2.errors import KoGPT2Error


def read_prompts(args: argparse.Namespace) -> list[str]:
    """The prompts of a generate-like command: one PROMPT or the lines of --prompts FILE (- for stdin).

    With neither, the lines of standard input when it is piped (``echo 오늘 | kogpt2 generate``).
    """
    from kogpt2.textio import piped_lines, read_text_lines

    if args.prompt is None and args.prompts is None and (piped := piped_lines()):
        return piped
    if (args.prompt is None) == (args.prompts is None):
        raise KoGPT2Error("give a PROMPT or --prompts FILE (exactly one; or pipe prompts on stdin)")
    if args.prompt is not None:
        return [args.prompt]
    return read_text_lines(args.prompts, "--prompts")


def quiet_libraries() -> None:
    """No loading progress bars from transformers; warnings on one line."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
