"""What one evaluation of the shipped alert rules costs, rule by rule and as a whole tick.

    python -m bench.alert_rules [--requests 100000] [--hours 24] [--gpus 8]

Fills a fresh embedded Postgres (temporary home) like ``bench.joined_views``
(requests, GPU and engine samples over ``--hours``), plus an evaluation of two
evaluators for every tenth request and feedback on every twentieth, then times
each default rule's queries at the end of that span (best of 5 after a
warm-up) and whole engine ticks (every rule due; then only the 15 s rules).
The engine runs every 15 s by default, so the tick time is the share of that
interval it spends.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry

from alerting.engine import AlertEngine
from alerting.metrics import AlertMetrics
from alerting.query import measure
from alerting.rules import load_config
from bench.joined_views import arguments, filled_database
from inferwatch.store.database import Database

MORE = [
    """
    INSERT INTO evaluations (trace_id, span_id, evaluator, evaluator_version, score, flagged,
        created_at)
    SELECT trace_id, span_id, e, '1', (hashtext(trace_id || e) & 1023) / 1023.0,
           (hashtext(trace_id || e) & 1023) > 900, start_time + interval '30 seconds'
    FROM spans, unnest(ARRAY['toxicity', 'hallucination-grounding']) AS e
    WHERE hashtext(trace_id) % 10 = 0
    """,
    """
    INSERT INTO feedback (trace_id, kind, score, normalized, metadata, received_at)
    SELECT trace_id, 'thumbs', s, (s + 1) / 2, '{}', start_time + interval '1 minute'
    FROM (SELECT trace_id, start_time,
                 CASE WHEN hashtext(trace_id) % 3 = 0 THEN -1 ELSE 1 END AS s
          FROM spans WHERE hashtext(trace_id) % 20 = 0) AS f
    """,
    "INSERT INTO model_prices VALUES ('model-*', 0.0005, 0.0015)",
]


async def timings(db: Database, end: datetime) -> None:
    config = load_config([])
    async with db.async_engine.connect() as conn:
        for rule in config.rules:
            best = float("inf")
            for attempt in range(6):
                t = time.perf_counter()
                samples = await measure(conn, rule, rule.group_by, end)
                for cond in rule.while_:
                    await measure(conn, cond, [], end)
                if attempt:  # the first is a warm-up
                    best = min(best, time.perf_counter() - t)
            values = ", ".join(f"{s.value:.3g}" for s in samples[:3] if s.value is not None)
            print(f"{best * 1000:9.1f} ms  {rule.name:24s} {len(samples):3d} series  {values}")
    engine = AlertEngine(db, config, AlertMetrics(CollectorRegistry()))
    ticks = []
    for i in range(6):
        t = time.perf_counter()
        await engine.tick(end + timedelta(seconds=15 * i))
        ticks.append(time.perf_counter() - t)
    print(
        f"\nwhole tick, every rule due: {ticks[0] * 1000:.0f} ms; "
        f"15 s rules only (cost every 5 min): median {sorted(ticks[1:])[2] * 1000:.0f} ms"
    )
    await db.async_engine.dispose()


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0])
    with filled_database(args, MORE) as (db, end):
        asyncio.run(timings(db, end))


if __name__ == "__main__":
    main()
