"""How long each dashboard page's queries take over a large history, and what the rollups cost.

    python -m bench.dashboard [--requests 1000000] [--days 7] [--gpus 8] [--runs 7]

Fills a fresh embedded Postgres (temporary home) with ``--requests`` LLM
requests (a gateway span and a vLLM child span each, three models, 2 % errors)
spread over ``--days`` up to now, evaluations for 10 % of them, feedback for
2 %, a sample per GPU every 10 s and an engine sample per model every 10 s.
Then it times:

- the rollups built from scratch (what the migration's first pass costs on an
  existing database), and one incremental pass after a minute of new requests;
- every page, run through Streamlit's AppTest exactly as a browser session
  runs it, over several time ranges (chosen in the sidebar, as a user does),
  with the result cache cleared before each run: the time spent in ``ui.data``
  queries (p50 and p95 of ``--runs``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from collector.rollups import refresh_database
from inferwatch.store import migrate
from inferwatch.store.database import Database, libpq_url

BATCH = 200_000
RANGES = ("Last hour", "Last 24 hours", "Last 7 days", "Last 30 days")

# One request: random facts, then its gateway span and its vLLM span.
REQUESTS = """
CREATE TEMP TABLE r ON COMMIT DROP AS
SELECT i, md5(i::text) AS trace_id, left(md5(i::text || 'g'), 16) AS gw,
       left(md5(i::text || 'e'), 16) AS en,
       :end - make_interval(secs => (:n - i) * :spacing) AS t0,
       (ARRAY['llama-3-8b', 'qwen-2.5-7b', 'SmolLM2-135M-Instruct'])[1 + i % 3] AS model,
       random() * 50 AS queue, 5 + random() * 300 AS prefill, 1 + (random() * 400)::int AS out,
       50 + (random() * 2000)::int AS inp, 5 + random() * 40 AS tpot, random() < 0.02 AS failed
FROM generate_series(:lo, :hi - 1) AS i;
INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, service_name, start_time,
    end_time, start_time_unix_nano, end_time_unix_nano, duration_ms, status_code, resource,
    attributes, events, links, is_llm, operation, provider, model, input_tokens, output_tokens,
    ttft_ms, tpot_ms, e2e_ms, finish_reason, received_at)
SELECT trace_id, gw, NULL, 'chat ' || model, 'CLIENT', 'inferwatch-gateway', t0,
       t0 + make_interval(secs => (queue + prefill + out * tpot + 3) / 1000),
       0, 0, queue + prefill + out * tpot + 3, CASE WHEN failed THEN 'ERROR' ELSE 'UNSET' END,
       '{}', '{}', '[]', '[]', true, 'chat', 'vllm', model, inp, out, queue + prefill + 2, tpot,
       queue + prefill + out * tpot + 3, 'stop',
       COALESCE(:stored, t0 + make_interval(secs => (queue + prefill + out * tpot) / 1000 + 1))
FROM r;
INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, service_name, start_time,
    end_time, start_time_unix_nano, end_time_unix_nano, duration_ms, status_code, resource,
    attributes, events, links, is_llm, operation, provider, model, input_tokens, output_tokens,
    ttft_ms, e2e_ms, queue_ms, prefill_ms, decode_ms, received_at)
SELECT trace_id, en, gw, 'llm_request', 'SERVER', 'vllm', t0 + interval '1 ms',
       t0 + make_interval(secs => (queue + prefill + out * tpot + 2) / 1000), 0, 0,
       queue + prefill + out * tpot + 1, 'UNSET', '{}', '{}', '[]', '[]', true, 'chat', 'vllm',
       model, inp, out, queue + prefill + 1, queue + prefill + out * tpot + 1, queue, prefill,
       out * tpot,
       COALESCE(:stored, t0 + make_interval(secs => (queue + prefill + out * tpot) / 1000 + 1))
FROM r;
INSERT INTO evaluations (trace_id, span_id, evaluator, evaluator_version, score, flagged,
    created_at)
SELECT trace_id, gw, e.name, '1', s.score, s.score > 0.5,
       COALESCE(:stored, t0 + interval '30 seconds')
FROM r, (VALUES ('toxicity'), ('hallucination-grounding')) AS e (name),
     LATERAL (SELECT random() ^ 4 AS score) AS s
WHERE i % 10 = 0;
INSERT INTO feedback (trace_id, kind, score, normalized, metadata, received_at)
SELECT trace_id, 'thumbs', CASE WHEN i % 3 = 0 THEN -1 ELSE 1 END,
       CASE WHEN i % 3 = 0 THEN 0 ELSE 1 END, '{}', t0 + interval '20 seconds'
