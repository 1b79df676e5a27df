"""Hallucination, tier 2: is the answer supported by the context the request itself supplied?

Lexical support, computed on CPU in microseconds. The reference is the
request's context (system, tool and earlier messages, or a document-length
question) plus its question. The answer's risk is the mean of two shares:
content words whose stem the reference lacks, and word pairs (bigrams) the
reference never has next to each other. The evidence lists the unsupported
stretches of the answer with their character offsets, and unsupported numbers
and names.

It catches invented facts: words, numbers and names that are not in the
source. It cannot see an answer that recombines the source's own words into a
false statement, which needs a model that understands entailment (the judge
tier). Measured per set, honestly, in ``bench/eval_quality.py``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

from evaluators.base import Input, Record, Result

THRESHOLD = 0.2
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|\w+", re.UNICODE)
_NAME = re.compile(r"\b[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*")
_STOPWORDS = """a an the of in on at to for from by with and or but is are was were be been being
it its this that these those as which who whom what when where why how do does did has have had
not no yes i you he she we they them his her their our your my me us"""
STOPWORDS = frozenset(_STOPWORDS.split())
_SUFFIXES = ("ing", "ed", "es", "s")


def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > 4 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _normal(token: str) -> str:
    """Lower case; numbers without thousands separators."""
    return token.replace(",", "") if token[0].isdigit() else token.lower()


def words(text: str) -> list[tuple[str, int, int]]:
    """The normalised words and numbers of ``text``, with their character offsets."""
    return [(_normal(m.group()), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def support(answer: str, reference: str) -> tuple[float, list[dict[str, Any]]]:
    """The answer's risk in [0, 1] and the evidence: unsupported spans, numbers and names."""
    spans = words(answer)
    ref = [t for t, _, _ in words(reference)]
    # Pairs match in either order: answers turn questions round ("is Acme" → "Acme is").
    ref_pairs = {frozenset(p) for p in itertools.pairwise(ref)}
    ref_stems, ref_numbers = {stem(t) for t in ref}, {t for t in ref if t[0].isdigit()}
    content = [t for t, _, _ in spans if t not in STOPWORDS]
    new_words = sum(stem(t) not in ref_stems for t in content) / max(1, len(content))
    pairs = list(itertools.pairwise(spans))
    unsupported = [(a, b) for a, b in pairs if frozenset((a[0], b[0])) not in ref_pairs]
    new_pairs = len(unsupported) / len(pairs) if pairs else 0.0
    evidence: list[dict[str, Any]] = []
    for a, b in unsupported:  # merge overlapping unsupported pairs into stretches
        if evidence and evidence[-1]["end"] >= a[1]:
            evidence[-1]["end"] = b[2]
        else:
            evidence.append({"kind": "unsupported", "start": a[1], "end": b[2]})
    for item in evidence:
        item["text"] = answer[item["start"] : item["end"]]
    for token, start, end in spans:
        if token[0].isdigit() and token not in ref_numbers:
            evidence.append({"kind": "number", "start": start, "end": end, "text": token})
    lowered = reference.lower()
    for m in _NAME.finditer(answer):
        if m.start() > 0 and m.group().lower() not in lowered:
            evidence.append({"kind": "name", "start": m.start(), "end": m.end(), "text": m.group()})
    return (new_words + new_pairs) / 2, evidence


class GroundingEvaluator:
    name = "hallucination-grounding"
    version = "1"
    needs = frozenset({Input.COMPLETION, Input.CONTEXT})
    cheap = True
    budget_per_minute: int | None = None

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold

    def unavailable(self) -> str | None:
        return None

    def score(self, records: Sequence[Record]) -> list[Result]:
        results = []
        for r in records:
            reference = f"{r.context or ''}\n{r.prompt or ''}"
            risk, evidence = support(r.completion or "", reference)
            flagged = risk >= self.threshold
            unsupported = [e["text"] for e in evidence if e["kind"] == "unsupported"][:3]
            results.append(
                Result(
                    score=risk,
                    flagged=flagged,
                    label="unsupported" if flagged else "supported",
                    explanation=f"not in the context: {'; '.join(unsupported)}"
                    if flagged and unsupported
                    else None,
                    evidence=evidence,
                )
            )
        return results
