"""The evaluator process: the sampler (one per database) and a worker, in a FastAPI lifespan.

Serves ``/metrics``, ``/healthz`` and ``/readyz`` (database reachable, the
schema having been checked at start; says which evaluators run and whether this
process samples).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from evaluators.base import Evaluator
from evaluators.metrics import EvaluatorMetrics
from evaluators.worker import Sampler, Worker, policy_for, utc_now
from inferwatch.daemon import running
from inferwatch.leader import EVALUATION_SAMPLER, Leadership
from inferwatch.service import add_service_routes
from inferwatch.settings import EvaluatorSettings
from inferwatch.store.database import Database
from inferwatch.store.migrate import async_require_current_schema


def create_app(
    settings: EvaluatorSettings,
    evaluators: Sequence[Evaluator],
    db: Database,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    metrics = EvaluatorMetrics(registry if registry is not None else CollectorRegistry())
    policy = policy_for(evaluators, settings)
    leadership = Leadership(db.connect_raw, lock_key=EVALUATION_SAMPLER, role="evaluation sampling")
    sampler = Sampler(db, policy, metrics, leadership, interval_s=settings.poll_s, clock=clock)
    worker = Worker(db, evaluators, metrics, settings, clock=clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await async_require_current_schema(db.async_engine)
        async with running([leadership, sampler, worker]):
            yield

    app = FastAPI(title="InferWatch evaluators", lifespan=lifespan)
    app.state.metrics = metrics
    app.state.sampler = sampler
    app.state.worker = worker

    add_service_routes(
        app,
        db,
        metrics.registry,
        lambda: {"evaluators": [e.name for e in evaluators], "sampling": leadership.leading},
    )
    return app