FROM r WHERE i % 50 = 0;
"""
TELEMETRY = [
    """
    INSERT INTO gpu_samples (time, host, gpu_index, interval_s, name, utilization_gpu,
        utilization_memory, memory_used_bytes, memory_total_bytes, power_w, temperature_c)
    SELECT :end - make_interval(secs => s * 10), 'bench', g, 10, 'NVIDIA H100 80GB HBM3',
           (s * 7 + g) % 100, (s * 3 + g) % 100, ((s + g) % 80) * 1073741824::bigint,
           85899345920, 300 + (s % 400), 40 + s % 40
    FROM generate_series(0, :samples - 1) AS s, generate_series(0, :gpus - 1) AS g
    """,
    "INSERT INTO engines (id, name, url) OVERRIDING SYSTEM VALUE VALUES (1, 'e', 'http://e')",
    """
    INSERT INTO engine_samples (time, engine_id, model, requests_running, requests_waiting,
        kv_cache_usage, prompt_tokens, generation_tokens, prefix_cache_queries,
        prefix_cache_hits, preemptions, finished_by_reason)
    SELECT :end - make_interval(secs => s * 10), 1, m, s % 16, s % 5, (s % 100) / 100.0,
           (:samples - s) * 9000.0, (:samples - s) * 4000.0, (:samples - s) * 100.0,
           (:samples - s) * 60.0, 0, '{}'
    FROM generate_series(0, :samples - 1) AS s,
         unnest(ARRAY['llama-3-8b', 'qwen-2.5-7b', 'SmolLM2-135M-Instruct']) AS m
    """,
    "INSERT INTO gpu_prices VALUES ('H100', 2.5) ON CONFLICT DO NOTHING",
    "INSERT INTO model_prices VALUES ('llama-3-*', 0.0002, 0.0006)",
]


@contextmanager
def timed(label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"{label}: {time.perf_counter() - started:.1f} s", flush=True)


def fill(db: Database, requests: int, days: float, gpus: int) -> datetime:
    end = datetime.now(UTC).replace(microsecond=0)
    spacing = days * 86400 / requests
    for lo in range(0, requests, BATCH):
        with db.engine.begin() as conn:
            hi = min(requests, lo + BATCH)
            for statement in REQUESTS.split(";\n"):
                if statement.strip():
                    params = {
                        "end": end,
                        "n": requests,
                        "spacing": spacing,
                        "lo": lo,
                        "hi": hi,
                        "stored": None,  # a while after each request, as the collector would
                    }
                    conn.execute(text(statement), params)
        print(f"  {hi:,} requests", flush=True)
    samples = int(days * 86400 / 10)
    with db.engine.begin() as conn:
        for statement in TELEMETRY:
            conn.execute(text(statement), {"end": end, "samples": samples, "gpus": gpus})
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    return end


def rollups(db: Database) -> dict[str, int]:
    return asyncio.run(refresh_database(db))


def _page_script(path: str) -> None:
    """One page as ui/app.py runs it."""
    from ui.panels import run_page

    run_page(path)


def page_query_seconds(path: str, choice: str) -> float:
    """Runs the page once (cold cache); the seconds its ui.data calls took."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from ui import data

    spent = [0.0]
    originals: dict[str, Callable[..., Any]] = {}
    for name in dir(data):
        function = getattr(data, name)
        if callable(function) and getattr(function, "__module__", "") == data.__name__:
            originals[name] = function

            def timing(*args: Any, _f: Callable[..., Any] = function, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return _f(*args, **kwargs)
                finally:
                    spent[0] += time.perf_counter() - started

            setattr(data, name, timing)
    try:
        at = AppTest.from_function(_page_script, args=(path,), default_timeout=120)
        at.run()
        st.cache_data.clear()
        spent[0] = 0.0  # the run that counts: the range chosen, as a user does
        at.sidebar.selectbox(key="range").select(choice).run()
        if at.exception:
            raise RuntimeError(f"{path}: {at.exception[0].value}")
    finally:
        for name, function in originals.items():
            setattr(data, name, function)
    return spent[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        db = Database(home=Path(home))
        try:
            migrate.upgrade(db.engine)
            with timed(f"fill: {args.requests:,} requests over {args.days:g} days"):
                fill(db, args.requests, args.days, args.gpus)
            with timed("rollups from scratch"):
                built = rollups(db)
            print(f"  minutes rebuilt: {built}")
            with timed("fill: one more minute of requests"):
                now = datetime.now(UTC)
                with db.engine.begin() as conn:
                    for statement in REQUESTS.split(";\n"):
                        if statement.strip():
                            conn.execute(
                                text(statement),
                                {
                                    "end": now,
                                    "n": args.requests + 100,
                                    "spacing": 0.6,
                                    "lo": args.requests,
                                    "hi": args.requests + 100,
                                    "stored": now,
                                },
                            )
            started = time.perf_counter()
            passed = rollups(db)
            print(f"incremental pass: {time.perf_counter() - started:.2f} s, minutes {passed}")
            os.environ["INFERWATCH_DATABASE_URL"] = libpq_url(db.url)
            os.environ["INFERWATCH_ALERTING__PORT"] = "9"
            print(f"\nquery time per page (s), {args.runs} cold-cache runs: p50 / p95")
            print(f"{'page':<10}" + "".join(f"{r:>22}" for r in RANGES))
            from ui.panels import PAGES

            for page in PAGES:
                cells = []
                for choice in RANGES:
                    times = sorted(page_query_seconds(page.PATH, choice) for _ in range(args.runs))
                    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
                    cells.append(f"{statistics.median(times):.3f} / {p95:.3f}")
                print(f"{page.PATH:<10}" + "".join(f"{c:>22}" for c in cells), flush=True)
        finally:
            db.close()


if __name__ == "__main__":
    main()
