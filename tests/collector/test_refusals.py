"""Bad input and overload: clear refusals, nothing partial stored, the process stays up."""

from __future__ import annotations

import concurrent.futures
import gzip
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from sqlalchemy.engine import make_url

from collector import synthetic
from inferwatch.settings import CollectorSettings
from inferwatch.store.database import Database, libpq_url
from tests.collector.conftest import Collector, run_collector

PROTOBUF = {"Content-Type": "application/x-protobuf"}
T0 = 1_763_700_000_000_000_000


def body_of(n: int, seed: int = 7) -> bytes:
    reqs = synthetic.random_requests(n, seed=seed, start_ns=T0)
    return synthetic.export_request(reqs).SerializeToString()


def status_of(response: httpx.Response) -> status_pb2.Status:
    if response.headers["content-type"].startswith("application/json"):
        payload = response.json()
        return status_pb2.Status(code=payload.get("code", 0), message=payload["message"])
    return status_pb2.Status.FromString(response.content)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.02)


# --- bad input -------------------------------------------------------------------------------


def test_undecodable_protobuf_is_400_and_stores_nothing(collector: Collector) -> None:
    response = collector.http.post("/v1/traces", content=b"\x0a\xff\xff\xff", headers=PROTOBUF)
    assert response.status_code == 400
    status = status_of(response)
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert "ExportTraceServiceRequest" in status.message
    assert collector.count() == 0


def test_invalid_json_is_400_in_json(collector: Collector) -> None:
    response = collector.http.post(
        "/v1/traces", content=b'{"resourceSpans": [', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert "not valid JSON" in response.json()["message"]
    assert collector.count() == 0


def test_json_of_the_wrong_shape_is_400(collector: Collector) -> None:
    response = collector.http.post("/v1/traces", json={"resourceSpans": {"oops": 1}})
    assert response.status_code == 400
    assert "must be an array" in response.json()["message"]
    assert collector.count() == 0


def test_unknown_content_type_is_415(collector: Collector) -> None:
    response = collector.http.post(
        "/v1/traces", content=b"hello", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert "text/plain" in response.json()["message"]
    assert collector.count() == 0


def test_unknown_content_encoding_is_415(collector: Collector) -> None:
    response = collector.http.post(
        "/v1/traces", content=body_of(1), headers={**PROTOBUF, "Content-Encoding": "br"}
    )
    assert response.status_code == 415
    assert "br" in status_of(response).message
    assert collector.count() == 0


def test_truncated_gzip_is_400(collector: Collector) -> None:
    response = collector.http.post(
        "/v1/traces",
        content=gzip.compress(body_of(3))[:-20],
        headers={**PROTOBUF, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 400
    assert "gzip" in status_of(response).message
    assert collector.count() == 0


def test_not_gzip_at_all_is_400(collector: Collector) -> None:
    response = collector.http.post(
        "/v1/traces", content=body_of(1), headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 400
    assert collector.count() == 0


def test_body_over_the_limit_is_413(collector: Collector) -> None:
    big = body_of(2000)  # ~1.9 MB against a 1 MiB limit
    assert len(big) > 1024 * 1024
    response = collector.http.post("/v1/traces", content=big, headers=PROTOBUF)
    assert response.status_code == 413
    assert status_of(response).code == code_pb2.RESOURCE_EXHAUSTED
    assert collector.count() == 0


def test_over_limit_chunked_body_without_length_is_413(collector: Collector) -> None:
    big = body_of(2000)

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    response = collector.http.post("/v1/traces", content=chunks(), headers=PROTOBUF)
    assert response.status_code == 413
    assert collector.count() == 0


def test_gzip_bomb_is_413_without_inflating_it(collector: Collector) -> None:
    bomb = gzip.compress(b"\0" * (256 * 1024 * 1024), compresslevel=9)  # 256 MiB of zeros
    assert len(bomb) < 1024 * 1024
    tracemalloc.start()
    try:
        response = collector.http.post(
            "/v1/traces", content=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"}
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    assert "after decompression" in status_of(response).message
    assert peak < 16 * 1024 * 1024, f"peak Python allocation {peak} bytes"
    assert collector.count() == 0


def test_a_malformed_span_is_rejected_alone(collector: Collector) -> None:
    request = synthetic.export_request(synthetic.random_requests(3, seed=3))
    bad = request.resource_spans[1].scope_spans[0].spans[1]
    bad.trace_id = bad.trace_id[:15]
    backwards = request.resource_spans[0].scope_spans[0].spans[2]
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1
    response = collector.http.post(
        "/v1/traces", content=request.SerializeToString(), headers=PROTOBUF
    )
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 2
    assert "trace_id must be 16 bytes" in partial.error_message
    assert "ends before it starts" in partial.error_message
    assert collector.count() == 4
    assert collector.metric("inferwatch_collector_spans_rejected_total", {"reason": "invalid"}) == 2


def test_a_json_span_with_bad_hex_is_rejected_alone(collector: Collector) -> None:
    span = {
        "traceId": "ab" * 16,
        "spanId": "cd" * 8,
        "name": "ok",
        "startTimeUnixNano": str(T0),
        "endTimeUnixNano": str(T0 + 5),
    }
    document = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            span,
                            {**span, "spanId": "not-hex!"},
                            {**span, "spanId": "ef" * 8, "startTimeUnixNano": "soon"},
                        ]
                    }
                ]
            }
        ]
    }
    response = collector.http.post("/v1/traces", json=document)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "is not hex" in partial["errorMessage"]
    assert collector.count() == 1


