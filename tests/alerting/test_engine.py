"""The engine over real Postgres: rules measured from the views, states persisted, notified once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import text

from alerting.deliver import Deliverer
from alerting.engine import AlertEngine
from alerting.metrics import AlertMetrics
from alerting.notify import WebhookNotifier
from alerting.query import measure
from alerting.rules import AlertConfig, WebhookConfig, load_config
from inferwatch.store.database import Database
from tests.alerting.receivers import HttpReceiver, http_receiver, webhook_route
from tests.collector.conftest import rows
from tests.seed import requests_at, store_requests, write_requests

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
MODEL = "SmolLM2-135M-Instruct"

RULES = """
rules:
  - name: ErrorsTight
    metric: errors
    aggregation: ratio
    window: 1m
    comparison: ">"
    threshold: 0.1
    for: 30s
    group_by: [model]
    min_samples: 5
    severity: critical
    annotations:
      summary: "{{ value }} of requests to {{ labels.model }} fail"
"""


def config(tmp_path: Path) -> AlertConfig:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES + webhook_route("http://unused/", group_interval="1m"))
    return load_config([path], defaults=False)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def engine_for(db: Database, cfg: AlertConfig, clock: Clock) -> AlertEngine:
    metrics = AlertMetrics(CollectorRegistry())
    return AlertEngine(db, cfg, metrics, interval_s=15, clock=clock)


async def deliver(db: Database, receiver: HttpReceiver, clock: Clock) -> int:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        hook = WebhookNotifier(WebhookConfig(url=receiver.url), session)
        deliverer = Deliverer(db, {"hook": hook}, AlertMetrics(CollectorRegistry()), clock=clock)
        return await deliverer.deliver_due()


def statuses(receiver: HttpReceiver) -> list[tuple[str, list[str]]]:
    out = []
    for r in receiver.requests:
        body = orjson.loads(r.body)
        out.append((body["status"], [a["status"] for a in body["alerts"]]))
    return out


def test_a_breach_fires_once_and_resolves_once_across_a_restart(
    db: Database, tmp_path: Path
) -> None:
    cfg = config(tmp_path)
    clock = Clock()
    # 30 requests in the minute before T0, one in three failing.
    store_requests(db, requests_at(T0 - timedelta(seconds=59), 30, spacing_s=2, error_every=3))

    async def scenario() -> None:
        async with http_receiver() as receiver:
            engine = engine_for(db, cfg, clock)
            made = await engine.tick(clock.now)
            assert [(t.from_state, t.to_state) for t in made] == [("inactive", "pending")]
            assert await deliver(db, receiver, clock) == 0

            # 30 s later still breaching (the same rows are in the window): it fires.
            clock.now = T0 + timedelta(seconds=30)
            made = await engine.tick(clock.now)
            assert [(t.from_state, t.to_state) for t in made] == [("pending", "firing")]
            assert await deliver(db, receiver, clock) == 1
            assert statuses(receiver) == [("firing", ["firing"])]
            body = orjson.loads(receiver.requests[0].body)
            assert body["alerts"][0]["labels"] == {
                "alertname": "ErrorsTight",
                "model": MODEL,
                "severity": "critical",
            }
            assert (
                body["alerts"][0]["annotations"]["summary"] == f"0.3333 of requests to {MODEL} fail"
            )

            # A restart: a new engine with no memory continues, and does not re-fire.
            engine = engine_for(db, cfg, clock)
            clock.now = T0 + timedelta(seconds=45)
            await write_requests(
                db, requests_at(T0 + timedelta(seconds=31), 10, error_every=3, seed=1)
            )
            assert await engine.tick(clock.now) == []
            assert await deliver(db, receiver, clock) == 0

            # Healthy traffic only: the window moves past the failures and it resolves.
            await write_requests(db, requests_at(T0 + timedelta(seconds=50), 60, seed=2))
            clock.now = T0 + timedelta(seconds=105)
            made = await engine.tick(clock.now)
            assert [(t.from_state, t.to_state) for t in made] == [("firing", "inactive")]
            # The group's interval (1 m after the firing flush at 30 s) has passed: sent now.
            assert await deliver(db, receiver, clock) == 1
            for seconds in range(120, 400, 15):
                clock.now = T0 + timedelta(seconds=seconds)
                await engine.tick(clock.now)
                await deliver(db, receiver, clock)
            assert statuses(receiver) == [("firing", ["firing"]), ("resolved", ["resolved"])]

    asyncio.run(scenario())
    events = rows(db, "SELECT from_state, to_state FROM alert_events ORDER BY id")
    assert [(e["from_state"], e["to_state"]) for e in events] == [
        ("inactive", "pending"),
        ("pending", "firing"),
        ("firing", "inactive"),
    ]
    deliveries = rows(db, "SELECT status, state, attempts FROM alert_deliveries ORDER BY id")
    assert deliveries == [
        {"status": "firing", "state": "delivered", "attempts": 1},
        {"status": "resolved", "state": "delivered", "attempts": 1},
    ]


def breaching_at_once(db: Database, tmp_path: Path) -> AlertConfig:
    """Half the requests of the last minute fail, and the rule fires without waiting."""
    store_requests(db, requests_at(T0 - timedelta(seconds=59), 30, spacing_s=2, error_every=2))
    cfg = config(tmp_path)
    at_once = cfg.rules[0].model_copy(update={"for_": timedelta(0)})
    return AlertConfig([at_once], cfg.receivers, cfg.route)


def test_two_engines_at_once_notify_once(db: Database, tmp_path: Path) -> None:
    cfg = breaching_at_once(db, tmp_path)

    async def scenario() -> None:
        clock = Clock()
        a, b = engine_for(db, cfg, clock), engine_for(db, cfg, clock)
        made = await asyncio.gather(a.tick(T0), b.tick(T0))
        assert sorted(len(m) for m in made) == [0, 1]

    asyncio.run(scenario())
    assert rows(db, "SELECT count(*) AS n FROM alert_deliveries") == [{"n": 1}]
    assert rows(db, "SELECT count(*) AS n FROM alert_events") == [{"n": 1}]


def test_deliveries_retry_with_backoff_and_keep_their_order(db: Database, tmp_path: Path) -> None:
    cfg = breaching_at_once(db, tmp_path)

    async def scenario() -> None:
        clock = Clock()
        engine = engine_for(db, cfg, clock)
        async with http_receiver() as receiver:
            receiver.script = [503, 503]
            await engine.tick(T0)  # firing, notified at once (group_wait 0)
            clock.now = T0 + timedelta(minutes=3)
            await engine.tick(clock.now)  # resolved (no rows in the window), notified
            assert rows(db, "SELECT status FROM alert_deliveries ORDER BY id") == [
                {"status": "firing"},
                {"status": "resolved"},
            ]
            assert await deliver(db, receiver, clock) == 1  # only the oldest of the group: 503
            assert await deliver(db, receiver, clock) == 0  # backing off (1 s)
            clock.now += timedelta(seconds=1)
            assert await deliver(db, receiver, clock) == 1  # 503 again; next in 2 s
            clock.now += timedelta(seconds=2)
            assert await deliver(db, receiver, clock) == 1  # delivered
            assert await deliver(db, receiver, clock) == 1  # then the resolution
            assert statuses(receiver) == [
                ("firing", ["firing"]),
                ("firing", ["firing"]),
                ("firing", ["firing"]),
                ("resolved", ["resolved"]),
            ]

    asyncio.run(scenario())
    got = rows(db, "SELECT status, state, attempts, last_error FROM alert_deliveries ORDER BY id")
    assert got == [
        {"status": "firing", "state": "delivered", "attempts": 3, "last_error": None},
        {"status": "resolved", "state": "delivered", "attempts": 1, "last_error": None},
    ]


def test_every_shipped_rule_runs_against_the_real_schema(db: Database) -> None:
    """Each default rule's query (and its `while`) executes, on empty and on seeded tables."""
    cfg = load_config([])

    async def measure_all() -> dict[str, Any]:
        out = {}
        async with db.async_engine.connect() as conn:
            for rule in cfg.rules:
                out[rule.name] = await measure(conn, rule, rule.group_by, T0)
                for cond in rule.while_:
                    await measure(conn, cond, [], T0)
        await db.async_engine.dispose()
        return out

    empty = asyncio.run(measure_all())
    assert empty["CostOverBudget"][0].value == 0.0  # a sum of nothing is 0
    assert all(not samples for name, samples in empty.items() if name != "CostOverBudget")

    seed_telemetry(db)
    seeded = asyncio.run(measure_all())
    value = {name: [(dict(s.labels), s.value) for s in samples] for name, samples in seeded.items()}
    assert value["GPUSaturated"] == [({"host": "h1", "gpu": "0"}, 90.0)]
    assert value["GPUMemoryFull"] == [({"host": "h1", "gpu": "0"}, 97.5)]
    assert value["KVCacheFull"] == [({"engine": "vllm-a", "model": MODEL}, 95.0)]
    assert value["QueueBuildingUp"] == [({"engine": "vllm-a", "model": MODEL}, 12.0)]
    assert value["ToxicityRateHigh"] == [({"model": MODEL}, 0.25)]
    assert value["HallucinationRiskHigh"] == [({"model": MODEL}, 0.5)]
    assert value["NegativeFeedbackHigh"] == [({"model": MODEL}, 0.4)]
    assert value["ErrorRateHigh"] == [({"model": MODEL}, 0.25)]
    (ttft,) = value["TTFTHigh"]
    assert ttft == ({"model": MODEL}, 750.0)
    (cost,) = value["CostOverBudget"]
    assert cost[1] is not None and cost[1] > 0


