"""vLLM engine metrics: the parser on vLLM 0.32's real exposition, the scraper over HTTP, the
rates view (including counter resets), and one leader per database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from collector.engines import parse_engine_metrics
from inferwatch.leader import Leadership
from inferwatch.settings import CollectorSettings
from inferwatch.store.database import Database
from tests.collector.conftest import Collector, rows, run_collector, wait_for
from tests.servers import ServerThread

FIXTURE = Path(__file__).parent / "fixtures" / "vllm-0.32-metrics.txt"
MODEL = "SmolLM2-135M-Instruct"

# An older vLLM's names, two data-parallel ranks, two models, speculative decoding.
OLDER_DP_SPEC = """
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="big"} 0.2
vllm:gpu_cache_usage_perc{engine="1",model_name="big"} 0.4
vllm:gpu_cache_usage_perc{engine="0",model_name="small"} 0.9
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="big"} 1
vllm:num_requests_waiting{engine="1",model_name="big"} 2
# TYPE vllm:gpu_prefix_cache_queries counter
vllm:gpu_prefix_cache_queries_total{engine="0",model_name="big"} 100
vllm:gpu_prefix_cache_queries_created{engine="0",model_name="big"} 1.7e9
# TYPE vllm:gpu_prefix_cache_hits counter
vllm:gpu_prefix_cache_hits_total{engine="0",model_name="big"} 40
# TYPE vllm:spec_decode_num_draft_tokens counter
vllm:spec_decode_num_draft_tokens_total{engine="0",model_name="big"} 500
# TYPE vllm:spec_decode_num_accepted_tokens counter
vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="big"} 300
# TYPE vllm:request_success counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="big"} 7
vllm:request_success_total{engine="1",finished_reason="stop",model_name="big"} 3
vllm:request_success_total{engine="1",finished_reason="length",model_name="big"} 1
"""


def test_vllm_032_exposition_is_read_under_current_names() -> None:
    (reading,) = parse_engine_metrics(FIXTURE.read_text())
    assert reading.model == MODEL
    assert reading.values == {
        "requests_running": 0.0,
        "requests_waiting": 0.0,
        "kv_cache_usage": 0.0,
        "preemptions": 0.0,
        "prompt_tokens": 98.0,
        "generation_tokens": 88.0,
        "prefix_cache_queries": 98.0,
        "prefix_cache_hits": 0.0,
    }
    assert reading.finished_by_reason["length"] == 4.0
    assert reading.requests_finished == 4.0


def test_older_names_data_parallel_ranks_and_spec_decode() -> None:
    big, small = parse_engine_metrics(OLDER_DP_SPEC)
    assert big.model == "big" and small.model == "small"
    assert big.values["kv_cache_usage"] == pytest.approx(0.3)  # averaged over ranks
    assert big.values["requests_waiting"] == 3.0  # summed over ranks
    assert big.values["prefix_cache_queries"] == 100.0 and big.values["prefix_cache_hits"] == 40.0
    assert big.values["spec_decode_accepted_tokens"] == 300.0
    assert big.finished_by_reason == {"stop": 10.0, "length": 1.0}
    assert small.values == {"kv_cache_usage": 0.9}


def test_the_newest_name_wins_when_both_are_exposed() -> None:
    both = (
        'vllm:kv_cache_usage_perc{model_name="m"} 0.5\n'
        'vllm:gpu_cache_usage_perc{model_name="m"} 0.1\n'
    )
    (reading,) = parse_engine_metrics(both)
    assert reading.values["kv_cache_usage"] == 0.5


def test_text_that_is_not_an_exposition_is_an_error() -> None:
    with pytest.raises(ValueError):
        parse_engine_metrics("<html>not metrics</html>")


class FakeEngine:
    """Serves vLLM's /metrics from the fixture, with the token counters moved on per scrape."""

    def __init__(self) -> None:
        self.scrapes = 0
        self.body = FIXTURE.read_text()

    def app(self) -> Starlette:
        async def metrics(request: Request) -> PlainTextResponse:
            self.scrapes += 1
            body = self.body.replace(
                'vllm:generation_tokens_total{engine="0",model_name="SmolLM2-135M-Instruct"} 88.0',
                f'vllm:generation_tokens_total{{engine="0",model_name="{MODEL}"}} '
                f"{88.0 + 100 * self.scrapes}",
            )
            return PlainTextResponse(body)

        return Starlette(routes=[Route("/metrics", metrics)])


