"""The span writer against real Postgres: rows Postgres refuses are isolated, not fatal."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from collector import synthetic
from collector.decode import decode_protobuf
from collector.metrics import CollectorMetrics
from collector.writer import SpanWriter, WriterUnavailable
from inferwatch.settings import CollectorSettings
from inferwatch.store.database import Database


def test_a_row_postgres_refuses_is_rejected_and_the_rest_of_the_group_lands(db: Database) -> None:
    rows = decode_protobuf(
        synthetic.export_request(synthetic.random_requests(4, seed=5)).SerializeToString()
    ).rows
    poison = rows[3]._replace(attributes="{not json")  # the jsonb cast fails in Postgres
    first, second = rows[:3], [poison, *rows[4:]]
    metrics = CollectorMetrics(CollectorRegistry())

    async def scenario() -> tuple[int, int, list[str]]:
        writer = SpanWriter(db.connect_raw, CollectorSettings(), metrics)
        await writer.start()
        try:
            a, b = await asyncio.gather(writer.submit(first), writer.submit(second))
        finally:
            await writer.stop()
        return a.rejected, b.rejected, b.errors

    rejected_first, rejected_second, errors = asyncio.run(scenario())
    assert (rejected_first, rejected_second) == (0, 1)
    assert errors and poison.span_id in errors[0] and "json" in errors[0]
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM spans")).scalar_one()
    assert stored == 7
    assert (
        metrics.registry.get_sample_value(
            "inferwatch_collector_spans_rejected_total", {"reason": "database"}
        )
        == 1
    )


def test_stop_drains_what_is_queued_and_refuses_new_work(db: Database) -> None:
    rows = decode_protobuf(
        synthetic.export_request(synthetic.random_requests(3, seed=6)).SerializeToString()
    ).rows
    metrics = CollectorMetrics(CollectorRegistry())

    async def scenario() -> None:
        writer = SpanWriter(db.connect_raw, CollectorSettings(), metrics)
        await writer.start()
        pending = [asyncio.ensure_future(writer.submit([row])) for row in rows]
        await asyncio.sleep(0)  # let every submit enqueue
        await writer.stop()
        await asyncio.gather(*pending)
        with pytest.raises(WriterUnavailable, match="shutting down"):
            await writer.submit(rows)

    asyncio.run(scenario())
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM spans")).scalar_one() == 6
