"""The operator's cross-encoder: label names decide what "supported" is; loaded from a directory.

The tests that load a model need torch and transformers (the CPU environment:
``pytest -m torch``); they build a tiny BERT whose classifier is fixed, so the
expected probabilities are known."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from evaluators.base import Record
from evaluators.crossencoder import CrossEncoderEvaluator, supported_index
from evaluators.registry import configured, select, shipped
from inferwatch.settings import EvaluatorSettings


def test_the_supported_output_is_found_by_label_name() -> None:
    nli = {"id2label": {"0": "CONTRADICTION", "1": "NEUTRAL", "2": "ENTAILMENT"}}
    assert supported_index(nli) == 2
    assert supported_index({"id2label": {"0": "hallucinated", "1": "consistent"}}) == 1
    assert supported_index({"num_labels": 1, "id2label": {"0": "LABEL_0"}}) is None
    with pytest.raises(ValueError, match="none of the model's labels \\(positive, negative\\)"):
        supported_index({"id2label": {"0": "positive", "1": "negative"}})


def test_it_runs_only_with_a_usable_model_directory(tmp_path: Path) -> None:
    evaluators = shipped(EvaluatorSettings(), "http://127.0.0.1:8001")
    with pytest.raises(ValueError, match="crossencoder cannot run here: no model"):
        select(["hallucination-crossencoder"], evaluators)
    problem = CrossEncoderEvaluator(tmp_path / "nowhere").unavailable()
    assert problem is not None
    assert "no model at" in problem or "needs torch and transformers" in problem
    # Configured but unusable: the worker refuses to start rather than run without it.
    broken = EvaluatorSettings(cross_encoder_path=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="crossencoder is configured but cannot run here"):
        configured(broken, "http://127.0.0.1:8001")
    # Unless the enabled list leaves it out anyway.
    only = EvaluatorSettings(cross_encoder_path=tmp_path / "nowhere", enabled=["toxicity"])
    assert [e.name for e in configured(only, "http://127.0.0.1:8001")] == ["toxicity"]


def tiny_model(directory: Path, labels: dict[int, str], bias: list[float]) -> Path:
    """A one-layer BERT whose classifier ignores its input: its output is ``bias``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    directory.mkdir()
    words = [
        "the",
        "capital",
        "of",
        "france",
        "is",
        "paris",
        "lyon",
        "a",
        "an",
        "answer",
        "context",
        "question",
    ]
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(directory)
    config = BertConfig(
        vocab_size=5 + len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
        num_labels=len(labels),
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor(bias))
    model.save_pretrained(directory)
    return directory


@pytest.mark.torch
def test_an_nli_model_scores_one_minus_p_entailment(tmp_path: Path) -> None:
    path = tiny_model(
        tmp_path / "nli", {0: "contradiction", 1: "neutral", 2: "entailment"}, [0, 0, 2]
    )
    evaluator = CrossEncoderEvaluator(path)
    assert evaluator.unavailable() is None
    long_context = " ".join(["the capital of france is paris"] * 600)  # far past 512 tokens
    records = [
        Record(prompt="the capital?", completion="paris", context="the capital of france is paris"),
        Record(prompt="the capital?", completion="lyon", context=long_context),
    ]
    results = evaluator.score(records)
    expected = 2 / (math.exp(2) + 2)  # 1 - e^2 / (e^2 + e^0 + e^0)
    assert [r.score for r in results] == pytest.approx([expected, expected], abs=1e-5)
    assert [r.flagged for r in results] == [False, False]
    assert results[0].evidence == [
        {"kind": "crossencoder", "p_supported": pytest.approx(1 - expected, abs=1e-5)}
    ]
    assert results[0].explanation == f"nli: P(supported) {1 - expected:.2f}"


@pytest.mark.torch
def test_a_one_logit_model_is_read_as_the_logit_of_supported(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "hhem", {0: "LABEL_0"}, [-1.0])
    (result,) = CrossEncoderEvaluator(path).score(
        [Record(completion="lyon", context="the capital of france is paris")]
    )
    assert result.score == pytest.approx(1 - 1 / (1 + math.exp(1)), abs=1e-5)
    assert result.flagged and result.label == "unsupported"


@pytest.mark.torch
def test_a_model_without_a_supported_label_is_refused_before_loading(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "sentiment", {0: "positive", 1: "negative"}, [0, 0])
    problem = CrossEncoderEvaluator(path).unavailable()
    assert problem is not None
    assert problem.startswith(f"{path / 'config.json'}: none of the model's labels")
