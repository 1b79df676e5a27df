"""The hallucination tiers on the shared sets, next to the baselines they must beat.

Every right and every wrong answer of HaluEval-QA and Factual-Summary-Pairs is
scored as the request that carried it would be: the context and question as
the messages, the answer as the completion. Always measured: answer length,
word-overlap cosine and tier 2 (grounding). On request:

- tier 1 (token confidence) with ``--model DIR``: the answers are
  teacher-forced through that model with transformers (SmolLM2 as bundled, on
  CPU), and each answer's token log-probabilities are summarised exactly as
  the gateway summarises the ones vLLM returns;
- with ``--vllm-url`` (the bundled vLLM's ``/v1``): tier 3 (self-consistency,
  extra samples from it), and how many of the model's own answers tier 1 flags
  at its threshold, the way the gateway would see them (the teacher-forced
  answers are not the model's own, so they are less likely under it);
- tier 4 (the judge) with ``--judge-url``;
- tier 5 (your cross-encoder) with ``--cross-encoder DIR``, on every answer.

The model tiers run on the first N pairs of each set (``--*-pairs``): on two
CPU cores a teacher-forced answer costs about 0.3 s, a judged one 3 s, and
four samples about 10 s.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.scores import Scores, auroc_row, baseline, length, row
from evaluators.base import Record, Result
from evaluators.confidence import MEAN, ConfidenceEvaluator, summary
from evaluators.confidence import THRESHOLD as CONFIDENCE_THRESHOLD
from evaluators.consistency import THRESHOLD as CONSISTENCY_THRESHOLD
from evaluators.consistency import SelfConsistencyEvaluator
from evaluators.crossencoder import THRESHOLD as CROSS_ENCODER_THRESHOLD
from evaluators.crossencoder import CrossEncoderEvaluator
from evaluators.endpoint import Endpoint, untraced
from evaluators.grounding import THRESHOLD as GROUNDING_THRESHOLD
from evaluators.grounding import GroundingEvaluator
from evaluators.judge import THRESHOLD as JUDGE_THRESHOLD
from evaluators.judge import JudgeEvaluator


@dataclass(frozen=True)
class Item:
    """One labelled answer, as the request that carried it: label 1 is unsupported."""

    context: str
    question: str
    answer: str
    label: int

    @property
    def messages(self) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": f"Answer from this context:\n{self.context}"},
            {"role": "user", "content": self.question},
        ]

    def record(self, **extra: Any) -> Record:
        return Record(
            prompt=self.question,
            completion=self.answer,
            context=self.context,
            messages=self.messages,
            **extra,
        )


def load(data: Path) -> dict[str, list[Item]]:
    """Both sets, pairs kept together: right answer, then wrong one."""
    sets: dict[str, list[Item]] = {"HaluEval-QA": [], "Factual-Summary-Pairs": []}
    with (data / "hallucination" / "halueval_qa.jsonl").open() as f:
        for line in f:
            r = json.loads(line)
            for answer, label in ((r["right_answer"], 0), (r["hallucinated_answer"], 1)):
                sets["HaluEval-QA"].append(Item(r["knowledge"], r["question"], answer, label))
    with (data / "hallucination" / "factual_summary_pairs.jsonl").open() as f:
        for line in f:
            r = json.loads(line)
            ask = "Summarise the context in one sentence."
            for answer, label in ((r["correct_sent"], 0), (r["incorrect_sent"], 1)):
                sets["Factual-Summary-Pairs"].append(Item(r["article_sent"], ask, answer, label))
    return sets


def overlap_cosine(answer: str, reference: str) -> float:
    """Bag-of-words cosine between answer and reference: the lexical similarity baseline."""
    a, r = Counter(answer.lower().split()), Counter(reference.lower().split())
    dot = sum(a[w] * r[w] for w in a)
    norm = math.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in r.values()))
    return dot / norm if norm else 0.0


class TeacherForcing:
    """Each answer's token log-probabilities under a causal LM, given its messages."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(
            model_dir, local_files_only=True, dtype=torch.float32
        ).eval()
        self.name = model_dir.name

    def logprobs(self, messages: list[dict[str, str]], answer: str) -> list[float]:
        prefix = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True
        )
        if not isinstance(prefix, list):  # a BatchEncoding in newer transformers
            prefix = prefix["input_ids"]
        tokens = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
        ids = self.torch.tensor([[*prefix, *tokens]])
        with self.torch.inference_mode():  # logits for the answer's positions only
            logits = self.model(ids, logits_to_keep=len(tokens) + 1).logits[0, :-1].float()
        picked = self.torch.log_softmax(logits, dim=-1)[
            self.torch.arange(len(tokens)), self.torch.tensor(tokens)
        ]
        return [float(x) for x in picked.tolist()]


