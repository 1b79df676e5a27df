"""`inferwatch demo` against the real gateway and collector (a fake OpenAI-style upstream
stands in for vLLM): the workload lands as requests, cancellations and linked feedback."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from inferwatch.demo import KINDS, run_demo
from inferwatch.settings import CollectorSettings, ServingSettings
from inferwatch.store.database import Database
from serving.gateway import create_gateway
from serving.telemetry import tracer_provider
from tests.collector.conftest import run_collector
from tests.inferwatch.cli_helpers import cli_env, inferwatch
from tests.servers import ServerThread
from tests.serving.fake_upstream import Recorder, create_fake_upstream


def test_the_demo_workload_is_traced_with_feedback(db: Database) -> None:
    for collector in run_collector(db, CollectorSettings(grpc_port=None, gpu_poll_s=0)):
        provider = tracer_provider(collector.url)
        with (
            ServerThread(create_fake_upstream(Recorder())) as fake,
            ServerThread(create_gateway(ServingSettings(upstream_url=fake), provider)) as gateway,
        ):
            summary = asyncio.run(
                run_demo(gateway, collector.url, duration_s=4, rate=6, concurrency=4, seed=7)
            )
        provider.shutdown()  # flushes the gateway's spans

        assert summary.requests >= 8, summary
        assert summary.errors == 0, summary.first_error
        assert summary.feedback >= 1
        assert {o.kind for o in summary.outcomes} >= {"short", "document"}
        assert {o.streamed for o in summary.outcomes} == {True, False}
        assert summary.p95_ttft_ms is not None and summary.tokens_per_s > 0
        with db.engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM llm_requests")).scalar_one()
            linked = conn.execute(
                text("SELECT coalesce(sum(feedback_count), 0) FROM llm_request_feedback")
            ).scalar_one()
            prompts = conn.execute(text("SELECT prompt FROM llm_requests")).scalars().all()
        assert stored == summary.requests
        assert linked == summary.feedback
        assert any("Summarise this in two sentences" in (p or "") for p in prompts)


def test_kinds_cover_the_mix() -> None:
    assert sum(weight for _, weight in KINDS) == 1.0


def test_an_unreachable_gateway_is_a_clear_error(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    result = inferwatch(
        "demo", "--duration", "1", "--gateway", "http://127.0.0.1:9", env=env, timeout=60
    )
    assert result.returncode == 1
    assert "is `inferwatch up` running?" in result.stderr
