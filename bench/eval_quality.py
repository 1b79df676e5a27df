"""How well the evaluators separate good answers from bad, on data they were not trained on.

    python -m bench.eval_quality [--data ../shared/data] [--model DIR]
        [--vllm-url http://127.0.0.1:8001/v1] [--judge-url http://127.0.0.1:8001/v1]
        [--cross-encoder DIR]

Toxicity, three sets, each with the length-only baseline beside it:
- Davidson (explicit abuse): a stratified 20 % held out; the implicit model is
  trained on the other 80 % (plus the ToxiGen seeds and ordinary text).
  alt-profanity-check's authors trained on Davidson too, so its figure there
  is not held out (shown, marked).
- ToxiGen seeds (implicit hate): 5-fold cross-validation (the implicit model
  trained on all of Davidson, the other folds and ordinary text), and
  leave-one-target-group-out (13 folds: hate about a group never seen).
- Ordinary factual text (HaluEval, Factual-Summary-Pairs sentences) not used
  in training: the false-positive rate at the shipped threshold.
Hallucination on both shared sets (``bench/hallucination.py``): tier 2 always,
tiers 1, 3, 4 and 5 when given a model or an endpoint. Then texts per second on
one core for each toxicity model. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from bench import hallucination
from bench.scores import Scores, baseline
from bench.scores import row as any_row
from evaluators.toxicity import THRESHOLD, LinearModel, explicit_probability
from evaluators.train_toxicity import (
    DATA_DIR,
    ORDINARY_TRAIN,
    Labelled,
    davidson,
    ordinary,
    toxigen,
    train,
    training_set,
)

row = functools.partial(any_row, threshold=THRESHOLD)


def subset(data: Labelled, index: Sequence[int]) -> Labelled:
    return Labelled(
        [data.texts[i] for i in index],
        [data.labels[i] for i in index],
        [data.groups[i] for i in index],
    )


def combined(implicit: Scores, explicit: Scores) -> Scores:
    return np.maximum(implicit, explicit)


def texts_per_second(score: Callable[[list[str]], object], texts: list[str]) -> float:
    score(texts[:100])
    started = time.perf_counter()
    score(texts)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument(
        "--model",
        type=Path,
        help="Also measure token confidence, teacher-forcing answers through this model dir.",
    )
    parser.add_argument("--confidence-pairs", type=int, default=300)
    parser.add_argument(
        "--vllm-url",
        help="The bundled vLLM's /v1 URL: measure self-consistency, and token confidence on "
        "the model's own answers.",
    )
    parser.add_argument("--consistency-pairs", type=int, default=50)
    parser.add_argument(
        "--judge-url", help="Also measure the LLM judge at this OpenAI-compatible /v1 URL."
    )
    parser.add_argument(
        "--judge-pairs", type=int, default=100, help="Pairs of each set the judge scores."
    )
    parser.add_argument(
        "--cross-encoder", type=Path, help="Also measure this local cross-encoder model dir."
    )
    args = parser.parse_args()
    tweets, seeds, plain = davidson(args.data), toxigen(args.data), ordinary(args.data)
    plain_train, plain_test = plain[:ORDINARY_TRAIN], plain[ORDINARY_TRAIN:][:5000]
    header = (
        "| set / model | AUROC | precision | recall | F1 | ordinary text | |\n"
        "|---|---|---|---|---|---|---|"
    )

    # Davidson: 80/20.
    train_i, test_i = train_test_split(
        range(len(tweets.texts)), test_size=0.2, random_state=0, stratify=tweets.labels
    )
    d_train, d_test = subset(tweets, train_i), subset(tweets, test_i)
    model = train(*training_set(d_train, seeds, plain_train))
    imp, exp = model.probability(d_test.texts), explicit_probability(d_test.texts)
    print(f"### Toxicity: Davidson, {len(d_test.texts):,} held-out tweets (explicit abuse)\n")
    print(header)
    print(baseline(d_test.labels, d_test.texts))
    print(row("implicit (ours)", d_test.labels, imp))
    print(
        row(
            "explicit (alt-profanity-check)",
            d_test.labels,
            exp,
            "trained on Davidson: not held out",
        )
    )
    print(row("**combined (shipped)**", d_test.labels, combined(imp, exp)))

    # ToxiGen: 5-fold CV and leave-one-group-out.
    print(f"\n### Toxicity: ToxiGen seeds, {len(seeds.texts)} sentences (implicit hate)\n")
    print(header)
    exp = explicit_probability(seeds.texts)
    print(baseline(seeds.labels, seeds.texts))
    print(row("explicit (alt-profanity-check)", seeds.labels, exp))
    for name, folds in (
        (
            "5-fold",
            list(StratifiedKFold(5, shuffle=True, random_state=0).split(seeds.texts, seeds.labels)),
        ),
        (
            "unseen target group",
            [
                (
                    [i for i, g in enumerate(seeds.groups) if g != group],
                    [i for i, g in enumerate(seeds.groups) if g == group],
                )
                for group in sorted(set(seeds.groups))
            ],
        ),
    ):
        imp = np.zeros(len(seeds.texts))
        for train_idx, test_idx in folds:
            fold_model = train(*training_set(tweets, subset(seeds, train_idx), plain_train))
            imp[test_idx] = fold_model.probability([seeds.texts[i] for i in test_idx])
        print(row(f"implicit (ours), {name}", seeds.labels, imp))
        print(row(f"**combined (shipped)**, {name}", seeds.labels, combined(imp, exp)))

    # Ordinary text never trained on.
    shipped = LinearModel.load(Path(__file__).parents[1] / "evaluators" / "data" / "toxicity-1.npz")
    print(
        f"\n### Toxicity: {len(plain_test):,} sentences of ordinary factual text (all non-toxic)\n"
    )
    print(header)
    print(row("implicit (ours)", [0] * len(plain_test), model.probability(plain_test)))
    print(
        row(
            "explicit (alt-profanity-check)",
            [0] * len(plain_test),
            explicit_probability(plain_test),
        )
    )
    both = combined(model.probability(plain_test), explicit_probability(plain_test))
    print(row("**combined (shipped)**", [0] * len(plain_test), both))

    hallucination.measure(
        args.data,
        header,
        model_dir=args.model,
        confidence_pairs=args.confidence_pairs,
        vllm_url=args.vllm_url,
        consistency_pairs=args.consistency_pairs,
        judge_url=args.judge_url,
        judge_pairs=args.judge_pairs,
        cross_encoder=args.cross_encoder,
    )

    sample = tweets.texts[:5000]
    print(f"\n### Speed, one core (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})\n")
    print("| model | texts/s |\n|---|---|")
    print(f"| explicit | {texts_per_second(explicit_probability, sample):,.0f} |")
    print(f"| implicit | {texts_per_second(shipped.probability, sample):,.0f} |")
    both_s = texts_per_second(
        lambda t: combined(shipped.probability(t), explicit_probability(t)), sample
    )
    print(f"| combined | {both_s:,.0f} |")


if __name__ == "__main__":
    main()