@pytest.fixture
def fast_collector(db: Database) -> Iterator[Collector]:
    settings = CollectorSettings(grpc_port=None, engine_scrape_s=0.2, gpu_poll_s=0)
    yield from run_collector(db, settings)


def test_registered_engines_are_scraped_and_failures_recorded(fast_collector: Collector) -> None:
    engine = FakeEngine()
    with ServerThread(engine.app()) as url:
        put = fast_collector.http.put("/v1/engines", json={"url": url + "/", "name": "local"})
        assert put.status_code == 200 and put.json()["url"] == url
        again = fast_collector.http.put("/v1/engines", json={"url": url, "name": "renamed"})
        assert again.json()["id"] == put.json()["id"]  # keyed by URL
        dead = fast_collector.http.put("/v1/engines", json={"url": "http://127.0.0.1:9"})
        assert dead.status_code == 200
        assert fast_collector.http.put("/v1/engines", json={"url": "nope"}).status_code == 422

        wait_for(lambda: fast_collector.count("engine_samples") >= 3)
        engines = {e["name"]: e for e in fast_collector.http.get("/v1/engines").json()}
    samples = rows(fast_collector.db, "SELECT * FROM engine_samples ORDER BY time")
    assert {s["model"] for s in samples} == {MODEL}
    assert samples[0]["prompt_tokens"] == 98.0
    assert samples[1]["generation_tokens"] > samples[0]["generation_tokens"]
    assert samples[0]["finished_by_reason"]["length"] == 4.0
    assert engines["renamed"]["last_error"] is None
    assert engines["renamed"]["last_scraped_at"] is not None
    refused = engines["http://127.0.0.1:9"]["last_error"]
    assert refused.startswith("cannot read http://127.0.0.1:9/metrics: Cannot connect")
    rates = rows(fast_collector.db, "SELECT * FROM engine_rates ORDER BY time")
    assert rates and all(r["generation_tokens_per_s"] > 0 for r in rates)
    assert fast_collector.metric("inferwatch_collector_engine_scrapes_total", {"outcome": "error"})


def test_engine_rates_derive_rates_ratios_and_survive_a_counter_reset(db: Database) -> None:
    t0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    with db.engine.begin() as conn:
        engine_id = conn.execute(
            text("INSERT INTO engines (name, url) VALUES ('e', 'http://e') RETURNING id")
        ).scalar_one()
        for i, (gen, queries, hits, drafts, accepted) in enumerate(
            [(1000, 100, 10, 0, 0), (1500, 200, 60, 100, 70), (200, 50, 25, 40, 10)]  # reset
        ):
            conn.execute(
                text(
                    "INSERT INTO engine_samples (time, engine_id, model, generation_tokens,"
                    " prompt_tokens, prefix_cache_queries, prefix_cache_hits,"
                    " spec_decode_draft_tokens, spec_decode_accepted_tokens, requests_finished,"
                    " finished_by_reason) VALUES (:t, :e, 'm', :g, 0, :q, :h, :d, :a, :f, '{}')"
                ),
                {
                    "t": t0 + timedelta(seconds=10 * i),
                    "e": engine_id,
                    "g": gen,
                    "q": queries,
                    "h": hits,
                    "d": drafts,
                    "a": accepted,
                    "f": 5 * i,
                },
            )
    second, after_reset = rows(db, "SELECT * FROM engine_rates ORDER BY time")
    assert second["interval_s"] == 10
    assert second["generation_tokens_per_s"] == 50.0
    assert second["prefix_cache_hit_rate"] == 0.5
    assert second["spec_decode_acceptance_rate"] == 0.7
    assert second["requests_per_s"] == 0.5
    # After a restart the counters start over: the new values are the deltas.
    assert after_reset["generation_tokens_delta"] == 200.0
    assert after_reset["prefix_cache_hit_rate"] == 0.5
    assert after_reset["spec_decode_acceptance_rate"] == 0.25


def test_one_leader_per_database_and_a_successor_when_it_stops(db: Database) -> None:
    async def eventually(predicate: Any) -> None:
        for _ in range(500):
            if predicate():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("timed out")

    async def scenario() -> None:
        first = Leadership(db.connect_raw, retry_s=0.05)
        second = Leadership(db.connect_raw, retry_s=0.05)
        await first.start()
        await eventually(lambda: first.leading)
        await second.start()
        await asyncio.sleep(0.3)
        assert not second.leading
        await first.stop()
        await eventually(lambda: second.leading)
        await second.stop()

    asyncio.run(scenario())
