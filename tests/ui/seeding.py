"""A database with something on every dashboard page: requests of two models over the last
hour (some failing, one with a known answer), evaluations, feedback, GPU and engine samples,
a firing alert, a silence; the rollups refreshed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from collector.rollups import refresh_database
from inferwatch.store.database import Database
from tests.seed import chat_texts, requests_at, store_requests

MODEL_A = "SmolLM2-135M-Instruct"
MODEL_B = "llama-3-8b"
ANSWER = "The Eiffel Tower is 330 metres tall."
SLOW_TTFT_S = 4.0


def seed_dashboard(db: Database, now: datetime | None = None) -> str:
    """Seeds ``db``; the trace id of the request whose answer is ``ANSWER``."""
    now = now or datetime.now(UTC)
    start = now - timedelta(minutes=50)
    a = requests_at(start, 120, spacing_s=20, error_every=10, model=MODEL_A)
    b = requests_at(start, 40, spacing_s=60, ttft_s=SLOW_TTFT_S, model=MODEL_B, seed=1)
    known = a[1]
    texts = {known.trace_id: chat_texts("How tall is the Eiffel Tower?", ANSWER)}
    store_requests(db, a + b, texts)
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO model_prices VALUES ('llama-3-*', 0.0002, 0.0006)"))
        conn.execute(text("INSERT INTO gpu_prices VALUES ('H100', 2.5) ON CONFLICT DO NOTHING"))
        ids = list(conn.execute(text("SELECT trace_id, span_id FROM llm_requests ORDER BY 1")))
        for i, (trace_id, span_id) in enumerate(ids):
            score = 0.9 if i % 8 == 0 else 0.05
            conn.execute(
                text(
                    "INSERT INTO evaluations (trace_id, span_id, evaluator, evaluator_version, "
                    "score, label, flagged, explanation) VALUES (:t, :s, 'toxicity', '1', "
                    ":score, :label, :flagged, 'synthetic')"
                ),
                {
                    "t": trace_id,
                    "s": span_id,
                    "score": score,
                    "flagged": score > 0.5,
                    "label": "toxic" if score > 0.5 else "ok",
                },
            )
            if i % 5 == 0:
                conn.execute(
                    text(
                        "INSERT INTO feedback (trace_id, kind, score, normalized, comment, "
                        "metadata) VALUES (:t, 'thumbs', :s, :n, :c, '{}')"
                    ),
                    {
                        "t": trace_id,
                        "s": -1 if i % 10 == 0 else 1,
                        "n": 0 if i % 10 == 0 else 1,
                        "c": "wrong answer" if i % 10 == 0 else None,
                    },
                )
        engine_id = conn.execute(
            text("INSERT INTO engines (name, url) VALUES ('vllm', 'http://v') RETURNING id")
        ).scalar_one()
        for k in range(60):  # one sample a minute for the last hour
            at = now - timedelta(minutes=59 - k)
            conn.execute(
                text(
                    "INSERT INTO gpu_samples (time, host, gpu_index, interval_s, name, "
                    "utilization_gpu, utilization_memory, memory_used_bytes, "
                    "memory_total_bytes, power_w, temperature_c) VALUES (:at, 'node-1', 0, 60, "
                    "'NVIDIA H100 80GB HBM3', :u, 40, 60e9, 80e9, 350, 61)"
                ),
                {"at": at, "u": 50 + k % 40},
            )
            conn.execute(
                text(
                    "INSERT INTO engine_samples (time, engine_id, model, requests_running, "
                    "requests_waiting, kv_cache_usage, generation_tokens, prefix_cache_queries, "
                    "prefix_cache_hits, preemptions, finished_by_reason) VALUES (:at, :e, :m, "
                    "3, :w, 0.4, :g, :q, :h, 0, '{}')"
                ),
                {
                    "at": at,
                    "e": engine_id,
                    "m": MODEL_A,
                    "w": k % 4,
                    "g": 1000.0 * k,
                    "q": 100.0 * k,
                    "h": 60.0 * k,
                },
            )
        conn.execute(
            text(
                "INSERT INTO alert_states (rule, fingerprint, labels, annotations, state, value, "
                "active_since, fired_at, evaluated_at) VALUES ('TTFTHigh', 'f1', "
                '\'{"alertname": "TTFTHigh", "severity": "warning", "model": '
                '"llama-3-8b"}\', \'{"summary": "p95 TTFT of llama-3-8b is 4000 ms"}\', '
                "'firing', 4000, :t, :t, now())"
            ),
            {"t": now - timedelta(minutes=10)},
        )
        conn.execute(
            text(
                "INSERT INTO alert_events (at, rule, fingerprint, labels, from_state, to_state, "
                "value) VALUES (:t, 'TTFTHigh', 'f1', '{\"severity\": \"warning\"}', "
                "'pending', 'firing', 4000)"
            ),
            {"t": now - timedelta(minutes=10)},
        )
        conn.execute(
            text(
                "INSERT INTO alert_silences (matchers, starts_at, ends_at, created_by, comment) "
                'VALUES (\'[{"name": "alertname", "op": "=", "value": "GPUHot"}]\', '
                "now(), now() + interval '1 hour', 'oncall', 'maintenance')"
            )
        )
    refresh_rollups(db)
    return known.trace_id.hex()


def refresh_rollups(db: Database) -> dict[str, int]:
    return asyncio.run(refresh_database(db))
