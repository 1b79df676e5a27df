"""Hallucination, tier 5: a cross-encoder the operator supplies, from a local directory.

Any Hugging Face sequence-classification model that reads (premise,
hypothesis) pairs: an NLI model, or a factual-consistency model such as
Vectara's HHEM exported without custom code. InferWatch ships none (no such
model can be installed from the package registries) and downloads nothing:
``INFERWATCH_EVALUATORS__CROSS_ENCODER_PATH`` names the directory, and it
needs torch and transformers (the ``cpu`` or ``gpu`` extra).

The premise is the request's context and question, the hypothesis is the
answer. The risk is one minus the probability of the label that means
"supported", found by name in the model's ``id2label`` (entailment,
consistent, supported, ...); a model with one output is read as the logit of
"supported", as HHEM's is.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluators.base import Input, Record, Result

THRESHOLD = 0.5
SUPPORTED_LABELS = ("entailment", "entailed", "consistent", "supported", "factual", "true")
BATCH = 16
MAX_TOKENS = 512


def supported_index(config: dict[str, Any]) -> int | None:
    """Which output means "supported": by label name; None for a one-logit model.

    Raises ``ValueError`` when no label name says so."""
    labels = {int(k): str(v).lower() for k, v in (config.get("id2label") or {}).items()}
    if config.get("num_labels", len(labels)) == 1 or len(labels) == 1:
        return None
    for index, label in sorted(labels.items()):
        if label in SUPPORTED_LABELS:
            return index
    raise ValueError(
        f"none of the model's labels ({', '.join(labels.values())}) means supported; "
        f"expected one of: {', '.join(SUPPORTED_LABELS)}"
    )


class CrossEncoderEvaluator:
    name = "hallucination-crossencoder"
    version = "1"
    needs = frozenset({Input.COMPLETION, Input.CONTEXT})
    cheap = False
    budget_per_minute: int | None = 120

    def __init__(self, path: Path | None, *, threshold: float = THRESHOLD) -> None:
        self.path, self.threshold = path, threshold
        self._loaded: tuple[Any, Any, int | None] | None = None
        self._lock = threading.Lock()

    def unavailable(self) -> str | None:
        if self.path is None:
            return "no model (INFERWATCH_EVALUATORS__CROSS_ENCODER_PATH=DIR turns it on)"
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError:
            return "needs torch and transformers (the cpu or gpu extra)"
        config = self.path / "config.json"
        if not config.is_file():
            return f"no model at {self.path} (no config.json)"
        try:
            supported_index(json.loads(config.read_text()))
        except (ValueError, json.JSONDecodeError) as exc:
            return f"{config}: {exc}"
        return None

    def load(self) -> tuple[Any, Any, int | None]:
        """The tokenizer, model and "supported" output, loaded once (from the directory only)."""
        with self._lock:
            if self._loaded is None:
                from transformers import AutoModelForSequenceClassification, AutoTokenizer

                assert self.path is not None
                tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
                model = AutoModelForSequenceClassification.from_pretrained(
                    self.path, local_files_only=True
                ).eval()
                self._loaded = (tokenizer, model, supported_index(model.config.to_dict()))
            return self._loaded

    def probabilities(self, premises: list[str], hypotheses: list[str]) -> list[float]:
        """P(supported) for each pair."""
        import torch

        tokenizer, model, index = self.load()
        out: list[float] = []
        for i in range(0, len(premises), BATCH):
            batch = tokenizer(
                premises[i : i + BATCH],
                hypotheses[i : i + BATCH],
                truncation="only_first",  # a long context loses its end, never the answer
                max_length=MAX_TOKENS,
                padding=True,
                return_tensors="pt",
            )
            with torch.inference_mode():
                logits = model(**batch).logits.float()
            if index is None:
                out += torch.sigmoid(logits[:, 0]).tolist()
            else:
                out += torch.softmax(logits, dim=-1)[:, index].tolist()
        return out

    def score(self, records: Sequence[Record]) -> list[Result]:
        premises = [f"{r.context or ''}\n{r.prompt or ''}".strip() for r in records]
        supported = self.probabilities(premises, [r.completion or "" for r in records])
        results = []
        for p in supported:
            risk = 1.0 - p
            flagged = risk >= self.threshold
            results.append(
                Result(
                    score=risk,
                    flagged=flagged,
                    label="unsupported" if flagged else "supported",
                    explanation=f"{self.path.name if self.path else 'model'}: P(supported) {p:.2f}",
                    evidence=[{"kind": "crossencoder", "p_supported": p}],
                )
            )
        return results
