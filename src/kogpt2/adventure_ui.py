"""Terminal front ends of ``kogpt2.adventure``: a rich UI for a TTY, plain text otherwise.

Scripted mode (stdin not a terminal) reads one command per line, echoes it after ``> `` and
prints the replies, so a game can be played from a file or by a test::

    printf '1\n살펴보기\nsave game.json\nquit\n' | kogpt2 adventure --model runs/mini --seed 1
"""

from __future__ import annotations

import sys
from typing import Iterable, TextIO

from kogpt2.adventure import Adventure


def play_script(game: Adventure, lines: Iterable[str], out: TextIO) -> int:
    """Play commands from ``lines``, writing a plain transcript to ``out``. Returns the exit status."""
    out.write(game.intro_text() + "\n")
    for line in lines:
        line = line.rstrip("\n")
        out.write(f"\n> {line}\n")
        reply = game.handle(line)
        out.write(reply.text + "\n")
        out.flush()
        if reply.quit:
            break
    return 0


def play_terminal(game: Adventure) -> int:
    """Interactive play with ``rich`` (colours, panels, a spinner while the model writes)."""
    from rich.console import Console
    from rich.panel import Panel

    console = Console(highlight=False)
    console.print(Panel(game.intro_text(), title="KoGPT2 모험", border_style="cyan"))
    while True:
        try:
            line = console.input("[bold cyan]> [/]")
        except (EOFError, KeyboardInterrupt):
            console.print("\n모험을 마칩니다.")
            return 0
        with console.status("이야기를 쓰는 중…"):
            reply = game.handle(line)
        console.print(reply.text, markup=False)
        if reply.quit:
            return 0


def play(game: Adventure, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    """Interactive when both stdin and stdout are terminals, scripted otherwise."""
    stdin, out = stdin or sys.stdin, out or sys.stdout
    if stdin.isatty() and out.isatty():
        return play_terminal(game)
    return play_script(game, stdin, out)
