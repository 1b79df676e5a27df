"""vLLM engine metrics: which servers to scrape, reading their ``/metrics``, storing samples.

A sample is one scrape of one engine for one served model: gauges as read,
counters as the cumulative values vLLM reports (rates, ratios and counter
resets are the ``engine_rates`` view's business). vLLM's data-parallel ranks
(the ``engine`` label) are combined: queues and counters summed, KV-cache usage
averaged. Metric names renamed across vLLM versions are read under either name.

Engines are registered by URL: ``inferwatch serve`` registers its own, users
add others with ``PUT /v1/engines`` or ``INFERWATCH_COLLECTOR__ENGINES``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from fastapi import APIRouter
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from collector.metrics import CollectorMetrics
from inferwatch.leader import LeaderPoller, Leadership
from inferwatch.store.database import Database
from inferwatch.store.models import Engine, EngineSample

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 5.0
MAX_METRICS_BYTES = 8 * 1024 * 1024
# Sample column ← vLLM metric families, newest name first (counters without ``_total``).
GAUGES = {
    "requests_running": ("vllm:num_requests_running",),
    "requests_waiting": ("vllm:num_requests_waiting",),
    "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
}
COUNTERS = {
    "preemptions": ("vllm:num_preemptions",),
    "prompt_tokens": ("vllm:prompt_tokens",),
    "generation_tokens": ("vllm:generation_tokens",),
    "prefix_cache_queries": ("vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries"),
    "prefix_cache_hits": ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits"),
    "spec_decode_drafts": ("vllm:spec_decode_num_drafts",),
    "spec_decode_draft_tokens": ("vllm:spec_decode_num_draft_tokens",),
    "spec_decode_accepted_tokens": ("vllm:spec_decode_num_accepted_tokens",),
}
AVERAGED = frozenset({"kv_cache_usage"})
FINISHED = "vllm:request_success"
MODEL_LABEL = "model_name"


@dataclass
class EngineReading:
    """What one scrape says about one served model."""

    model: str
    values: dict[str, float] = field(default_factory=dict)
    finished_by_reason: dict[str, float] = field(default_factory=dict)

    @property
    def requests_finished(self) -> float | None:
        return sum(self.finished_by_reason.values()) if self.finished_by_reason else None


def parse_engine_metrics(exposition: str) -> list[EngineReading]:
    """The readings in a Prometheus text exposition from vLLM, one per ``model_name``.

    Raises ``ValueError`` if the text is not a Prometheus exposition."""
    wanted: dict[str, tuple[str, int]] = {}  # family name → (column, preference rank)
    for column, names in (GAUGES | COUNTERS).items():
        for rank, name in enumerate(names):
            wanted[name] = (column, rank)
    found: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    finished: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(exposition):
        # A counter's family is "x" with samples "x_total", or, written without a TYPE
        # line naming it so, a family "x_total" of its own; "x_created" is never wanted.
        name = family.name.removesuffix("_total")
        if name.endswith("_created"):
            continue
        if name == FINISHED:
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                reason = sample.labels.get("finished_reason", "unknown")
                finished[_model(sample.labels)][reason] += sample.value
            continue
        if name not in wanted:
            continue
        column, rank = wanted[name]
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            found[_model(sample.labels)][column].append((rank, sample.value))
    readings = []
    for model in sorted(set(found) | set(finished)):
        reading = EngineReading(model, finished_by_reason=dict(finished.get(model, {})))
        for column, ranked in found.get(model, {}).items():
            best = min(rank for rank, _ in ranked)  # the newest name present wins
            values = [value for rank, value in ranked if rank == best]
            total = sum(values)
            reading.values[column] = total / len(values) if column in AVERAGED else total
        readings.append(reading)
    return readings


def _model(labels: dict[str, str]) -> str:
    return labels.get(MODEL_LABEL) or "unknown"


def sample_rows(
    engine_id: int, at: datetime, readings: list[EngineReading]
) -> list[dict[str, Any]]:
    columns = [*GAUGES, *COUNTERS]
    return [
        {
            "time": at,
            "engine_id": engine_id,
            "model": r.model,
            **{c: r.values.get(c) for c in columns},
            "requests_finished": r.requests_finished,
            "finished_by_reason": r.finished_by_reason,
        }
        for r in readings
    ]


class EngineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl  # the server's base URL; metrics are read from {url}/metrics
    name: str | None = Field(default=None, max_length=200)
    pid: int | None = Field(default=None, gt=0)
    host: str | None = Field(default=None, max_length=200)


async def register_engine(db: Database, engine: EngineIn) -> int:
    """Adds or updates the engine at ``engine.url``; returns its id."""
    url = str(engine.url).rstrip("/")
    row = {"url": url, "name": engine.name or url, "pid": engine.pid, "host": engine.host}
    new = insert(Engine).values(row)
    upsert = new.on_conflict_do_update(
        index_elements=[Engine.url],
        set_={"name": new.excluded.name, "pid": new.excluded.pid, "host": new.excluded.host},
    ).returning(Engine.id)
    async with db.async_engine.begin() as conn:
        return int((await conn.execute(upsert)).scalar_one())


def engines_router(db: Database) -> APIRouter:
    router = APIRouter()

    @router.put("/v1/engines")
    async def put_engine(engine: EngineIn) -> dict[str, Any]:
        """Register a vLLM server to scrape (idempotent, keyed by URL)."""
        return {"id": await register_engine(db, engine), "url": str(engine.url).rstrip("/")}

    @router.get("/v1/engines")
    async def list_engines() -> list[dict[str, Any]]:
        async with db.async_engine.connect() as conn:
            result = await conn.execute(select(Engine.__table__).order_by(Engine.id))
            return [dict(row._mapping) for row in result]

    return router


class EngineScraper(LeaderPoller):
    """Every ``interval_s``, reads every registered engine's ``/metrics`` and stores a sample.

    Runs only while this process leads (one scraper per database, whatever the
    number of collector workers). An engine that cannot be read is recorded in
    ``engines.last_error`` and tried again next round."""

    name = "engine-scraper"

    def __init__(
        self, db: Database, metrics: CollectorMetrics, leadership: Leadership, *, interval_s: float
    ) -> None:
        super().__init__(leadership, interval_s=interval_s)
        self.db = db
        self.metrics = metrics
        self._http: aiohttp.ClientSession | None = None

    async def round(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(SCRAPE_TIMEOUT_S))
        await self.scrape_all(self._http)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def scrape_all(self, http: aiohttp.ClientSession) -> None:
        async with self.db.async_engine.connect() as conn:
            engines = (await conn.execute(select(Engine.id, Engine.url))).all()
        results = await asyncio.gather(*(self._read(http, url) for _, url in engines))
        at = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        async with self.db.async_engine.begin() as conn:
            for (engine_id, _), (readings, error) in zip(engines, results, strict=True):
                self.metrics.engine_scrapes.labels(outcome="ok" if error is None else "error").inc()
                values: dict[str, Any] = {"last_error": error}
                if error is None:
                    values["last_scraped_at"] = at
                    rows += sample_rows(engine_id, at, readings)
                await conn.execute(update(Engine).where(Engine.id == engine_id).values(values))
            if rows:
                await conn.execute(insert(EngineSample).on_conflict_do_nothing(), rows)

    async def _read(
        self, http: aiohttp.ClientSession, url: str
    ) -> tuple[list[EngineReading], str | None]:
        try:
            async with http.get(f"{url}/metrics") as response:
                if response.status != 200:
                    return [], f"HTTP {response.status} from {url}/metrics"
                body = await response.content.read(MAX_METRICS_BYTES + 1)
            if len(body) > MAX_METRICS_BYTES:
                return [], f"{url}/metrics is over {MAX_METRICS_BYTES} bytes"
            return parse_engine_metrics(body.decode("utf-8", errors="replace")), None
        except (aiohttp.ClientError, TimeoutError) as exc:
            return [], f"cannot read {url}/metrics: {str(exc) or type(exc).__name__}"
        except ValueError as exc:
            return [], f"{url}/metrics is not a Prometheus exposition: {exc}"
