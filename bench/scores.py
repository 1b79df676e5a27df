"""Table rows shared by the quality benchmarks: AUROC, and precision/recall/F1 at a threshold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

Scores = NDArray[np.float64]


def length(texts: Sequence[str]) -> Scores:
    return np.asarray([len(t) for t in texts], dtype=np.float64)


def baseline(labels: Sequence[int], texts: Sequence[str]) -> str:
    """Answer length as the score: only its AUROC means anything (no threshold)."""
    auc = roc_auc_score(np.asarray(labels), length(texts))
    everything = f1_score(np.asarray(labels), np.ones(len(labels)))
    return f"| length only | {auc:.3f} | | | | | F1 of flagging everything: {everything:.3f} |"


def auroc_row(name: str, labels: Sequence[int], scores: Scores) -> str:
    """A score with no shipped threshold: its AUROC alone."""
    return f"| {name} | {roc_auc_score(np.asarray(labels), scores):.3f} | | | | | |"


def row(
    name: str, labels: Sequence[int], scores: Scores, note: str = "", *, threshold: float
) -> str:
    y = np.asarray(labels)
    flagged = scores >= threshold
    if len(set(y.tolist())) < 2:  # one class only: the flagged share is the figure
        return f"| {name} | | | | | {flagged.mean():.2%} flagged | {note} |"
    return (
        f"| {name} | {roc_auc_score(y, scores):.3f} | {precision_score(y, flagged):.3f} | "
        f"{recall_score(y, flagged):.3f} | {f1_score(y, flagged):.3f} | | {note} |"
    )
