"""How fast the views that join requests to GPU, engine and cost data answer dashboard queries.

    python -m bench.joined_views [--requests 100000] [--hours 24] [--gpus 8]

Fills a fresh embedded Postgres (temporary home) with ``--requests`` LLM
requests spread over ``--hours``, a GPU sample per GPU every 5 s and an engine
sample every 5 s over the same span, then times the queries a dashboard runs
over the last hour and the last day (best of 5 runs each, after a warm-up).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from inferwatch.store import migrate
from inferwatch.store.database import Database

FILL = [
    # Gateway-shaped LLM spans, one per request (no engine child: the join cost is the point).
    """
    INSERT INTO spans (trace_id, span_id, name, kind, start_time, end_time,
        start_time_unix_nano, end_time_unix_nano, duration_ms, status_code, resource,
        attributes, events, links, is_llm, model, input_tokens, output_tokens, ttft_ms,
        e2e_ms, operation)
    SELECT md5(i::text), left(md5(i::text || 's'), 16), 'chat m', 'CLIENT', t,
           t + make_interval(secs => e2e), 0, 0, e2e * 1000, 'UNSET', '{}', '{}', '[]', '[]',
           true, 'model-' || (i % 3), 200 + i % 500, 50 + i % 300, 80 + i % 50, e2e * 1000,
           'chat'
    FROM (SELECT i, :start + make_interval(secs => i * :spacing) AS t, 0.5 + (i % 40) / 10.0 AS e2e
          FROM generate_series(0, :requests - 1) AS i) AS r
    """,
    """
    INSERT INTO gpu_samples (time, host, gpu_index, interval_s, name, utilization_gpu,
        utilization_memory, memory_used_bytes, memory_total_bytes, power_w)
    SELECT :start + make_interval(secs => s * 5), 'bench', g, 5, 'NVIDIA H100 80GB HBM3',
           (s * 7 + g) % 100, (s * 3 + g) % 100, ((s + g) % 80) * 1073741824::bigint,
           85899345920, 300 + (s % 400)
    FROM generate_series(0, :samples - 1) AS s, generate_series(0, :gpus - 1) AS g
    """,
    "INSERT INTO engines (id, name, url) OVERRIDING SYSTEM VALUE VALUES (1, 'e', 'http://e')",
    """
    INSERT INTO engine_samples (time, engine_id, model, requests_running, requests_waiting,
        kv_cache_usage, prompt_tokens, generation_tokens, finished_by_reason)
    SELECT :start + make_interval(secs => s * 5), 1, 'model-' || m, s % 16, s % 5,
           (s % 100) / 100.0, s * 900.0, s * 400.0, '{}'
    FROM generate_series(0, :samples - 1) AS s, generate_series(0, 2) AS m
    """,
]

QUERIES = {
    "slowest 10 of the last hour, with GPU and engine context": """
        SELECT q.trace_id, q.e2e_ms, g.gpu_utilization_mean, g.engine_requests_waiting
        FROM llm_requests q JOIN llm_request_gpu g USING (trace_id, span_id)
        WHERE q.started_at > :end - interval '1 hour'
        ORDER BY q.e2e_ms DESC LIMIT 10""",
    "GPU context of every request of the last hour (mean per model)": """
        SELECT model, avg(gpu_utilization_mean), max(gpu_memory_used_max_bytes),
               avg(engine_kv_cache_usage)
        FROM llm_request_gpu WHERE started_at > :end - interval '1 hour' GROUP BY model""",
    "engine rates by minute, last hour": """
        SELECT date_trunc('minute', time), model, avg(generation_tokens_per_s)
        FROM engine_rates WHERE time > :end - interval '1 hour' GROUP BY 1, 2""",
    "cost by model, last hour": """
        SELECT model, sum(cost_usd) FROM llm_request_costs
        WHERE started_at > :end - interval '1 hour' GROUP BY model""",
    "cost per hour and model, last day (cost_hourly)": """
        SELECT * FROM cost_hourly WHERE hour > :end - interval '1 day'""",
}


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--gpus", type=int, default=8)
    return parser.parse_args()


@contextmanager
def filled_database(
    args: argparse.Namespace, extra: Sequence[str] = ()
) -> Iterator[tuple[Database, datetime]]:
    """A fresh embedded database filled by FILL (then ``extra``); yields it and the data's end."""
    seconds = args.hours * 3600
    with tempfile.TemporaryDirectory() as home:
        db = Database(home=Path(home))
        try:
            migrate.upgrade(db.engine)
            start = datetime(2026, 11, 1, tzinfo=UTC)
            params = {
                "start": start,
                "requests": args.requests,
                "spacing": seconds / args.requests,
                "samples": int(seconds / 5),
                "gpus": args.gpus,
            }
            t0 = time.perf_counter()
            with db.engine.begin() as conn:
                for statement in [*FILL, *extra, "ANALYZE"]:
                    conn.execute(text(statement), params)
            print(
                f"{args.requests:,} requests, {int(seconds / 5) * args.gpus:,} GPU samples, "
                f"{int(seconds / 5) * 3:,} engine samples over {args.hours:g} h "
                f"(filled in {time.perf_counter() - t0:.1f} s)\n"
            )
            yield db, start + timedelta(seconds=seconds)
        finally:
            db.close()


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0])
    with filled_database(args) as (db, end), db.engine.connect() as conn:
        for name, query in QUERIES.items():
            conn.execute(text(query), {"end": end}).all()  # warm-up
            times = []
            for _ in range(5):
                t = time.perf_counter()
                rows = conn.execute(text(query), {"end": end}).all()
                times.append(time.perf_counter() - t)
            print(f"{min(times) * 1000:9.1f} ms  {len(rows):6d} rows  {name}")


if __name__ == "__main__":
    main()
