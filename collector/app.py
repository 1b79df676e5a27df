"""The collector's HTTP surface: OTLP/HTTP trace ingest, feedback, health, readiness, metrics.

``POST /v1/traces`` answers 200 only once every span it does not reject is
committed to Postgres. Refusals follow the OTLP/HTTP spec: 400 for a body that
does not decode (nothing stored), 413 over the size limit, 415 for an unknown
content type or encoding, 429/503 with ``Retry-After`` when the spans cannot be
committed now. Error bodies are ``google.rpc.Status`` in the request's encoding.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from sqlalchemy import text

from collector.decode import Format, MalformedPayload, UnsupportedMediaType, decode, media_format
from collector.engines import EngineIn, EngineScraper, engines_router, register_engine
from collector.feedback import feedback_router
from collector.gpu import GpuPoller, Nvml, real_nvml
from collector.grpc_receiver import GrpcReceiver
from collector.ingest import store
from collector.metrics import CollectorMetrics
from collector.prices import load_prices, store_prices
from collector.rollups import RollupRefresher
from collector.writer import SpanWriter, WriterQueueFull, WriterUnavailable
from inferwatch.daemon import Daemon
from inferwatch.http_body import (
    BodyTooLarge,
    MalformedBody,
    UnsupportedEncoding,
    check_declared_length,
    check_encoding,
    read_limited,
)
from inferwatch.leader import Leadership
from inferwatch.settings import CollectorSettings
from inferwatch.store.database import Database
from inferwatch.store.migrate import (
    async_require_current_schema,
    async_schema_problem,
)

log = logging.getLogger(__name__)

PROTOBUF_CONTENT_TYPE = "application/x-protobuf"
JSON_CONTENT_TYPE = "application/json"


def create_app(
    settings: CollectorSettings,
    db: Database,
    *,
    registry: CollectorRegistry | None = None,
    owns_database: bool = False,
    nvml: Callable[[], Nvml] = real_nvml,
) -> FastAPI:
    """The collector app; its lifespan checks the schema and runs the span writer.

    Beside the writer it runs, while it leads (one worker per database), the
    vLLM engine scraper and the NVML GPU poller (``nvml`` builds the NVML to
    poll: tests pass a fake). With ``owns_database`` the app closes ``db`` when
    it stops. Under
    ``PROMETHEUS_MULTIPROC_DIR`` (several worker processes), ``/metrics`` sums
    every worker's metrics.
    """
    metrics = CollectorMetrics(registry if registry is not None else CollectorRegistry())
    writer = SpanWriter(db.connect_raw, settings, metrics)
    leadership = Leadership(db.connect_raw)
    scraper = EngineScraper(db, metrics, leadership, interval_s=settings.engine_scrape_s)
    rollups = RollupRefresher(db, metrics, leadership, interval_s=settings.rollup_s)
    pollers: list[Daemon] = [leadership, scraper, rollups]
    gpu_poller = None
    if settings.gpu_poll_s > 0:
        gpu_poller = GpuPoller(db, metrics, leadership, interval_s=settings.gpu_poll_s, nvml=nvml)
        pollers.append(gpu_poller)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await async_require_current_schema(db.async_engine)
        await store_prices(db, load_prices(settings.prices_file))
        for url in settings.engines:
            await register_engine(db, EngineIn.model_validate({"url": url}))
        await writer.start()
        for daemon in pollers:
            await daemon.start()
        receiver = None
        try:
            if settings.grpc_port is not None:
                receiver = GrpcReceiver(
                    settings.host, settings.grpc_port, settings.max_body_bytes, writer, metrics
                )
                await receiver.start()
                app.state.grpc_port = receiver.port
            yield
        finally:
            if receiver is not None:
                await receiver.stop()
            for daemon in reversed(pollers):
                await daemon.stop()
            await writer.stop()
            if owns_database:
                await db.aclose()

    app = FastAPI(title="InferWatch collector", lifespan=lifespan)
    app.state.writer = writer
    app.state.metrics = metrics
    app.state.gpu_poller = gpu_poller
    app.state.leadership = leadership
    app.include_router(feedback_router(settings, db))
    app.include_router(engines_router(db))

    def refuse(fmt: Format, exc: WriterQueueFull | WriterUnavailable) -> Response:
        """The spans cannot be committed now: a retryable answer with Retry-After."""
        if isinstance(exc, WriterQueueFull):
            status, code = 429, code_pb2.RESOURCE_EXHAUSTED
        else:
            status, code = 503, code_pb2.UNAVAILABLE
        return _error(metrics, fmt, status, code, str(exc), retry_after=settings.retry_after_s)

    @app.post("/v1/traces")
    async def export_traces(request: Request) -> Response:
        fmt: Format = "protobuf"
        try:
            fmt = media_format(request.headers.get("content-type"))
            if writer.full:
                raise WriterQueueFull(f"{writer.queued_spans} spans are already waiting")
            gzip = check_encoding(request.headers.get("content-encoding"))
            check_declared_length(request.headers.get("content-length"), settings.max_body_bytes)
            body = await read_limited(request.stream(), gzip=gzip, limit=settings.max_body_bytes)
            decoded = decode(fmt, body)
        except UnsupportedMediaType as exc:
            return _error(metrics, "json", 415, code_pb2.INVALID_ARGUMENT, str(exc))
        except UnsupportedEncoding as exc:
            return _error(metrics, fmt, 415, code_pb2.INVALID_ARGUMENT, str(exc))
        except BodyTooLarge as exc:
            return _error(metrics, fmt, 413, code_pb2.RESOURCE_EXHAUSTED, str(exc))
        except (MalformedBody, MalformedPayload) as exc:
            return _error(metrics, fmt, 400, code_pb2.INVALID_ARGUMENT, str(exc))
        except WriterQueueFull as exc:  # full before the body was even read
            return refuse(fmt, exc)
        try:
            response = await store(decoded, writer, metrics)
        except (WriterQueueFull, WriterUnavailable) as exc:
            return refuse(fmt, exc)
        metrics.export_requests.labels(protocol="http", code="200").inc()
        return _message_response(fmt, 200, response)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        details: dict[str, Any] = {
            "writer": "running" if writer.running else "stopped",
            "queued_spans": writer.queued_spans,
            "pollers": "this worker" if leadership.leading else "another worker",
            "gpu": gpu_poller.status if gpu_poller is not None else "polling off",
        }
        try:
            async with db.async_engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            details["database"] = "ok"
            problem = await async_schema_problem(db.async_engine)
        except Exception as exc:  # any failure to reach the database means not ready
            details["database"] = f"unreachable: {exc.__class__.__name__}"
            problem = "database unreachable"
        details["schema"] = "current" if problem is None else problem
        ready = problem is None and writer.running
        details["status"] = "ready" if ready else "not ready"
        return JSONResponse(details, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(
            generate_latest(_exposed_registry(metrics.registry)), media_type=CONTENT_TYPE_LATEST
        )

    return app


def _exposed_registry(own: CollectorRegistry) -> CollectorRegistry:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return own
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def _message_response(
    fmt: Format, status_code: int, message: Message, headers: dict[str, str] | None = None
) -> Response:
    if fmt == "json":
        body = json_format.MessageToJson(message, indent=None).encode()
        return Response(body, status_code, headers=headers, media_type=JSON_CONTENT_TYPE)
    return Response(
        message.SerializeToString(), status_code, headers=headers, media_type=PROTOBUF_CONTENT_TYPE
    )


def _error(
    metrics: CollectorMetrics,
    fmt: Format,
    status_code: int,
    grpc_code: int,
    message: str,
    *,
    retry_after: int | None = None,
) -> Response:
    metrics.export_requests.labels(protocol="http", code=str(status_code)).inc()
    if status_code >= 500:
        log.warning("refusing export (%d): %s", status_code, message)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return _message_response(
        fmt, status_code, status_pb2.Status(code=grpc_code, message=message), headers
    )
