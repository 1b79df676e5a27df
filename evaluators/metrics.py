"""The evaluator worker's Prometheus metrics, on a registry passed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class EvaluatorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        ns = "inferwatch_evaluators"
        self.jobs_queued = Counter(
            "jobs_queued", "Evaluation jobs queued by the sampler.", namespace=ns, registry=registry
        )
        self.over_budget = Counter(
            "jobs_over_budget",
            "Jobs not queued because the evaluator's per-minute budget was spent.",
            ["evaluator"],
            namespace=ns,
            registry=registry,
        )
        self.jobs = Counter(
            "jobs",
            "Jobs finished, by evaluator and outcome (done, skipped, failed, parked).",
            ["evaluator", "outcome"],
            namespace=ns,
            registry=registry,
        )
        self.flagged = Counter(
            "flagged",
            "Requests an evaluator flagged.",
            ["evaluator"],
            namespace=ns,
            registry=registry,
        )
