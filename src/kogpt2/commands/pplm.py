"""``kogpt2 pplm``: steered generation (bag of words or discriminator), and ``train-discrim``.

Examples::

    kogpt2 pplm "오늘 아침에" --bow 공포 --model runs/mini --samples 3 --seed 1
    kogpt2 pplm "오늘 아침에" --bow-file my_words.txt --model runs/mini
    kogpt2 pplm --prompts prompts.txt --discrim runs/discrim --class positive --model runs/mini --jsonl
    kogpt2 pplm train-discrim --data ../shared/data/nsmc/ratings_train.txt --out runs/discrim --model runs/mini

Each sample prints the unsteered and the steered continuation of the same seed (steered text
streams as it is generated). ``--jsonl`` prints instead one object per sample:
``{"prompt": ..., "unsteered": ..., "steered": ...}`` (continuations without the prompt).
"""

from __future__ import annotations

import argparse
import json
import random
import sys

from kogpt2.errors import KoGPT2Error

# ---------------------------------------------------------------------------- parser

def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``pplm`` arguments; ``kogpt2 pplm train-discrim ...`` has its own parser (``SUBCOMMANDS``)."""
    from kogpt2.paths import bow_names

    parser.description = (parser.description or "") + (
        ". Train a discriminator first with: kogpt2 pplm train-discrim --data FILE --out DIR "
        "(see `kogpt2 pplm train-discrim --help`)")
    parser.add_argument("prompt", nargs="?", help="prompt text (none: the lines of piped stdin)")
    parser.add_argument("--prompts", metavar="FILE", help="one prompt per line, - for stdin (instead of PROMPT)")
    parser.add_argument("--model", metavar="DIR", help="model directory (default: the bundled kogpt2-small)")
    a = parser.add_argument_group("attribute (exactly one)")
    a.add_argument("--bow", metavar="NAME", help=f"a shipped bag of words: {' '.join(bow_names())}")
    a.add_argument("--bow-file", metavar="FILE", help="your own word list, one word per line")
    a.add_argument("--discrim", metavar="DIR", help="`sentiment` (shipped for the bundled model) or a directory "
                   "written by `kogpt2 pplm train-discrim`")
    a.add_argument("--class", dest="label", metavar="LABEL", help="the discriminator's class to steer to "
                   "(positive / negative)")
    parser.add_argument("--samples", type=int, default=1, help="samples per prompt (default 1)")
    parser.add_argument("--jsonl", action="store_true", help="one JSON object per sample instead of text")
    from kogpt2.commands.pplm_args import add_pplm_flags
    from kogpt2.commands.sampling_args import add_sampling_flags
    from kogpt2.devices import add_device_flags

    add_device_flags(parser)
    add_sampling_flags(parser, "pplm", exclude={"num_beams", "num_return_sequences"})
    add_pplm_flags(parser)
    parser.set_defaults(func=run)


def configure_train(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``kogpt2 pplm train-discrim`` (options: ``DiscrimTrainConfig``'s fields)."""
    from kogpt2.config_flags import add_dataclass_flags
    from kogpt2.pplm_discrim import DiscrimTrainConfig

    parser.description = "train the PPLM discriminator (linear head on the mean hidden state) on NSMC-style data"
    parser.add_argument("--data", required=True, metavar="FILE",
                        help="id<TAB>document<TAB>label file with a header (NSMC ratings_train.txt)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory to write the discriminator to")
    parser.add_argument("--model", metavar="DIR", help="the LM to steer later (default: the bundled kogpt2-small)")
    add_dataclass_flags(parser, DiscrimTrainConfig)
    from kogpt2.devices import add_device_flags

    add_device_flags(parser)
    parser.set_defaults(func=run_train)


SUBCOMMANDS = {"train-discrim": configure_train}
"""Words that, first after ``kogpt2 pplm``, select another parser (``kogpt2.cli``): PROMPT is free text,
so argparse sub-parsers cannot be used."""


