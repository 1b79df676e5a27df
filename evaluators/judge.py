"""Hallucination, tier 4: an LLM judge through any OpenAI-compatible endpoint.

One fixed prompt asks whether every claim of the answer is supported by the
context, and the reply is constrained to ``yes`` or ``no`` (vLLM's
``structured_outputs`` choice; other servers ignore it and the reply is read
as text). The score is the probability the judge gives ``no``, read from the
first token's log-probabilities (yes and no summed over case and spacing
variants). It defaults to the bundled vLLM, called untraced (``endpoint``). It is
off by default: on CPU each verdict costs a prefill of the whole context.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from evaluators.base import Input, Record, Result
from evaluators.endpoint import Endpoint, concurrently, untraced

THRESHOLD = 0.5
MAX_CONTEXT_CHARS = 6000
SYSTEM = "You check answers against a context. You reply with one word: yes or no."
TEMPLATE = """Context:
{context}

Question:
{question}

Answer:
{answer}

Is every claim in the answer supported by the context? Reply yes or no."""


def verdict_probability(choice: Any) -> float | None:
    """P(no) from the first generated token's top log-probabilities, or None if absent."""
    content = getattr(getattr(choice, "logprobs", None), "content", None) or []
    if not content:
        return None
    yes = no = 0.0
    for top in content[0].top_logprobs or []:
        word = top.token.strip().lower()
        if word == "yes":
            yes += math.exp(top.logprob)
        elif word == "no":
            no += math.exp(top.logprob)
    return no / (yes + no) if yes + no > 0 else None


class JudgeEvaluator:
    name = "hallucination-judge"
    version = "1"
    needs = frozenset({Input.COMPLETION, Input.CONTEXT})
    cheap = False
    budget_per_minute: int | None = 30

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        enabled: bool = False,
        timeout_s: float = 60.0,
        threshold: float = THRESHOLD,
    ) -> None:
        self.base_url, self.enabled, self.threshold = base_url, enabled, threshold
        self.endpoint = Endpoint(base_url, model=model, timeout_s=timeout_s)

    def unavailable(self) -> str | None:
        if not self.enabled:
            return "off (INFERWATCH_EVALUATORS__JUDGE=true turns it on)"
        return None

    @property
    def model(self) -> str:
        return self.endpoint.model

    def score(self, records: Sequence[Record]) -> list[Result]:
        return concurrently(self._judge, records)

    def _judge(self, record: Record) -> Result:
        prompt = TEMPLATE.format(
            context=(record.context or "")[:MAX_CONTEXT_CHARS],
            question=record.prompt or "",
            answer=record.completion or "",
        )
        reply = self.endpoint.client.chat.completions.create(
            model=self.model,
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
            max_tokens=1,
            temperature=0.0,
            logprobs=True,
            top_logprobs=10,
            extra_body={"structured_outputs": {"choice": ["yes", "no"]}},
            extra_headers=untraced(),  # judging never shows up as traffic
        )
        choice = reply.choices[0]
        said = (choice.message.content or "").strip().lower()
        p_no = verdict_probability(choice)
        score = p_no if p_no is not None else (1.0 if said.startswith("no") else 0.0)
        flagged = score >= self.threshold
        return Result(
            score=score,
            flagged=flagged,
            label="unsupported" if flagged else "supported",
            explanation=f"the judge ({self.model}) answered {said or 'nothing'}",
            evidence=[{"judge": self.model, "reply": said, "p_no": p_no}],
        )
