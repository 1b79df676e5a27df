"""The rollups equal the views they summarise, stay so as data arrives late, and are incremental."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from collector.rollups import refresh_database
from inferwatch.store.database import Database
from tests.seed import requests_at, store_requests

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _refresh(db: Database) -> dict[str, int]:
    return asyncio.run(refresh_database(db))


def _rows(db: Database, query: str, **params: Any) -> list[Any]:
    with db.engine.connect() as conn:
        return list(conn.execute(text(query), params))


def test_request_rollups_equal_the_view_per_minute_and_hour(db: Database) -> None:
    store_requests(db, requests_at(T0, 150, spacing_s=1.5, error_every=7))
    store_requests(db, requests_at(T0, 20, spacing_s=9, model="other", seed=1))
    assert _refresh(db)["requests"] == 4  # 10:00 to 10:03

    expected = _rows(
        db,
        "SELECT date_trunc('minute', started_at), model, count(*), "
        "count(*) FILTER (WHERE status = 'error'), sum(input_tokens), sum(output_tokens), "
        "sum(ttft_ms), sum(e2e_ms), sum(decode_ms) FROM llm_requests GROUP BY 1, 2 ORDER BY 1, 2",
    )
    minute = _rows(
        db,
        "SELECT bucket, model, requests, errors, input_tokens, output_tokens, ttft_ms_sum, "
        "e2e_ms_sum, decode_ms_sum FROM rollup_requests WHERE resolution = 'minute' "
        "ORDER BY 1, 2",
    )
    assert len(minute) == len(expected) == 7
    for got, want in zip(minute, expected, strict=True):
        assert got[:6] == want[:6]
        assert got[6:] == pytest.approx(want[6:])
    hour = _rows(
        db,
        "SELECT model, requests, errors, output_tokens FROM rollup_requests "
        "WHERE resolution = 'hour' AND bucket = :t0 ORDER BY model",
        t0=T0,
    )
    assert [tuple(r) for r in hour] == [
        ("SmolLM2-135M-Instruct", 150, 22, sum(r[5] for r in expected if r[1] != "other")),
        ("other", 20, 0, sum(r[5] for r in expected if r[1] == "other")),
    ]


def test_percentiles_from_the_histogram_are_within_five_percent(db: Database) -> None:
    store_requests(db, requests_at(T0, 400, spacing_s=0.5))
    _refresh(db)
    for metric in ("ttft", "e2e", "tpot", "queue"):
        for q in (0.5, 0.95, 0.99):
            (exact,) = _rows(
                db,
                f"SELECT percentile_disc(:q) WITHIN GROUP (ORDER BY {metric}_ms) FROM llm_requests",
                q=q,
            )[0]
            (approx,) = _rows(
                db,
                "WITH h AS (SELECT bin, sum(requests) AS n FROM rollup_latency "
                "WHERE resolution = 'hour' AND metric = :m GROUP BY bin), "
                "c AS (SELECT bin, sum(n) OVER (ORDER BY bin) AS cum, sum(n) OVER () AS total "
                "FROM h) SELECT latency_bin_ms(min(bin)) FROM c WHERE cum >= :q * total",
                m=metric,
                q=q,
            )[0]
            assert math.isclose(approx, exact, rel_tol=0.05) or exact < 0.1, (metric, q)


def test_late_spans_update_their_minute_and_old_minutes_are_not_rebuilt(db: Database) -> None:
    store_requests(db, requests_at(T0, 60, spacing_s=2))
    assert _refresh(db)["requests"] == 2
    # Everything so far was stored long before the cursor: nothing is dirty any more.
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE spans SET received_at = received_at - interval '1 hour'"))
        conn.execute(text("UPDATE rollup_cursors SET watermark = now() - interval '5 minutes'"))
    assert _refresh(db)["requests"] == 0
    # A request for 10:01 arrives late, and one for 11:30.
    store_requests(db, requests_at(T0 + timedelta(seconds=70), 1, seed=5))
    store_requests(db, requests_at(T0 + timedelta(minutes=90), 1, seed=6))
    assert _refresh(db)["requests"] == 2
    counts = _rows(
        db,
        "SELECT resolution, bucket, requests FROM rollup_requests ORDER BY resolution, bucket",
    )
    assert [(r[0], r[1], r[2]) for r in counts] == [
        ("hour", T0, 61),
        ("hour", T0 + timedelta(hours=1), 1),
        ("minute", T0, 30),
        ("minute", T0 + timedelta(minutes=1), 31),
        ("minute", T0 + timedelta(minutes=90), 1),
    ]


def test_token_cost_and_unpriced_tokens(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO model_prices VALUES ('priced-*', 0.5, 1.5)"))
    store_requests(db, requests_at(T0, 10, model="priced-a"))
    store_requests(db, requests_at(T0, 10, model="free", seed=2))
    _refresh(db)
    rows = {
        r[0]: (r[1], r[2])
        for r in _rows(
            db,
            "SELECT model, token_cost_usd, unpriced_tokens FROM rollup_requests "
            "WHERE resolution = 'minute'",
        )
    }
    (cost,) = _rows(
        db,
        "SELECT sum(input_tokens) / 1000.0 * 0.5 + sum(output_tokens) / 1000.0 * 1.5 "
        "FROM llm_requests WHERE model = 'priced-a'",
    )[0]
    assert rows["priced-a"] == (pytest.approx(float(cost)), 0)
    (free_tokens,) = _rows(
        db, "SELECT sum(input_tokens + output_tokens) FROM llm_requests WHERE model = 'free'"
    )[0]
    assert rows["free"] == (0, free_tokens)


def test_evaluations_count_the_latest_version_in_the_request_minute(db: Database) -> None:
    store_requests(db, requests_at(T0 + timedelta(seconds=30), 4, spacing_s=20))
    with db.engine.begin() as conn:
        ids = list(conn.execute(text("SELECT trace_id, span_id FROM llm_requests ORDER BY 1")))
        for i, (trace_id, span_id) in enumerate(ids):
            for version, score in (("1", 0.9), ("2", 0.1 * i)):
                conn.execute(
                    text(
                        "INSERT INTO evaluations (trace_id, span_id, evaluator, "
                        "evaluator_version, score, flagged, created_at) VALUES (:t, :s, 'tox', "
                        ":v, CAST(:score AS float8), CAST(:score AS float8) > 0.15, "
                        "now() + :secs * interval '1 s')"
                    ),
                    {
                        "t": trace_id,
                        "s": span_id,
                        "v": version,
                        "secs": int(version),
                        "score": score,
                    },
                )
    assert _refresh(db)["evaluations"] == 2
    got = _rows(
        db,
        "SELECT sum(scored), sum(flagged), sum(score_sum) FROM rollup_evaluations "
        "WHERE resolution = 'minute'",
    )[0]
    assert tuple(got) == (4, 2, pytest.approx(0.6))


def test_gpu_and_engine_rollups(db: Database) -> None:
    with db.engine.begin() as conn:
        for i in range(12):  # 5 s apart: one minute
            conn.execute(
                text(
                    "INSERT INTO gpu_samples (time, host, gpu_index, interval_s, name, "
                    "utilization_gpu, memory_used_bytes, power_w, temperature_c) VALUES "
                    "(now() - interval '1 minute' * 0 - :ago * interval '1 s', 'h', 0, 5, "
                    "'NVIDIA H100', :u, :m, 300, :t)"
                ),
                {"ago": 60 - 5 * i, "u": 10.0 * i, "m": 1000 * i, "t": 40 + i},
            )
        engine_id = conn.execute(
            text("INSERT INTO engines (name, url) VALUES ('e', 'http://e') RETURNING id")
        ).scalar_one()
        # generation_tokens 0, 100, 250, then a restart (reset to 30), then 80.
        for ago, tokens, waiting in (
            (40, 0, 1),
            (30, 100, 3),
            (20, 250, 2),
            (10, 30, 0),
            (0, 80, 0),
        ):
            conn.execute(
                text(
                    "INSERT INTO engine_samples (time, engine_id, model, requests_waiting, "
                    "generation_tokens, finished_by_reason) VALUES "
                    "(date_trunc('minute', now()) - :ago * interval '1 s' + interval '50 s', "
                    ":e, 'm', :w, :g, '{}')"
                ),
                {"ago": ago, "e": engine_id, "w": waiting, "g": tokens},
            )
    _refresh(db)
    gpu = _rows(
        db,
        "SELECT sum(samples), sum(utilization_sum) / sum(samples), max(utilization_max), "
        "max(memory_used_max_bytes), max(temperature_max_c) FROM rollup_gpu "
        "WHERE resolution = 'hour'",
    )[0]
    assert tuple(gpu) == (12, pytest.approx(55.0), 110.0, 11000, 51.0)
    engine = _rows(
        db,
        "SELECT sum(samples), sum(generation_tokens), max(requests_waiting_max), "
        "sum(interval_s) FROM rollup_engine WHERE resolution = 'hour'",
    )[0]
    assert tuple(engine) == (5, 100 + 150 + 30 + 50, 3, 40)


def test_a_pass_holds_its_cursor_so_concurrent_passes_do_not_interleave(db: Database) -> None:
    store_requests(db, requests_at(T0, 10))

    async def both() -> list[dict[str, int]]:
        return list(await asyncio.gather(refresh_database(db), refresh_database(db)))

    asyncio.run(both())
    (count,) = _rows(db, "SELECT sum(requests) FROM rollup_requests WHERE resolution = 'minute'")[0]
    assert count == 10
    with psycopg.connect(db.url.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT count(*) FROM rollup_cursors").fetchone() == (4,)


def test_a_pass_that_analyzes_still_commits_every_source(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("collector.rollups.ANALYZE_AFTER_MINUTES", 1)
    store_requests(db, requests_at(T0, 10))
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO gpu_samples (time, host, gpu_index, interval_s, utilization_gpu) "
                "VALUES (now(), 'h', 0, 5, 50)"
            )
        )
    assert _refresh(db)["gpu"] == 1
    # Read back on another connection: everything the pass wrote was committed.
    assert _rows(db, "SELECT count(*) FROM rollup_gpu")[0][0] == 2  # its minute and hour
    assert _rows(db, "SELECT count(*) FROM rollup_cursors")[0][0] == 4