# ---------------------------------------------------------------------------- running

def _attribute(args: argparse.Namespace, tokenizer):
    """The attribute model chosen by exactly one of --bow / --bow-file / --discrim."""
    from kogpt2 import pplm

    given = [n for n in ("bow", "bow_file", "discrim") if getattr(args, n)]
    if len(given) != 1:
        raise KoGPT2Error("choose exactly one attribute: --bow NAME, --bow-file FILE or --discrim DIR --class LABEL")
    if args.discrim:
        if not args.label:
            raise KoGPT2Error("--discrim needs --class LABEL (e.g. --class positive)")
        return pplm.load_discriminator(args.discrim, args.label)
    if args.label:
        raise KoGPT2Error("--class only applies with --discrim")
    if args.bow_file:
        from kogpt2.validate import existing_file

        existing_file(args.bow_file, "--bow-file")
        return pplm.load_bow(args.bow_file, tokenizer)
    return pplm.load_bow(args.bow, tokenizer)


def run(args: argparse.Namespace) -> int:
    """Print unsteered and steered continuations; returns the exit status."""
    from kogpt2.commands.common import read_prompts
    from kogpt2.commands.pplm_args import pplm_config
    from kogpt2.commands.sampling_args import sampling_values
    from kogpt2.devices import resolve_device, set_threads

    from kogpt2 import pplm
    from kogpt2.generation.api import config_for, generate, load, stream

    prompts = read_prompts(args)
    if args.samples < 1:
        raise KoGPT2Error(f"--samples must be >= 1, got {args.samples}")
    device = resolve_device(args.device)
    set_threads(args.threads)
    decoder, tok = load(args.model, device=device)
    cfg = config_for(decoder, "pplm", tokenizer=tok, **sampling_values(args))
    attribute = _attribute(args, tok)
    steering, _ = pplm.steering_decoder(decoder.model, attribute, pplm_config(args, bool(args.discrim)), tok)
    base_seed = args.seed if args.seed is not None else random.randrange(2**31)
    out = sys.stdout
    for i, prompt in enumerate(prompts):
        for j in range(args.samples):
            c = cfg.replace(seed=base_seed + j)
            if args.jsonl:
                plain = generate(prompt, model=decoder, tokenizer=tok, config=c)
                steered = generate(prompt, model=steering, tokenizer=tok, config=c)
                out.write(json.dumps({"prompt": prompt, "unsteered": plain, "steered": steered},
                                     ensure_ascii=False) + "\n")
                out.flush()
                continue
            plain = generate(prompt, model=decoder, tokenizer=tok, config=c)
            out.write(("\n" if i or j else "") + f"= unsteered (seed {c.seed}) =\n{prompt}{plain}\n"
                      f"= steered =\n{prompt}")
            out.flush()
            for chunk in stream(prompt, model=steering, tokenizer=tok, config=c):
                out.write(chunk)
                out.flush()
            out.write("\n")
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Train and save a discriminator; prints its accuracy."""
    from kogpt2.config_flags import dataclass_kwargs
    from kogpt2.devices import resolve_device, set_threads
    from kogpt2.pplm_discrim import DiscrimTrainConfig, read_labelled, train_discriminator
    from kogpt2.validate import output_dir

    output_dir(args.out)
    config = DiscrimTrainConfig(**dataclass_kwargs(DiscrimTrainConfig, args))  # checks the numbers
    device = resolve_device(args.device)
    if args.threads is not None:  # a training job: torch's default (every core) unless told
        set_threads(args.threads)
    rows, report = read_labelled(args.data)
    print(report)
    r = train_discriminator(rows, args.out, args.model, config, device=device)
    print(f"discriminator saved to {args.out}: {r.train_examples} training / {r.valid_examples} held-out "
          f"examples, accuracy {r.train_accuracy:.3f} train / {r.valid_accuracy:.3f} held out")
    return 0
