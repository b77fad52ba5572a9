"""PPLM steering: attribute relevance, fluency, diversity and speed, unsteered vs steered.

20 prompts written here x 3 samples (sample j uses seed j for every mode, so each steered
sample has an unsteered twin). Modes: unsteered, bag of words (``--bow``), and, with a
discriminator, steering to positive and to negative. Measured per mode:

  * relevance: BoW = share of samples containing a topic word at a word start;
    discriminator = mean P(positive) of prompt + continuation under the judge, a model that
    is not the steering discriminator: ``--judge tfidf`` (default) = character 1-4-gram
    TF-IDF + logistic regression (``benchmarks/tfidf.py``) fitted in this run on a seeded
    sample of NSMC train, its accuracy on NSMC test printed; ``--judge bundled|DIR`` = a
    ``kogpt2 finetune sentiment`` head. The steering discriminator's own P(positive) is shown
    beside it (``disc``; optimistic: it is the model being optimised). With a discriminator, every
    mode (unsteered and bag of words too) gets both columns, so ``--bow FILE`` of sentiment words can
    be judged next to it;
  * fluency: bits/char of the continuations under the unsteered model
    (``kogpt2.evaluate.bits_per_char``; each continuation scored as its own document);
  * diversity: Dist-1/2/3, distinct word n-grams / all word n-grams over the mode's samples;
  * speed: generated tokens per second (batch = all prompts of one sample index).

    python benchmarks/pplm.py                                    # bundled model, BoW only
    python benchmarks/pplm.py --discrim sentiment                       # the shipped discriminator, TF-IDF judge
    python benchmarks/pplm.py --discrim sentiment --judge bundled       # judged by the shipped sentiment head
    python benchmarks/pplm.py --model runs/mini --discrim runs/discrim --judge runs/sent
    python benchmarks/pplm.py --model runs/mini --nsmc ../shared/data/nsmc/ratings_train.txt  # trains a discriminator
    python benchmarks/pplm.py --model DIR --prompts 4 --samples 1 --max-new-tokens 20    # a quick look

Target (issues 7, 14): sentiment steering moves mean P(positive) to >= 0.75 (<= 0.25 for negative)
from ~0.5 unsteered, at a fluency cost <= 15% in bits/char. Last line:
``RESULT bow_relevance=<> bow_relevance_ref=<> p_pos=<> p_neg=<> p_ref=<> bpc_ratio=<> speed_ratio=<>
judge=<> judge_acc=<>``.
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile
import time
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nsmc"
PROMPTS = [
    "오늘 아침에", "그 영화를 보고 나서", "우리 동네에는", "어제 친구와 함께", "창밖을 바라보니",
    "이 이야기는", "할머니께서 말씀하시길", "그날 밤", "회사에 도착하자", "주말에는",
    "새로 산 책은", "오랜만에 고향에 가서", "기차를 타고", "문을 열었더니", "그는 조용히",
    "학교 앞 식당은", "지난 여름", "편지를 읽고", "비가 오는 날에는", "모두가 잠든 사이",
]


def dist_n(texts: list[str], n: int) -> float:
    grams, total = set(), 0
    for t in texts:
        words = t.split()
        ngrams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        grams.update(ngrams)
        total += len(ngrams)
    return len(grams) / total if total else 0.0


def topic_share(texts: list[str], words: list[str]) -> float:
    pattern = re.compile(r"(?:^|\s)(?:" + "|".join(re.escape(w) for w in words) + ")")
    return sum(bool(pattern.search(t)) for t in texts) / max(1, len(texts))


def run_mode(decoder, tok, prompts: list[str], samples: int, max_new: int) -> tuple[list[str], float]:
    """All continuations (prompt-major) and generated tokens per second."""
    from kogpt2.generation import api
    from kogpt2.generation.presets import resolve_config

    by_sample, n_tokens, start = [], 0, time.perf_counter()
    for j in range(samples):
        cfg = resolve_config("pplm", max_new_tokens=max_new, seed=j)
        texts = api.generate(prompts, model=decoder, tokenizer=tok, config=cfg)
        by_sample.append(texts)
        n_tokens += sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
    rate = n_tokens / (time.perf_counter() - start)
    return [by_sample[j][i] for i in range(len(prompts)) for j in range(samples)], rate


def bpc(model, tok, texts: list[str]) -> float:
    from kogpt2.evaluate import bits_per_char

    return bits_per_char(model, tok, [t.strip() for t in texts if t.strip()]).bpc


def make_judge(args: argparse.Namespace):
    """(texts -> P(positive) array, accuracy on the NSMC test slice) of the judge ``args.judge``."""
    from kogpt2.sentiment import read_nsmc

    te_texts, te_labels, _ = read_nsmc(args.judge_test)
    te_texts, te_labels = te_texts[:args.judge_test_examples], te_labels[:args.judge_test_examples]
    start = time.perf_counter()
    if args.judge == "tfidf":
        from tfidf import fit_tfidf

        texts, labels, _ = read_nsmc(args.judge_train)
        keep = range(len(texts))
        if 0 < args.judge_examples < len(texts):
            keep = sorted(random.Random(0).sample(keep, args.judge_examples))
        tfidf = fit_tfidf([texts[i] for i in keep], [labels[i] for i in keep])
        judge, acc = tfidf.p_positive, tfidf.accuracy(te_texts, te_labels)
        what = f"TF-IDF char 1-4 + LR on {len(keep)} NSMC train reviews (seed 0)"
    else:
        from kogpt2.sentiment import accuracy, load_classifier

        clf = load_classifier(None if args.judge == "bundled" else args.judge)
        pos = list(clf.labels).index("positive")
        judge, acc = (lambda t: clf.predict_proba(t)[:, pos]), accuracy(clf, te_texts, te_labels)  # noqa: E731
        what = f"sentiment head {args.judge}"
    print(f"judge: {what}: accuracy {acc:.4f} on the first {len(te_texts)} NSMC test reviews "
          f"({time.perf_counter() - start:.0f} s)")
    return judge, acc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="model directory (default: the bundled kogpt2-small)")
    p.add_argument("--bow", default="공포", help="bag of words to steer to (default 공포)")
    p.add_argument("--discrim", help="a discriminator directory (kogpt2 pplm train-discrim)")
    p.add_argument("--nsmc", help="train a discriminator on this NSMC file first (when no --discrim)")
    p.add_argument("--discrim-examples", type=int, default=4000, help="examples for --nsmc training")
    p.add_argument("--judge", default="tfidf", help="what judges P(positive): `tfidf` (default; character "
                   "TF-IDF + logistic regression fitted on --judge-train), `bundled` (the shipped sentiment head) "
                   "or a `kogpt2 finetune sentiment` directory")
    p.add_argument("--judge-train", default=str(SHARED / "ratings_train.txt"), help="NSMC train file for --judge tfidf")
    p.add_argument("--judge-test", default=str(SHARED / "ratings_test.txt"), help="NSMC test file: judge accuracy")
    p.add_argument("--judge-examples", type=int, default=50000,
                   help="seeded random sample of --judge-train to fit the TF-IDF judge on (default 50000; 0 = all)")
    p.add_argument("--judge-test-examples", type=int, default=5000, help="first N test reviews for its accuracy")
    p.add_argument("--prompts", type=int, default=20, help="how many of the 20 prompts")
    p.add_argument("--samples", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-bow", action="store_true", help="skip the bag-of-words mode (tuning the discriminator)")
    p.add_argument("--bow-stepsize", type=float, help="bag-of-words step (default: kogpt2 pplm's, 0.03)")
    p.add_argument("--bow-iterations", type=int, help="bag-of-words gradient steps per token (default 3)")
    g = p.add_argument_group("discriminator strength (default: kogpt2 pplm's --discrim defaults)")
    for flag, kind in (("stepsize", float), ("num_iterations", int), ("gamma", float), ("kl_scale", float),
                       ("gm_scale", float), ("window_length", int), ("horizon_length", int)):
        g.add_argument("--" + flag.replace("_", "-"), dest=flag, type=kind)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from kogpt2 import pplm
    from kogpt2.generation import api
    from kogpt2.pplm_discrim import read_labelled, train_discriminator

    decoder, tok = api.load(args.model)
    model, prompts = decoder.model, PROMPTS[:args.prompts]
    rows: dict[str, dict] = {}

    def measure(name: str, dec) -> list[str]:
        texts, rate = run_mode(dec, tok, prompts, args.samples, args.max_new_tokens)
        rows[name] = {"texts": texts, "tok_s": rate, "bpc": bpc(model, tok, texts),
                      **{f"dist{n}": dist_n(texts, n) for n in (1, 2, 3)}}
        return texts

    measure("unsteered", decoder)
    bow = pplm.load_bow(args.bow, tok)
    bow_config = pplm.PPLMConfig(**{k: v for k, v in (("stepsize", args.bow_stepsize),
                                                      ("num_iterations", args.bow_iterations)) if v is not None})
    if not args.no_bow:
        measure(f"bow {args.bow}", pplm.PPLMDecoder(model, bow, bow_config))
    for name in [n for n in ("unsteered", f"bow {args.bow}") if n in rows]:
        rows[name]["relevance"] = topic_share(rows[name]["texts"], bow.words)

    discrim, strength = (str(pplm.discriminator_dir(args.discrim)) if args.discrim else None), None
    if discrim is None and args.nsmc:
        discrim = tempfile.mkdtemp(prefix="pplm_discrim_")
        r = train_discriminator(read_labelled(args.nsmc)[0], discrim, args.model,
                                max_examples=args.discrim_examples)
        print(f"discriminator: {r.train_examples} train / {r.valid_examples} held out, "
              f"accuracy {r.train_accuracy:.3f} / {r.valid_accuracy:.3f}")
    judge_acc = float("nan")
    if discrim:
        judge, judge_acc = make_judge(args)
        from kogpt2.pplm_discrim import Discriminator, mean_hidden_states

        head = Discriminator.load(discrim)
        own = lambda texts: head(mean_hidden_states(model, tok, texts)).softmax(-1)[:, 1]  # noqa: E731
        full = [pr for pr in prompts for _ in range(args.samples)]
        for label in ("positive", "negative"):
            strength = dict(pplm.DISCRIM_DEFAULTS)
            strength.update({k: v for k, v in vars(args).items() if v is not None and k in (
                "stepsize", "num_iterations", "gamma", "kl_scale", "gm_scale", "window_length", "horizon_length")})
            cfg = pplm.PPLMConfig(**strength)
            measure(f"discrim {label}", pplm.PPLMDecoder(model, pplm.load_discriminator(discrim, label), cfg))
        with torch.no_grad():
            for name in rows:  # every mode, the bag of words too
                texts = [a + b for a, b in zip(full, rows[name]["texts"])]
                rows[name]["p_pos"] = float(judge(texts).mean())
                rows[name]["disc"] = float(own(texts).mean())

    ref = rows["unsteered"]
    print(f"\n{len(prompts)} prompts x {args.samples} samples, {args.max_new_tokens} new tokens, "
          f"model {args.model or 'bundled'}, discriminator strength {strength if discrim else '-'}, "
          f"bow strength stepsize={bow_config.stepsize} iterations={bow_config.num_iterations}")
    print(f"{'mode':<18} {'relevance':>9} {'P(pos)':>7} {'disc':>6} {'bpc':>6} {'bpc/ref':>7} {'dist1':>6} {'dist2':>6} "
          f"{'dist3':>6} {'tok/s':>7} {'speed/ref':>9}")
    for name, r in rows.items():
        rel = f"{r['relevance']:.2f}" if "relevance" in r else "-"
        pp = f"{r['p_pos']:.3f}" if "p_pos" in r else "-"
        dp = f"{r['disc']:.3f}" if "disc" in r else "-"
        print(f"{name:<18} {rel:>9} {pp:>7} {dp:>6} {r['bpc']:>6.3f} {r['bpc'] / ref['bpc']:>7.3f} {r['dist1']:>6.3f} "
              f"{r['dist2']:>6.3f} {r['dist3']:>6.3f} {r['tok_s']:>7.1f} {r['tok_s'] / ref['tok_s']:>9.3f}")
    for name, r in rows.items():
        print(f"\n[{name}] {prompts[0]}{r['texts'][0]}")
    b = rows.get(f"bow {args.bow}", {"relevance": float("nan")})
    pos, neg = rows.get("discrim positive", {}), rows.get("discrim negative", {})
    worst = max([r["bpc"] for n, r in rows.items() if n != "unsteered"]) / ref["bpc"]
    slowest = min(r["tok_s"] for r in rows.values()) / ref["tok_s"]
    print(f"RESULT bow_relevance={b['relevance']:.3f} bow_relevance_ref={ref['relevance']:.3f} "
          f"p_pos={pos.get('p_pos', float('nan')):.3f} p_neg={neg.get('p_pos', float('nan')):.3f} "
          f"p_ref={ref.get('p_pos', float('nan')):.3f} bpc_ratio={worst:.3f} speed_ratio={slowest:.3f} "
          f"judge={args.judge if discrim else '-'} judge_acc={judge_acc:.4f}")


if __name__ == "__main__":
    main()