# --- overload and outages --------------------------------------------------------------------


@contextmanager
def table_locked(db: Database) -> Iterator[None]:
    """Hold an exclusive lock on ``spans`` so the collector's writes block."""
    with psycopg.connect(libpq_url(db.url)) as conn:
        conn.execute("LOCK TABLE spans IN ACCESS EXCLUSIVE MODE")
        yield
        conn.rollback()


def writers_waiting_on_lock(db: Database) -> int:
    with psycopg.connect(libpq_url(db.url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def small_queue(db: Database) -> Iterator[Collector]:
    yield from run_collector(
        db, CollectorSettings(max_queued_spans=10, write_timeout_s=30, grpc_port=None)
    )


def test_full_queue_is_429_with_retry_after_and_queued_work_still_lands(
    small_queue: Collector,
) -> None:
    collector = small_queue

    def post(body: bytes) -> httpx.Response:
        return collector.http.post("/v1/traces", content=body, headers=PROTOBUF)

    writer = collector.app.state.writer
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        with table_locked(collector.db):
            in_flight = pool.submit(post, body_of(3, seed=1))  # 6 spans, taken by the writer
            wait_until(lambda: writers_waiting_on_lock(collector.db) == 1)
            queued = pool.submit(post, body_of(3, seed=2))  # 6 spans, waiting in the queue
            wait_until(lambda: writer.queued_spans == 6)
            refused = post(body_of(3, seed=3))  # 6 more would pass the 10-span limit
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "2"
            assert "already waiting" in status_of(refused).message
        assert in_flight.result().status_code == 200
        assert queued.result().status_code == 200
    assert collector.count() == 12
    assert (
        collector.metric("inferwatch_collector_spans_refused_total", {"reason": "queue_full"}) == 6
    )


def test_requests_waiting_during_a_commit_share_the_next_one(collector: Collector) -> None:
    def post(body: bytes) -> httpx.Response:
        return collector.http.post("/v1/traces", content=body, headers=PROTOBUF)

    writer = collector.app.state.writer
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        with table_locked(collector.db):
            first = pool.submit(post, body_of(1, seed=100))
            wait_until(lambda: writers_waiting_on_lock(collector.db) == 1)
            rest = [pool.submit(post, body_of(1, seed=s)) for s in range(7)]
            wait_until(lambda: writer.queued_spans == 14)
        assert [f.result().status_code for f in [first, *rest]] == [200] * 8
    assert collector.count() == 16
    assert collector.metric("inferwatch_collector_batches_written_total") == 2


@pytest.fixture
def impatient(db: Database) -> Iterator[Collector]:
    yield from run_collector(db, CollectorSettings(write_timeout_s=0.5, grpc_port=None))


def test_commit_slower_than_the_timeout_is_503_and_the_retry_is_idempotent(
    impatient: Collector,
) -> None:
    body = body_of(2)
    with table_locked(impatient.db):
        response = impatient.http.post("/v1/traces", content=body, headers=PROTOBUF)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "2"
        assert status_of(response).code == code_pb2.UNAVAILABLE
    # The timed-out write still commits once the lock is gone; the client's retry is a no-op.
    retry = impatient.http.post("/v1/traces", content=body, headers=PROTOBUF)
    assert retry.status_code == 200
    assert impatient.count() == 4


def test_database_outage_is_503_then_ingest_resumes(collector: Collector) -> None:
    first = collector.http.post("/v1/traces", content=body_of(1, seed=1), headers=PROTOBUF)
    assert first.status_code == 200
    name = make_url(collector.db.url).database
    admin = libpq_url(make_url(collector.db.url).set(database="postgres").render_as_string(False))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        try:
            down = collector.http.post("/v1/traces", content=body_of(1, seed=2), headers=PROTOBUF)
            assert down.status_code == 503
            assert down.headers["Retry-After"] == "2"
            assert "database" in status_of(down).message
            ready = collector.http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["database"].startswith("unreachable")
            assert collector.metric("inferwatch_collector_database_up") == 0
        finally:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')

    def resumed() -> bool:
        r = collector.http.post("/v1/traces", content=body_of(1, seed=2), headers=PROTOBUF)
        return r.status_code == 200

    wait_until(resumed)
    assert collector.count() == 4
    assert collector.http.get("/readyz").status_code == 200


def test_a_full_queue_refuses_before_reading_the_body(small_queue: Collector) -> None:
    collector = small_queue
    writer = collector.app.state.writer

    def post(body: bytes) -> httpx.Response:
        return collector.http.post("/v1/traces", content=body, headers=PROTOBUF)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        with table_locked(collector.db):
            in_flight = pool.submit(post, body_of(3, seed=1))
            wait_until(lambda: writers_waiting_on_lock(collector.db) == 1)
            queued = pool.submit(post, body_of(5, seed=2))  # 10 spans: the queue is full
            wait_until(lambda: writer.full)
            refused = post(b"not even protobuf")  # refused as full, not as undecodable
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "2"
        assert in_flight.result().status_code == 200
        assert queued.result().status_code == 200
    assert collector.count() == 16
