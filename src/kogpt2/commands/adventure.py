"""``kogpt2 adventure``: play a Korean text adventure written by the model, steered by PPLM.

Examples::

    kogpt2 adventure --model runs/mini                        # new fantasy game, interactive
    kogpt2 adventure --genre horror --protagonist 서연 --goal "해가 뜰 때까지 살아남는 것"
    kogpt2 adventure --load adventure_save.json
    printf '1\n3\n문을 열어 본다\nsave g.json\nquit\n' | kogpt2 adventure --model runs/mini --seed 1

Commands in the game: a menu number, free text, ``story``, ``undo``, ``retry``, ``save [FILE]``,
``load [FILE]``, ``help``, ``quit``. With stdin not a terminal, commands are read one per line
(scripted mode) and a plain transcript is printed.
"""

from __future__ import annotations

import argparse

from kogpt2.commands.pplm_args import add_pplm_flags, pplm_config, pplm_values
from kogpt2.errors import KoGPT2Error


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``adventure`` arguments."""
    parser.add_argument("--genre", default=None, help="fantasy (default), horror, sci-fi or mystery")
    parser.add_argument("--protagonist", metavar="NAME", help="the hero's name (default: drawn from the genre)")
    parser.add_argument("--goal", metavar="TEXT", help="the hero's goal, e.g. \"용을 물리치는 것\"")
    parser.add_argument("--model", metavar="DIR", help="model directory (default: the bundled kogpt2-small)")
    parser.add_argument("--load", metavar="FILE", help="continue a saved game (its settings are used)")
    parser.add_argument("--no-pplm", action="store_true", help="do not steer the story toward the genre")
    from kogpt2.commands.sampling_args import add_sampling_flags
    from kogpt2.devices import add_device_flags

    add_device_flags(parser)
    add_sampling_flags(parser, "pplm", exclude={"num_beams", "num_return_sequences", "stop"})
    add_pplm_flags(parser)
    parser.set_defaults(func=run)


def _settings(args: argparse.Namespace):
    from kogpt2.adventure import Settings
    from kogpt2.commands.sampling_args import sampling_values
    from kogpt2.generation.presets import resolve_config

    sampling = sampling_values(args)
    sampling.pop("seed", None)  # the game's seed: Settings.seed
    max_new = resolve_config("pplm", **sampling).max_new_tokens  # validates the values too
    sampling.pop("max_new_tokens", None)
    pplm_config(args)  # validates
    pplm = pplm_values(args)
    if args.no_pplm and pplm:
        raise KoGPT2Error("--no-pplm conflicts with PPLM strength options; drop one of them")
    return Settings(model=args.model, use_pplm=not args.no_pplm, max_new_tokens=max_new, sampling=sampling,
                    pplm=pplm, seed=args.seed if args.seed is not None else 0)


def run(args: argparse.Namespace) -> int:
    """Start or load a game and play it; returns the exit status."""
    from kogpt2.adventure import Adventure, GameState, genre_names
    from kogpt2.adventure_ui import play
    from kogpt2.devices import resolve_device, set_threads

    device = resolve_device(args.device)
    set_threads(args.threads)

    if args.load:
        from kogpt2.commands.sampling_args import sampling_values

        given = [f"--{f}" for f in ("genre", "protagonist", "goal", "model") if getattr(args, f)]
        given += ["--no-pplm"] * args.no_pplm
        given += [f"--{f.replace('_', '-')}" for f in {**sampling_values(args), **pplm_values(args)}]
        if given:
            raise KoGPT2Error(f"--load restores a saved game with its own settings; drop {', '.join(given)}")
        game = Adventure(GameState.load(args.load), device=device)
    else:
        genre = args.genre or "fantasy"
        if genre not in genre_names():
            raise KoGPT2Error(f"unknown genre {genre!r}; choose one of: {', '.join(genre_names())}")
        game = Adventure.new(genre, args.protagonist, args.goal, _settings(args), device=device)
    return play(game)
