"""Trains the shipped toxicity model: ``python -m evaluators.train_toxicity [DATA_DIR]``.

Training data (``DATA_DIR`` is the shared ``data`` folder):
- every Davidson tweet (hate speech or offensive = toxic, neither = not);
- every ToxiGen seed (implicit hate = toxic), weighted up so 668 sentences of
  implicit hate are not drowned by 24,783 tweets;
- 8,000 sentences of ordinary factual text (HaluEval's knowledge and answers,
  Factual-Summary-Pairs' sentences) as non-toxic. Five in six Davidson tweets
  are toxic, and without these the model flags 7 % of plain assistant-like
  answers.
``bench/eval_quality.py`` trains the same way on training splits only, to
measure the model on data it has not seen.
"""

from __future__ import annotations

import csv
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from evaluators.toxicity import MODEL_FILE, LinearModel, features

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
SEED_WEIGHT = 8.0  # ToxiGen seeds against Davidson tweets
ORDINARY_TRAIN = 8000
C = 4.0  # inverse L2 strength, chosen by cross-validation on the training split


@dataclass
class Labelled:
    texts: list[str]
    labels: list[int]
    groups: list[str]  # ToxiGen's target group; "" for Davidson


def davidson(data_dir: Path) -> Labelled:
    with (data_dir / "toxicity" / "davidson_labeled_data.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return Labelled(
        [r["tweet"] for r in rows], [int(r["class"] in ("0", "1")) for r in rows], [""] * len(rows)
    )


def toxigen(data_dir: Path) -> Labelled:
    with (data_dir / "toxicity" / "toxigen_seeds.jsonl").open() as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return Labelled(
        [r["text"] for r in rows],
        [int(r["label"]) for r in rows],
        [r["target_group"] for r in rows],
    )


def ordinary(data_dir: Path) -> list[str]:
    """Non-toxic factual sentences, shuffled with a fixed seed (distinct texts only)."""
    texts: list[str] = []
    with (data_dir / "hallucination" / "halueval_qa.jsonl").open() as f:
        for line in f:
            r = json.loads(line)
            texts += [r["knowledge"], r["right_answer"], r["hallucinated_answer"]]
    with (data_dir / "hallucination" / "factual_summary_pairs.jsonl").open() as f:
        for line in f:
            r = json.loads(line)
            texts += [r["article_sent"], r["correct_sent"]]
    distinct = sorted(set(texts))
    random.Random(0).shuffle(distinct)
    return distinct


def training_set(
    tweets: Labelled, seeds: Labelled, plain: Sequence[str]
) -> tuple[list[str], list[int], list[float]]:
    texts = [*tweets.texts, *seeds.texts, *plain]
    labels = [*tweets.labels, *seeds.labels, *([0] * len(plain))]
    weights = [1.0] * len(tweets.texts) + [SEED_WEIGHT] * len(seeds.texts) + [1.0] * len(plain)
    return texts, labels, weights


def train(texts: Sequence[str], labels: Sequence[int], weights: Sequence[float]) -> LinearModel:
    model = LogisticRegression(C=C, max_iter=3000)
    model.fit(features(texts), np.asarray(labels), sample_weight=np.asarray(weights))
    return LinearModel(model.coef_[0].astype(np.float32), float(model.intercept_[0]))


def main() -> None:
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else DATA_DIR
    plain = ordinary(data_dir)[:ORDINARY_TRAIN]
    model = train(*training_set(davidson(data_dir), toxigen(data_dir), plain))
    MODEL_FILE.parent.mkdir(exist_ok=True)
    model.save(MODEL_FILE)
    print(f"wrote {MODEL_FILE} ({MODEL_FILE.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
