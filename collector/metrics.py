"""The collector's own Prometheus metrics, built on a registry passed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

WRITE_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class CollectorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        ns = "inferwatch_collector"
        self.spans_received = Counter(
            "spans_received",
            "Spans decoded from export requests.",
            namespace=ns,
            registry=registry,
        )
        self.spans_stored = Counter(
            "spans_stored", "Spans newly written to Postgres.", namespace=ns, registry=registry
        )
        self.spans_duplicate = Counter(
            "spans_duplicate",
            "Spans acknowledged that were already stored (retried batches).",
            namespace=ns,
            registry=registry,
        )
        self.spans_rejected = Counter(
            "spans_rejected",
            "Spans refused one by one (partial_success), by reason.",
            ["reason"],
            namespace=ns,
            registry=registry,
        )
        self.spans_refused = Counter(
            "spans_refused",
            "Spans of whole requests refused for a retry, by reason.",
            ["reason"],
            namespace=ns,
            registry=registry,
        )
        self.export_requests = Counter(
            "export_requests",
            "OTLP export requests answered, by protocol and status (HTTP code or gRPC status).",
            ["protocol", "code"],
            namespace=ns,
            registry=registry,
        )
        self.batches_written = Counter(
            "batches_written",
            "Group commits (one transaction for many requests).",
            namespace=ns,
            registry=registry,
        )
        self.queued_spans = Gauge(
            "queued_spans",
            "Spans decoded and waiting for the writer.",
            namespace=ns,
            registry=registry,
        )
        self.write_seconds = Histogram(
            "write_seconds",
            "Time to write and commit one group of spans.",
            namespace=ns,
            registry=registry,
            buckets=WRITE_SECONDS_BUCKETS,
        )
        self.database_up = Gauge(
            "database_up",
            "1 when the writer's last attempt reached the database.",
            namespace=ns,
            registry=registry,
        )
        self.engine_scrapes = Counter(
            "engine_scrapes",
            "Reads of a vLLM engine's /metrics, by outcome.",
            ["outcome"],
            namespace=ns,
            registry=registry,
        )
        self.gpu_available = Gauge(
            "gpu_available",
            "1 when NVML answers on this host (GPUs are polled), else 0.",
            namespace=ns,
            registry=registry,
            multiprocess_mode="max",
        )
        self.gpus = Gauge(
            "gpus",
            "GPUs NVML reports on this host.",
            namespace=ns,
            registry=registry,
            multiprocess_mode="max",
        )
        self.gpu_errors = Counter(
            "gpu_errors",
            "NVML errors while polling, by GPU index ('all' when NVML itself failed).",
            ["gpu"],
            namespace=ns,
            registry=registry,
        )
        self.rollup_minutes = Counter(
            "rollup_minutes",
            "Minutes of the dashboard rollups rebuilt, by source.",
            ["source"],
            namespace=ns,
            registry=registry,
        )
        self.rollup_seconds = Histogram(
            "rollup_seconds",
            "Time of one pass over every rollup.",
            namespace=ns,
            registry=registry,
            buckets=WRITE_SECONDS_BUCKETS,
        )
