"""The alert engine process: evaluation and delivery daemons in a FastAPI app's lifespan.

Besides running the engine it serves ``/metrics`` (the engine's counters,
``inferwatch_alerts`` and each rule's value), ``/healthz``, ``/readyz`` (the
database answers; the schema was checked at start) and ``GET /v1/alerts`` (the
current pending, firing and recently resolved alerts as JSON).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import aiohttp
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from alerting.deliver import Deliverer
from alerting.engine import AlertEngine, utc_now
from alerting.metrics import AlertMetrics
from alerting.notify import Notifier, notifier_for
from alerting.rules import AlertConfig
from inferwatch.daemon import running
from inferwatch.leader import ALERT_ENGINE, Leadership
from inferwatch.service import add_service_routes
from inferwatch.settings import AlertingSettings
from inferwatch.store.database import Database
from inferwatch.store.migrate import async_require_current_schema


def create_app(
    settings: AlertingSettings,
    config: AlertConfig,
    db: Database,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = utc_now,
    notifiers: Mapping[str, Notifier] | None = None,
    owns_database: bool = False,
) -> FastAPI:
    """``notifiers`` replaces the channels built from ``config`` (tests pass recorders)."""
    metrics = AlertMetrics(registry if registry is not None else CollectorRegistry())
    leadership = Leadership(db.connect_raw, lock_key=ALERT_ENGINE, role="alert evaluation")
    engine = AlertEngine(
        db,
        config,
        metrics,
        leadership,
        interval_s=settings.interval_s,
        query_timeout_s=settings.query_timeout_s,
        external_url=settings.dashboard_url,
        clock=clock,
    )
    metrics.expose(lambda: engine.instances, lambda: engine.values)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await async_require_current_schema(db.async_engine)
        async with aiohttp.ClientSession() as session:
            channels = (
                dict(notifiers)
                if notifiers is not None
                else {
                    name: notifier_for(receiver, session, settings.dashboard_url)
                    for name, receiver in config.receivers.items()
                }
            )
            deliverer = Deliverer(db, channels, metrics, leadership, clock=clock)
            try:
                async with running([leadership, engine, deliverer]):
                    yield
            finally:
                if owns_database:
                    await db.aclose()

    app = FastAPI(title="InferWatch alert engine", lifespan=lifespan)
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.leadership = leadership

    add_service_routes(
        app,
        db,
        metrics.registry,
        lambda: {
            "role": "leader" if leadership.leading else "standby",
            "rules": len(config.rules),
        },
    )

    @app.get("/v1/alerts")
    async def alerts() -> list[dict[str, Any]]:
        return [
            {
                "rule": i.rule,
                "state": i.state.value,
                "labels": i.labels,
                "annotations": i.annotations,
                "value": i.value,
                "active_since": i.active_since,
                "fired_at": i.fired_at,
                "resolved_at": i.resolved_at,
            }
            for i in engine.instances
        ]

    return app
