"""Settings, read once per entry point from ``INFERWATCH_*`` variables and passed in.

Library modules never read the environment themselves: each process builds one
``Settings`` in its command and hands the relevant section to constructors, so
tests build their own without touching ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
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
    collector: CollectorSettings = CollectorSettings()