def seed_telemetry(db: Database) -> None:
    """Known values in every source: 40 requests, GPU and engine samples, evaluations, feedback."""
    reqs = requests_at(T0 - timedelta(minutes=4), 40, error_every=4, ttft_s=0.75)
    store_requests(db, reqs)
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO model_prices VALUES ('SmolLM2*', 0.001, 0.002)"))
        for i in range(4):
            at = T0 - timedelta(seconds=10 + 15 * i)
            conn.execute(
                text(
                    "INSERT INTO gpu_samples (time, host, gpu_index, interval_s, name, "
                    "utilization_gpu, memory_used_bytes, memory_total_bytes) "
                    "VALUES (:t, 'h1', 0, 5, 'NVIDIA H100', 90, 78, 80)"
                ),
                {"t": at},
            )
        engine_id = conn.execute(
            text("INSERT INTO engines (name, url) VALUES ('vllm-a', 'http://a') RETURNING id")
        ).scalar_one()
        for i in range(8):
            conn.execute(
                text(
                    "INSERT INTO engine_samples (time, engine_id, model, requests_waiting, "
                    "kv_cache_usage, finished_by_reason) VALUES (:t, :e, :m, 12, 0.95, '{}')"
                ),
                {"t": T0 - timedelta(seconds=5 + 10 * i), "e": engine_id, "m": MODEL},
            )
        for i, req in enumerate(reqs[:20]):
            for evaluator, flagged in (
                ("toxicity", i % 4 == 0),
                ("hallucination-grounding", i % 2 == 0),
            ):
                conn.execute(
                    text(
                        "INSERT INTO evaluations (trace_id, span_id, evaluator, "
                        "evaluator_version, score, flagged, created_at) "
                        "VALUES (:t, :s, :e, '1', :score, :f, :at)"
                    ),
                    {
                        "t": req.trace_id.hex(),
                        "s": req.gateway_span_id.hex(),
                        "e": evaluator,
                        "score": 0.9 if flagged else 0.1,
                        "f": flagged,
                        "at": T0 - timedelta(minutes=2),
                    },
                )
            if i < 10:
                conn.execute(
                    text(
                        "INSERT INTO feedback (trace_id, kind, score, normalized, metadata, "
                        "received_at) VALUES (:t, 'thumbs', :s, :n, '{}', :at)"
                    ),
                    {
                        "t": req.trace_id.hex(),
                        "s": -1 if i % 5 < 2 else 1,
                        "n": 0.0 if i % 5 < 2 else 1.0,
                        "at": T0 - timedelta(minutes=1),
                    },
                )


