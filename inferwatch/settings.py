"""Settings, read once per entry point from ``INFERWATCH_*`` variables and passed in.

Library modules never read the environment themselves: each process builds one
``Settings`` in its command and hands the relevant section to constructors, so
tests build their own without touching ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class CollectorSettings(BaseModel):
    """The OTLP collector (``INFERWATCH_COLLECTOR__*``)."""

    host: str = "127.0.0.1"
    port: int = 4318
    # OTLP/gRPC port (vLLM's exporter defaults to gRPC); unset it to serve HTTP only.
    grpc_port: int | None = 4317
    # Largest request body accepted, measured after decompression (OTel
    # Collector's confighttp uses 20 MiB; exporters batch 512 spans ≈ 1 MiB).
    max_body_bytes: int = Field(default=16 * MIB, gt=0)
    # Spans decoded and waiting for the writer; above this, requests get 429.
    max_queued_spans: int = Field(default=200_000, gt=0)
    # Spans written in one group commit at most.
    max_batch_spans: int = Field(default=20_000, gt=0)
    # How long a request waits for its spans to commit before answering 503.
    write_timeout_s: float = Field(default=30.0, gt=0)
    # Seconds a client is asked to wait before retrying a refused request.
    retry_after_s: int = Field(default=2, ge=1)
    # vLLM servers whose /metrics to scrape, besides those registered over HTTP.
    engines: list[str] = []
    engine_scrape_s: float = Field(default=5.0, gt=0)
    # How often the dashboard's minute/hour rollups take in what was stored since.
    rollup_s: float = Field(default=5.0, gt=0)
    # NVML GPU polling interval; 0 turns the poller off.
    gpu_poll_s: float = Field(default=5.0, ge=0, le=60)
    # Your prices (YAML, the shape of collector/prices.yaml), on top of the shipped ones.
    prices_file: Path | None = None
    # The feedback webhook: with a secret, every request must be signed (HMAC-SHA256).
    feedback_secret: SecretStr | None = None
    feedback_max_bytes: int = Field(default=64 * 1024, gt=0)
    # The scale of ratings that do not declare their own ``range``.
    feedback_rating_range: tuple[float, float] = (1.0, 5.0)


class ServingSettings(BaseModel):
    """The OpenAI-compatible gateway in front of vLLM (``INFERWATCH_SERVING__*``)."""

    host: str = "127.0.0.1"
    port: int = 8000
    # Where vLLM's OpenAI server listens (the bundled one is started on loopback).
    upstream_url: str = "http://127.0.0.1:8001"
    # Where the gateway exports its spans (OTLP/HTTP).
    collector_url: str = "http://127.0.0.1:4318"
    # Prompt and completion text on spans: never, for a sampled share, or always.
    capture: Literal["off", "sampled", "all"] = "all"
    capture_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    # Regular expressions redacted on top of e-mails, phones, cards and IPs.
    redact_patterns: list[str] = []
    # Ask vLLM for token log-probabilities (top-1) and record their summary.
    logprobs: bool = True
    low_confidence_logprob: float = -2.302585  # ln(0.1)
    max_input_bytes: int = Field(default=4 * MIB, gt=0)
    # The name clients ask for; default: the model directory's name.
    served_model_name: str | None = None
    # The bundled vLLM (`inferwatch serve` starts it where upstream_url points).
    vllm_max_model_len: int = Field(default=2048, gt=0)
    vllm_enforce_eager: bool = True
    vllm_cpu_kvcache_gib: int | None = 1
    vllm_args: list[str] = []
    vllm_start_timeout_s: float = Field(default=600.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    # Longest wait for the next bytes from vLLM (a long generation streams meanwhile).
    upstream_timeout_s: float = Field(default=300.0, gt=0)


class AlertingSettings(BaseModel):
    """The alert engine (``INFERWATCH_ALERTING__*``); rules and receivers live in YAML files."""

    host: str = "127.0.0.1"
    # Serves /metrics (alert states, rule values), /healthz and /readyz.
    port: int = 9097
    interval_s: float = Field(default=15.0, gt=0)
    # Your rule/receiver files, read after the shipped pack (same-named rules replace it).
    files: list[Path] = []
    default_rules: bool = True
    query_timeout_s: float = Field(default=10.0, gt=0)
    # Linked from notifications.
    dashboard_url: str = "http://127.0.0.1:8501"


class EvaluatorSettings(BaseModel):
    """The evaluator worker (``INFERWATCH_EVALUATORS__*``)."""

    host: str = "127.0.0.1"
    # Serves /metrics, /healthz and /readyz.
    port: int = 9098
    # Evaluators to run; empty: every one available on this host.
    enabled: list[str] = []
    # Share of requests scored by every cheap evaluator (decided by trace id, so
    # replicas agree). Errors and requests with negative feedback are always scored.
    base_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    # Per evaluator: a lower rate than base_rate, and a most-per-minute budget.
    rates: dict[str, float] = {}
    budgets_per_minute: dict[str, int] = {}
    # The LLM judge (hallucination tier 4): off by default, as on CPU each verdict costs a
    # prefill of the whole context. Default endpoint: the bundled vLLM, not the gateway.
    judge: bool = False
    judge_url: str | None = None
    judge_model: str | None = None
    # Self-consistency (hallucination tier 3): off by default, as each scored request costs
    # consistency_samples more generations. Default endpoint: the bundled vLLM.
    consistency: bool = False
    consistency_url: str | None = None
    consistency_model: str | None = None
    consistency_samples: int = Field(default=4, ge=2, le=16)
    # An operator's cross-encoder (hallucination tier 5): a local model directory.
    cross_encoder_path: Path | None = None
    poll_s: float = Field(default=2.0, gt=0)
    batch_size: int = Field(default=64, gt=0)
    # A claimed job is the worker's for this long; then another worker may retry it.
    lease_s: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=3, gt=0)


class UISettings(BaseModel):
    """The dashboard (``INFERWATCH_UI__*``)."""

    host: str = "127.0.0.1"
    port: int = 8501


class Settings(BaseSettings):
    """Everything an InferWatch process is configured with."""

    model_config = SettingsConfigDict(
        env_prefix="INFERWATCH_",
        env_nested_delimiter="__",
        extra="ignore",
        env_parse_none_str="none",  # e.g. INFERWATCH_COLLECTOR__GRPC_PORT=none
    )

    # Where InferWatch keeps its state: the embedded database, models, logs.
    home: Path = Path(".inferwatch")
    # An existing PostgreSQL; when unset, the embedded server under ``home`` is used.
    database_url: str | None = None
    log_level: str = "INFO"
    # The model `inferwatch serve` runs: a local directory or a hub id (GPU machines);
    # unset, the bundled SmolLM2-135M-Instruct, prepared under ``home``.
    model: str | None = None
    collector: CollectorSettings = CollectorSettings()
    serving: ServingSettings = ServingSettings()
    alerting: AlertingSettings = AlertingSettings()
    evaluators: EvaluatorSettings = EvaluatorSettings()
    ui: UISettings = UISettings()
