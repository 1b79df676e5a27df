"""The alert engine's ``/metrics``: its own counters, every alert's state and every rule's value.

``inferwatch_alerts`` mirrors Prometheus' ``ALERTS`` series (1 per pending or
firing alert, with its labels and ``alertstate``), and
``inferwatch_alert_rule_value`` is each rule's last computed value per label
set: the SLIs behind the rules. A user's own Prometheus can scrape both and
take over alerting with its own Alertmanager.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from alerting.query import Sample
from alerting.state import Instance, Phase


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        ns = "inferwatch_alerting"
        self.evaluations = Counter(
            "rule_evaluations",
            "Rule evaluations, by rule and result (ok, or error: the query failed).",
            ["rule", "result"],
            namespace=ns,
            registry=registry,
        )
        self.evaluation_seconds = Histogram(
            "rule_evaluation_seconds",
            "Time to measure one rule (its queries).",
            namespace=ns,
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.ticks_failed = Counter(
            "ticks_failed",
            "Evaluation rounds that failed as a whole.",
            namespace=ns,
            registry=registry,
        )
        self.notifications_queued = Counter(
            "notifications_queued",
            "Notifications decided, by receiver and status (firing, resolved).",
            ["receiver", "status"],
            namespace=ns,
            registry=registry,
        )
        self.deliveries = Counter(
            "delivery_attempts",
            "Delivery attempts, by receiver and outcome (delivered, retry, failed).",
            ["receiver", "outcome"],
            namespace=ns,
            registry=registry,
        )
        self.leader = Gauge(
            "leader", "1 while this engine evaluates and notifies.", namespace=ns, registry=registry
        )

    def expose(
        self,
        instances: Callable[[], Sequence[Instance]],
        values: Callable[[], dict[str, list[Sample]]],
    ) -> None:
        self.registry.register(_AlertsCollector(instances, values))


class _AlertsCollector(Collector):
    def __init__(
        self,
        instances: Callable[[], Sequence[Instance]],
        values: Callable[[], dict[str, list[Sample]]],
    ) -> None:
        self._instances, self._values = instances, values

    def collect(self) -> Iterable[Metric]:
        alerts = Metric(
            "inferwatch_alerts", "Pending and firing alerts, as Prometheus' ALERTS.", "gauge"
        )
        for i in self._instances():
            if i.state in (Phase.PENDING, Phase.FIRING):
                alerts.add_sample(
                    "inferwatch_alerts", {**i.labels, "alertstate": i.state.value}, 1.0
                )
        yield alerts
        values = Metric(
            "inferwatch_alert_rule_value", "Each rule's last value per label set.", "gauge"
        )
        for rule, samples in self._values().items():
            for sample in samples:
                if sample.value is not None:
                    labels = {**dict(sample.labels), "alertname": rule}
                    values.add_sample("inferwatch_alert_rule_value", labels, sample.value)
        yield values
