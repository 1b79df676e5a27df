"""Grounding: answers made of the context pass, invented numbers, names and words are shown."""

from __future__ import annotations

from evaluators.base import Record
from evaluators.grounding import GroundingEvaluator, support

CONTEXT = (
    "Acme's annual report: revenue grew 8% to $3.9 billion in 2023. "
    "The chief executive is John Doe. The company employs 12,400 people in Ohio."
)


def test_an_answer_taken_from_the_context_is_supported() -> None:
    (result,) = GroundingEvaluator().score(
        [Record(completion="Revenue grew 8% to $3.9 billion in 2023.", context=CONTEXT)]
    )
    assert not result.flagged and result.label == "supported"
    assert result.score < 0.1
    assert result.explanation is None


def test_invented_figures_and_names_are_flagged_with_where_they_are() -> None:
    answer = "Revenue grew 15% to $4.2 billion, said CEO Jane Smith."
    (result,) = GroundingEvaluator().score([Record(completion=answer, context=CONTEXT)])
    assert result.flagged and result.label == "unsupported"
    kinds = {(e["kind"], e["text"]) for e in result.evidence}
    assert {("number", "15"), ("number", "4.2"), ("name", "CEO Jane Smith")} <= kinds
    for e in result.evidence:
        assert answer[e["start"] : e["end"]] == e["text"]
    assert result.explanation is not None and result.explanation.startswith("not in the context:")


def test_numbers_match_with_or_without_thousands_separators() -> None:
    risk, evidence = support("The company employs 12400 people in Ohio.", CONTEXT)
    assert not [e for e in evidence if e["kind"] == "number"]
    assert risk < 0.2


def test_the_question_counts_as_reference_too() -> None:
    record = Record(
        prompt="Which city is Acme based in, Ohio or Texas?",
        completion="Acme is based in Ohio.",
        context=CONTEXT,
    )
    (result,) = GroundingEvaluator().score([record])
    assert not result.flagged
