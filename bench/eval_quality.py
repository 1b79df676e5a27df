"""How well the evaluators separate good answers from bad, on data they were not trained on.

    python -m bench.eval_quality [--data ../shared/data] [--judge-url http://127.0.0.1:8001/v1]

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
Hallucination on both shared sets, every right and every wrong answer against
its own context, beside answer length and word-overlap cosine: tier 2
(grounding) and, with ``--judge-url``, tier 4 (the LLM judge, on
the first ``--judge-pairs`` pairs of each set). Then texts
per second on one core for each model. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from evaluators.base import Record
from evaluators.grounding import THRESHOLD as GROUNDING_THRESHOLD
from evaluators.grounding import GroundingEvaluator
from evaluators.judge import THRESHOLD as JUDGE_THRESHOLD
from evaluators.judge import JudgeEvaluator
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

Scores = NDArray[np.float64]


def baseline(labels: Sequence[int], texts: Sequence[str]) -> str:
    """Answer length as the score: only its AUROC means anything (no threshold)."""
    auc = roc_auc_score(np.asarray(labels), length(texts))
    everything = f1_score(np.asarray(labels), np.ones(len(labels)))
    return f"| length only | {auc:.3f} | | | | | F1 of flagging everything: {everything:.3f} |"


def row(
    name: str, labels: Sequence[int], scores: Scores, note: str = "", threshold: float = THRESHOLD
) -> str:
    y = np.asarray(labels)
    if len(set(y.tolist())) < 2:  # one class only: the flagged share is the figure
        return f"| {name} | | | | | {(scores >= threshold).mean():.2%} flagged | {note} |"
    flagged = scores >= threshold
    return (
        f"| {name} | {roc_auc_score(y, scores):.3f} | {precision_score(y, flagged):.3f} | "
        f"{recall_score(y, flagged):.3f} | {f1_score(y, flagged):.3f} | | {note} |"
    )


def length(texts: Sequence[str]) -> Scores:
    return np.asarray([len(t) for t in texts], dtype=np.float64)


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
        "--judge-url", help="Also measure the LLM judge at this OpenAI-compatible /v1 URL."
    )
    parser.add_argument(
        "--judge-pairs", type=int, default=100, help="Pairs of each set the judge scores."
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

    hallucination(args.data, header, args.judge_url, args.judge_pairs)

    sample = tweets.texts[:5000]
    print(f"\n### Speed, one core (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})\n")
    print("| model | texts/s |\n|---|---|")
    print(f"| explicit | {texts_per_second(explicit_probability, sample):,.0f} |")
    print(f"| implicit | {texts_per_second(shipped.probability, sample):,.0f} |")
    both_s = texts_per_second(
        lambda t: combined(shipped.probability(t), explicit_probability(t)), sample
    )
    print(f"| combined | {both_s:,.0f} |")


def overlap_cosine(answer: str, reference: str) -> float:
    """Bag-of-words cosine between answer and reference: the lexical similarity baseline."""
    a, r = Counter(answer.lower().split()), Counter(reference.lower().split())
    dot = sum(a[w] * r[w] for w in a)
    norm = math.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in r.values()))
    return dot / norm if norm else 0.0


def hallucination(data: Path, header: str, judge_url: str | None, judge_pairs: int) -> None:
    """Grounding on each shared set: every good and bad answer against its own context."""
    sets: dict[str, list[tuple[str, str, int]]] = {"HaluEval-QA": [], "Factual-Summary-Pairs": []}
    with (data / "hallucination" / "halueval_qa.jsonl").open() as f:
        for line in f:
            r = json.loads(line)
            reference = f"{r['knowledge']}\n{r['question']}"
            sets["HaluEval-QA"] += [
                (reference, r["right_answer"], 0),
                (reference, r["hallucinated_answer"], 1),
            ]
    with (data / "hallucination" / "factual_summary_pairs.jsonl").open() as f:
        for line in f:
            r = json.loads(line)
            sets["Factual-Summary-Pairs"] += [
                (r["article_sent"], r["correct_sent"], 0),
                (r["article_sent"], r["incorrect_sent"], 1),
            ]
    grounding = GroundingEvaluator()
    for name, items in sets.items():
        labels = [y for _, _, y in items]
        answers = [a for _, a, _ in items]
        records = [Record(completion=a, context=ref) for ref, a, _ in items]
        started = time.perf_counter()
        scores = np.asarray([r.score for r in grounding.score(records)])
        per_s = len(records) / (time.perf_counter() - started)
        similarity = np.asarray([overlap_cosine(a, ref) for ref, a, _ in items])
        print(f"\n### Hallucination: {name}, {len(items):,} answers (half unsupported)\n")
        print(header)
        print(baseline(labels, answers))
        auc = roc_auc_score(np.asarray(labels), -similarity)
        print(f"| word-overlap cosine (lower = riskier) | {auc:.3f} | | | | | |")
        print(
            row(
                "**grounding (tier 2)**",
                labels,
                scores,
                f"{per_s:,.0f} answers/s",
                threshold=GROUNDING_THRESHOLD,
            )
        )
        if judge_url:
            judge = JudgeEvaluator(judge_url, enabled=True)
            n = min(len(records), 2 * judge_pairs)  # the first pairs: right, wrong, ...
            started = time.perf_counter()
            verdicts = np.asarray([r.score for r in judge.score(records[:n])])
            per_s = n / (time.perf_counter() - started)
            note = f"{judge.model}, {n} answers, {per_s:.1f} answers/s"
            print(row("judge (tier 4)", labels[:n], verdicts, note, threshold=JUDGE_THRESHOLD))


if __name__ == "__main__":
    main()