def test_metrics_expose_alert_states_and_rule_values(db: Database, tmp_path: Path) -> None:
    cfg = config(tmp_path)
    store_requests(db, requests_at(T0 - timedelta(seconds=59), 30, spacing_s=2, error_every=3))
    registry = CollectorRegistry()
    metrics = AlertMetrics(registry)
    engine = AlertEngine(db, cfg, metrics, clock=Clock())
    metrics.expose(lambda: engine.instances, lambda: engine.values)
    asyncio.run(engine.tick(T0))
    exposed = generate_latest(registry).decode()
    assert (
        'inferwatch_alerts{alertname="ErrorsTight",alertstate="pending",'
        f'model="{MODEL}",severity="critical"}} 1.0'
    ) in exposed
    assert (
        f'inferwatch_alert_rule_value{{alertname="ErrorsTight",model="{MODEL}"}} 0.333' in exposed
    )
    assert (
        'inferwatch_alerting_rule_evaluations_total{result="ok",rule="ErrorsTight"} 1.0' in exposed
    )


def test_rules_with_their_own_interval_are_evaluated_less_often(db: Database) -> None:
    engine = engine_for(db, load_config([]), Clock())
    asyncio.run(engine.tick(T0))
    due = {rule.name for rule in engine.due(T0 + timedelta(seconds=15))}
    assert "TTFTHigh" in due and "CostOverBudget" not in due  # every 5 minutes
    assert "CostOverBudget" in {rule.name for rule in engine.due(T0 + timedelta(minutes=5))}


def test_a_removed_rule_resolves_its_alerts_then_forgets_them(db: Database, tmp_path: Path) -> None:
    cfg = breaching_at_once(db, tmp_path)
    without = AlertConfig([], cfg.receivers, cfg.route)

    async def scenario() -> None:
        clock = Clock()
        await engine_for(db, cfg, clock).tick(T0)
        engine = engine_for(db, without, clock)
        made = await engine.tick(T0 + timedelta(seconds=15))
        assert [(t.rule, t.from_state, t.to_state) for t in made] == [
            ("ErrorsTight", "firing", "inactive")
        ]
        await engine.tick(T0 + timedelta(minutes=1))  # the group's next flush: resolved
        await engine.tick(T0 + timedelta(minutes=20))  # past the retention: forgotten

    asyncio.run(scenario())
    assert rows(db, "SELECT status FROM alert_deliveries ORDER BY id") == [
        {"status": "firing"},
        {"status": "resolved"},
    ]
    assert rows(db, "SELECT count(*) AS n FROM alert_states") == [{"n": 0}]
