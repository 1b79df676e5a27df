"""Self-consistency against a local OpenAI-compatible endpoint: samples that agree, and not."""

from __future__ import annotations

import pytest

from evaluators.base import Record
from evaluators.consistency import (
    SelfConsistencyEvaluator,
    disagreement,
    request_messages,
    sample_budget,
)
from evaluators.registry import select, shipped
from inferwatch.settings import EvaluatorSettings
from tests.evaluators.fake_openai import fake_sampler
from tests.servers import ServerThread

KNOWN = "What is the capital of France?"
UNKNOWN = "Who won the 1911 Tromsø chess open?"
SAMPLES = {
    KNOWN: [
        "The capital of France is Paris.",
        "Paris is the capital of France.",
        "Paris.",
        "It is Paris, the capital of France.",
    ],
    UNKNOWN: [
        "It was won by Olaf Berg.",
        "Magnus Lie took first place.",
        "The 1911 open went to Knut Hamsun.",
        "Nobody: it was cancelled.",
    ],
}


def test_an_answer_the_samples_repeat_passes_and_one_they_do_not_is_flagged() -> None:
    app, seen = fake_sampler(SAMPLES)
    with ServerThread(app) as url:
        evaluator = SelfConsistencyEvaluator(f"{url}/v1", enabled=True, samples=3)
        known, unknown, again = evaluator.score(
            [
                Record(prompt=KNOWN, completion="Paris is the capital of France."),
                Record(prompt=UNKNOWN, completion="Olaf Berg won the 1911 Tromsø open."),
                Record(prompt=UNKNOWN, completion="Anders Nilsen won it."),
            ]
        )
    assert (known.flagged, known.label) == (False, "consistent")
    assert (unknown.flagged, unknown.label) == (True, "inconsistent")
    assert again.flagged and known.score < 0.35 and unknown.score > 0.8
    # The third asked what the second asked: one call served both (the two run at once).
    assert len(seen) == 2
    (body,) = [b for b in seen if b["messages"][-1]["content"] == KNOWN]
    assert body["model"] == "served-model" and body["n"] == 3 and body["temperature"] == 1.0
    assert body["messages"] == [{"role": "user", "content": KNOWN}]
    assert body["max_tokens"] == sample_budget("Paris is the capital of France.", 256) == 64
    assert body["traceparent"].endswith("-00")  # vLLM records no span for it
    unrepeated = [e["text"] for e in again.evidence if e["kind"] == "unrepeated"]
    assert unrepeated == ["Anders", "Nilsen"]  # "won" is in a sample
    assert again.evidence[-1] == {"kind": "samples", "texts": SAMPLES[UNKNOWN][:3]}
    assert again.explanation == "3 samples of served-model; in no sample: Anders, Nilsen"


def test_the_request_is_asked_again_as_it_was_sent() -> None:
    sent = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": KNOWN},
    ]
    assert request_messages(Record(prompt=KNOWN, messages=sent)) == sent
    assert request_messages(Record(prompt=KNOWN, context="Doc.")) == [
        {"role": "system", "content": "Doc."},
        {"role": "user", "content": KNOWN},
    ]
    assert sample_budget("word " * 100, 256) == 208 and sample_budget("word " * 200, 256) == 256
    with pytest.raises(ValueError, match="no samples"):
        disagreement("Paris.", [])


def test_self_consistency_is_off_unless_turned_on() -> None:
    evaluators = shipped(EvaluatorSettings(), "http://127.0.0.1:8001")
    with pytest.raises(ValueError, match="hallucination-consistency cannot run here: off"):
        select(["hallucination-consistency"], evaluators)
    on = shipped(
        EvaluatorSettings(consistency=True, consistency_samples=6), "http://127.0.0.1:8001"
    )
    (chosen,) = select(["hallucination-consistency"], on)
    assert isinstance(chosen, SelfConsistencyEvaluator)
    assert chosen.base_url == "http://127.0.0.1:8001/v1" and chosen.samples == 6
    assert chosen.budget_per_minute == 10 and not chosen.cheap
