"""OTLP/gRPC ingest: the SDK's gRPC exporter, partial success, refusals as retryable codes."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from sqlalchemy import text

from collector import synthetic
from inferwatch.settings import CollectorSettings
from inferwatch.store.database import Database
from tests.collector.conftest import Collector, run_collector
from tests.collector.test_refusals import table_locked, wait_until, writers_waiting_on_lock

T0 = 1_763_700_000_000_000_000


def requests(n: int, seed: int) -> list[synthetic.Request]:
    return synthetic.random_requests(n, seed=seed, start_ns=T0)


@pytest.fixture
def grpc_collector(db: Database) -> Iterator[Collector]:
    settings = CollectorSettings(grpc_port=0, max_body_bytes=256 * 1024, max_queued_spans=10)
    yield from run_collector(db, settings)


@pytest.fixture
def stub(grpc_collector: Collector) -> Iterator[trace_service_pb2_grpc.TraceServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_collector.app.state.grpc_port}") as channel:
        yield trace_service_pb2_grpc.TraceServiceStub(channel)


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
def test_sdk_grpc_exporter(grpc_collector: Collector, compression: grpc.Compression) -> None:
    exporter = OTLPSpanExporter(
        endpoint=f"127.0.0.1:{grpc_collector.app.state.grpc_port}",
        insecure=True,
        compression=compression,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-app"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("llm_request") as span:
        span.set_attributes(
            {
                "gen_ai.response.model": "m",
                "gen_ai.latency.time_in_queue": 0.5,
                "gen_ai.usage.completion_tokens": 9,
            }
        )
    provider.shutdown()
    with grpc_collector.db.engine.connect() as conn:
        row = conn.execute(
            text("SELECT service_name, provider, queue_ms, output_tokens FROM llm_requests")
        ).one()
    assert tuple(row) == ("grpc-app", "vllm", 500.0, 9)
    assert (
        grpc_collector.metric(
            "inferwatch_collector_export_requests_total", {"protocol": "grpc", "code": "OK"}
        )
        == 1
    )


def test_partial_success_over_grpc(
    grpc_collector: Collector, stub: trace_service_pb2_grpc.TraceServiceStub
) -> None:
    request = synthetic.export_request(requests(2, seed=1))
    request.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x00" * 8
    response = stub.Export(request, timeout=30)
    assert response.partial_success.rejected_spans == 1
    assert "span_id" in response.partial_success.error_message
    assert grpc_collector.count() == 3


def test_message_over_the_limit_is_refused(
    grpc_collector: Collector, stub: trace_service_pb2_grpc.TraceServiceStub
) -> None:
    big = synthetic.export_request(requests(400, seed=2))
    assert big.ByteSize() > 256 * 1024
    with pytest.raises(grpc.RpcError) as refused:
        stub.Export(big, timeout=30)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert grpc_collector.count() == 0


def test_full_queue_is_resource_exhausted(
    grpc_collector: Collector, stub: trace_service_pb2_grpc.TraceServiceStub
) -> None:
    import concurrent.futures

    writer = grpc_collector.app.state.writer
    with concurrent.futures.ThreadPoolExecutor(2) as pool, table_locked(grpc_collector.db):
        first = pool.submit(stub.Export, synthetic.export_request(requests(3, seed=3)), timeout=60)
        wait_until(lambda: writers_waiting_on_lock(grpc_collector.db) == 1)
        second = pool.submit(stub.Export, synthetic.export_request(requests(3, seed=4)), timeout=60)
        wait_until(lambda: writer.queued_spans == 6)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Export(synthetic.export_request(requests(3, seed=5)), timeout=30)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "already waiting" in (refused.value.details() or "")
    first.result()
    second.result()
    assert grpc_collector.count() == 12