def own_answers(endpoint: Endpoint, items: Sequence[Item]) -> tuple[list[Record], float]:
    """The model's own answers with the gateway's log-probability summary, as the gateway would
    record them (default sampling, top-1 log-probabilities)."""
    started = time.perf_counter()
    records = []
    for item in items:
        reply = endpoint.client.chat.completions.create(
            model=endpoint.model,
            messages=item.messages,  # type: ignore[arg-type]
            max_tokens=128,
            logprobs=True,
            extra_headers=untraced(),
        )
        choice = reply.choices[0]
        tokens = [t.logprob for t in (choice.logprobs.content if choice.logprobs else None) or []]
        records.append(Record(completion=choice.message.content or "", logprobs=summary(tokens)))
    return records, len(records) / (time.perf_counter() - started)


Score = Callable[[list[Record]], list[Result]]


def timed(score: Score, records: list[Record]) -> tuple[Scores, float]:
    started = time.perf_counter()
    scores = np.asarray([r.score for r in score(records)])
    return scores, len(records) / (time.perf_counter() - started)


def report(title: str, score: Score, items: list[Item], what: str, threshold: float) -> None:
    """One table row: ``score`` over ``items``, with what scored them and how fast."""
    scores, per_s = timed(score, [i.record() for i in items])
    note = f"{what}, {len(items)} answers, {per_s:.2f} answers/s"
    print(row(title, [i.label for i in items], scores, note, threshold=threshold))


def measure(
    data: Path,
    header: str,
    *,
    model_dir: Path | None = None,
    confidence_pairs: int = 300,
    vllm_url: str | None = None,
    consistency_pairs: int = 50,
    judge_url: str | None = None,
    judge_pairs: int = 100,
    cross_encoder: Path | None = None,
) -> None:
    forcing = TeacherForcing(model_dir) if model_dir else None
    for name, items in load(data).items():
        labels = [i.label for i in items]
        print(f"\n### Hallucination: {name}, {len(items):,} answers (half unsupported)\n")
        print(header)
        print(baseline(labels, [i.answer for i in items]))
        similarity = np.asarray([overlap_cosine(i.answer, i.context) for i in items])
        print(auroc_row("word-overlap cosine (lower = riskier)", labels, -similarity))
        grounding, per_s = timed(GroundingEvaluator().score, [i.record() for i in items])
        print(
            row("**grounding (tier 2)**", labels, grounding, f"{per_s:,.0f} answers/s",
                threshold=GROUNDING_THRESHOLD)
        )  # fmt: skip
        if forcing is not None:
            first = items[: 2 * confidence_pairs]
            started = time.perf_counter()
            records = [
                i.record(logprobs=summary(forcing.logprobs(i.messages, i.answer))) for i in first
            ]
            forced_s = len(first) / (time.perf_counter() - started)
            confidence, _ = timed(ConfidenceEvaluator().score, records)
            n_labels = labels[: len(first)]
            note = f"{forcing.name} teacher-forced, {len(first)} answers, {forced_s:.1f}/s"
            print(row("confidence (tier 1)", n_labels, confidence, note,
                      threshold=CONFIDENCE_THRESHOLD))  # fmt: skip
            print(
                auroc_row("length only, same answers", n_labels, length([i.answer for i in first]))
            )
            # Not shipped: the two cheap tiers together (-mean log-prob at weight 0.1).
            mean = np.asarray([r.logprobs[MEAN] for r in records])
            mixed = grounding[: len(first)] - 0.1 * mean
            print(auroc_row("grounding + 0.1 * -mean log-prob (not shipped)", n_labels, mixed))
        if vllm_url:
            asked = items[: 2 * consistency_pairs : 2]
            own, per_s = own_answers(Endpoint(vllm_url), asked)
            confidence, _ = timed(ConfidenceEvaluator().score, own)
            note = f"the model's own answers to {len(own)} questions, {per_s:.1f}/s"
            print(row("confidence (tier 1), own answers", [0] * len(own), confidence, note,
                      threshold=CONFIDENCE_THRESHOLD))  # fmt: skip
            sampler = SelfConsistencyEvaluator(vllm_url, enabled=True)
            report("self-consistency (tier 3)", sampler.score, items[: 2 * consistency_pairs],
                   sampler.endpoint.model, CONSISTENCY_THRESHOLD)  # fmt: skip
        if cross_encoder:
            tier5 = CrossEncoderEvaluator(cross_encoder)
            report("cross-encoder (tier 5)", tier5.score, items, cross_encoder.name,
                   CROSS_ENCODER_THRESHOLD)  # fmt: skip
        if judge_url:
            judge = JudgeEvaluator(judge_url, enabled=True)
            report("judge (tier 4)", judge.score, items[: 2 * judge_pairs], judge.model,
                   JUDGE_THRESHOLD)  # fmt: skip
