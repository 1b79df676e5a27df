"""OTLP trace ingest over real HTTP into real Postgres: rows, lifted columns, the view."""

from __future__ import annotations

import gzip
import time
from typing import Any

import orjson
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from collector import synthetic
from tests.collector.conftest import Collector, rows
from tests.collector.otlp_json import to_otlp_json

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
T0 = 1_763_700_000_000_000_000  # 2025-11-21, in ns


def synthetic_requests(n: int, seed: int = 1, **kw: Any) -> list[synthetic.Request]:
    return synthetic.random_requests(n, seed=seed, start_ns=T0, **kw)


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_otel_sdk_exporter_spans_are_stored_with_lifted_columns(
    collector: Collector, compression: Compression
) -> None:
    exporter = OTLPSpanExporter(endpoint=f"{collector.url}/v1/traces", compression=compression)
    provider = TracerProvider(resource=Resource.create({"service.name": "my-app"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("handle question") as parent:
        with tracer.start_as_current_span("chat tiny-model", kind=SpanKind.CLIENT) as llm:
            llm.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "vllm",
                    "gen_ai.request.model": "tiny-model",
                    "gen_ai.usage.input_tokens": 12,
                    "gen_ai.usage.output_tokens": 5,
                    "gen_ai.response.time_to_first_chunk": 0.25,
                    "gen_ai.response.finish_reasons": ["length"],
                    "gen_ai.response.id": "chatcmpl-1",
                }
            )
            llm.set_status(StatusCode.ERROR, "upstream timed out")
        trace_id = format(parent.get_span_context().trace_id, "032x")
    provider.shutdown()

    spans = rows(
        collector.db, "SELECT * FROM spans WHERE trace_id = :t ORDER BY start_time", t=trace_id
    )
    assert [s["name"] for s in spans] == ["handle question", "chat tiny-model"]
    outer, call = spans
    assert outer["is_llm"] is False and outer["parent_span_id"] is None
    assert call["parent_span_id"] == outer["span_id"]
    assert call["service_name"] == "my-app"
    assert call["kind"] == "CLIENT"
    assert call["resource"]["service.name"] == "my-app"
    assert call["attributes"]["gen_ai.usage.input_tokens"] == 12
    assert (call["operation"], call["provider"], call["model"]) == ("chat", "vllm", "tiny-model")
    assert (call["input_tokens"], call["output_tokens"]) == (12, 5)
    assert call["ttft_ms"] == pytest.approx(250.0)
    assert call["e2e_ms"] == pytest.approx(call["duration_ms"])
    assert call["finish_reason"] == "length"
    assert call["request_id"] == "chatcmpl-1"
    assert call["status_code"] == "ERROR"
    assert call["status_message"] == "upstream timed out"
    assert call["start_time_unix_nano"] // 1000 == int(call["start_time"].timestamp() * 1e6)

    (request,) = rows(collector.db, "SELECT * FROM llm_requests WHERE trace_id = :t", t=trace_id)
    assert request["span_id"] == call["span_id"]
    assert request["status"] == "error"
    assert request["error"] == "upstream timed out"


def test_vllm_shaped_protobuf_gives_one_request_row_per_trace(collector: Collector) -> None:
    reqs = synthetic_requests(5)
    body = synthetic.export_request(reqs).SerializeToString()
    response = collector.http.post("/v1/traces", content=body, headers=PROTOBUF)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    assert collector.count() == 10
    found = {r["trace_id"]: r for r in rows(collector.db, "SELECT * FROM llm_requests")}
    assert len(found) == 5
    for req in reqs:
        row = found[req.trace_id.hex()]
        assert row["span_id"] == req.gateway_span_id.hex()
        assert row["engine_span_id"] == req.engine_span_id.hex()
        assert row["model"] == synthetic.DEFAULT_MODEL
        assert row["ttft_ms"] == pytest.approx(req.ttft_s * 1000)  # as the gateway measured
        assert row["e2e_ms"] == pytest.approx(req.e2e_s * 1000, abs=1e-3)
        assert row["queue_ms"] == pytest.approx(req.queue_s * 1000)  # vLLM's own phases
        assert row["prefill_ms"] == pytest.approx(req.prefill_s * 1000)
        assert row["decode_ms"] == pytest.approx(req.decode_s * 1000)
        assert (row["input_tokens"], row["output_tokens"]) == (req.input_tokens, req.output_tokens)
        if req.output_tokens > 1:
            expected = (row["e2e_ms"] - row["ttft_ms"]) / (req.output_tokens - 1)
            assert row["tpot_ms"] == pytest.approx(expected)
        else:
            assert row["tpot_ms"] is None
        assert row["started_at"].timestamp() == pytest.approx(req.start_ns / 1e9)
        assert row["status"] == "ok" and row["error"] is None
        assert row["finish_reason"] == "stop"


def test_vllm_engine_span_alone_is_a_request(collector: Collector) -> None:
    """vLLM called directly (no gateway span): its llm_request span is the request."""
    (req,) = synthetic_requests(1)
    body = synthetic.export_request([req])
    del body.resource_spans[0]  # drop the gateway's spans
    assert (
        collector.http.post(
            "/v1/traces", content=body.SerializeToString(), headers=PROTOBUF
        ).status_code
        == 200
    )
    (row,) = rows(collector.db, "SELECT * FROM llm_requests")
    assert row["span_id"] == req.engine_span_id.hex()
    assert row["engine_span_id"] is None
    assert row["provider"] == "vllm"
    assert row["ttft_ms"] == pytest.approx((req.queue_s + req.prefill_s) * 1000)
    assert row["e2e_ms"] == pytest.approx((req.queue_s + req.prefill_s + req.decode_s) * 1000)
    assert row["queue_ms"] == pytest.approx(req.queue_s * 1000)


def test_vllm_shaped_json_is_stored_like_protobuf(collector: Collector) -> None:
    reqs = synthetic_requests(3, error_rate=1.0)
    document = to_otlp_json(synthetic.export_request(reqs))
    response = collector.http.post("/v1/traces", content=orjson.dumps(document), headers=JSON)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    found = rows(collector.db, "SELECT trace_id, status, error, error_type FROM llm_requests")
    assert {r["trace_id"] for r in found} == {r.trace_id.hex() for r in reqs}
    assert {(r["status"], r["error"], r["error_type"]) for r in found} == {
        ("error", "upstream returned 500", "500")
    }


def test_hand_written_json_with_enum_numbers_and_string_int64(collector: Collector) -> None:
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "vllm"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "vllm"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "parentSpanId": "",
                                "name": "llm_request",
                                "kind": 2,
                                "startTimeUnixNano": "1763700000000000000",
                                "endTimeUnixNano": "1763700001500000000",
                                "attributes": [
                                    {"key": "gen_ai.response.model", "value": {"stringValue": "m"}},
                                    {
                                        "key": "gen_ai.usage.prompt_tokens",
                                        "value": {"intValue": "40"},
                                    },
                                    {
                                        "key": "gen_ai.usage.completion_tokens",
                                        "value": {"intValue": 11},
                                    },
                                    {
                                        "key": "gen_ai.latency.time_to_first_token",
                                        "value": {"doubleValue": 0.5},
                                    },
                                    {"key": "gen_ai.latency.e2e", "value": {"doubleValue": 1.5}},
                                    {
                                        "key": "gen_ai.latency.time_in_queue",
                                        "value": {"doubleValue": 0.1},
                                    },
                                ],
                                "status": {"code": 1},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    response = collector.http.post("/v1/traces", json=document)
    assert response.status_code == 200, response.text

    (span,) = rows(collector.db, "SELECT * FROM spans")
    assert (span["trace_id"], span["span_id"], span["kind"]) == (trace_id, span_id, "SERVER")
    assert span["status_code"] == "OK"
    assert (span["input_tokens"], span["output_tokens"]) == (40, 11)
    assert span["ttft_ms"] == pytest.approx(500) and span["e2e_ms"] == pytest.approx(1500)
    assert span["tpot_ms"] == pytest.approx((1500 - 500) / 10)
    assert span["duration_ms"] == pytest.approx(1500)
    assert span["start_time_unix_nano"] == 1763700000000000000


def _json_llm_span(trace_id: str, span_id: str, attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "name": "llm",
        "kind": "SPAN_KIND_INTERNAL",
        "startTimeUnixNano": str(T0),
        "endTimeUnixNano": str(T0 + 2_000_000_000),
        "attributes": [{"key": k, "value": _json_value(v)} for k, v in attributes.items()],
    }


def _json_value(v: Any) -> dict[str, Any]:
    if isinstance(v, int):
        return {"intValue": str(v)}
    return {"stringValue": v}


def _json_doc(service: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [{"scope": {"name": "instrumentation"}, "spans": spans}],
            }
        ]
    }


def test_openinference_llm_span_is_lifted(collector: Collector) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    document = _json_doc(
        "rag-app",
        [
            _json_llm_span(
                trace_id,
                "b7ad6b7169203331",
                {
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "gpt-4o-mini",
                    "llm.provider": "openai",
                    "llm.token_count.prompt": 30,
                    "llm.token_count.completion": 7,
                    "llm.input_messages.0.message.role": "system",
                    "llm.input_messages.0.message.content": "Answer briefly.",
                    "llm.input_messages.1.message.role": "user",
                    "llm.input_messages.1.message.content": "Capital of France?",
                    "output.value": "Paris.",
                },
            ),
            {
                **_json_llm_span(
                    trace_id,
                    "00f067aa0ba902b7",
                    {"openinference.span.kind": "CHAIN", "llm.model_name": "ignored"},
                ),
                "name": "chain",
            },
        ],
    )
    assert collector.http.post("/v1/traces", json=document).status_code == 200

    (row,) = rows(collector.db, "SELECT * FROM llm_requests")
    assert row["span_id"] == "b7ad6b7169203331"
    assert (row["model"], row["provider"], row["operation"]) == ("gpt-4o-mini", "openai", "chat")
    assert (row["input_tokens"], row["output_tokens"]) == (30, 7)
    assert row["prompt"] == "system: Answer briefly.\nuser: Capital of France?"
    assert row["completion"] == "Paris."
    assert row["e2e_ms"] == pytest.approx(2000)
    chain = rows(collector.db, "SELECT is_llm FROM spans WHERE span_id = '00f067aa0ba902b7'")
    assert chain == [{"is_llm": False}]


def test_genai_semconv_messages_are_lifted_as_text(collector: Collector) -> None:
    inputs = [
        {"role": "system", "parts": [{"type": "text", "content": "Be terse."}]},
        {"role": "user", "parts": [{"type": "text", "content": "2+2?"}]},
    ]
    outputs = [
        {"role": "assistant", "parts": [{"type": "text", "content": "4"}], "finish_reason": "stop"}
    ]
    document = _json_doc(
        "svc",
        [
            _json_llm_span(
                "1" * 32,
                "2" * 16,
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-x",
                    "gen_ai.usage.input_tokens": 9,
                    "gen_ai.usage.output_tokens": 1,
                    "gen_ai.input.messages": orjson.dumps(inputs).decode(),
                    "gen_ai.output.messages": orjson.dumps(outputs).decode(),
                },
            )
        ],
    )
    assert collector.http.post("/v1/traces", json=document).status_code == 200

    (row,) = rows(collector.db, "SELECT * FROM llm_requests")
    assert row["provider"] == "openai"
    assert row["prompt"] == "system: Be terse.\nuser: 2+2?"
    assert row["completion"] == "4"
    assert row["finish_reason"] == "stop"
    assert row["tpot_ms"] is None  # one output token: TPOT undefined


def test_agent_span_is_not_a_request_and_does_not_hide_its_calls(collector: Collector) -> None:
    agent = _json_llm_span(
        "3" * 32,
        "4" * 16,
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.request.model": "m",
            "gen_ai.usage.input_tokens": 100,
        },
    )
    call = {
        **_json_llm_span(
            "3" * 32, "5" * 16, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}
        ),
        "parentSpanId": "4" * 16,
    }
    assert collector.http.post("/v1/traces", json=_json_doc("a", [agent, call])).status_code == 200
    assert [r["span_id"] for r in rows(collector.db, "SELECT span_id FROM llm_requests")] == [
        "5" * 16
    ]


def test_resent_batch_changes_no_row_count(collector: Collector) -> None:
    body = synthetic.export_request(synthetic_requests(4)).SerializeToString()
    for _ in range(3):
        assert collector.http.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
    assert collector.count() == 8
    assert collector.count("llm_requests") == 4
    assert collector.metric("inferwatch_collector_spans_stored_total") == 8
    assert collector.metric("inferwatch_collector_spans_duplicate_total") == 16


def test_spans_arriving_in_separate_batches_join_into_one_request(collector: Collector) -> None:
    (req,) = synthetic_requests(1)
    engine_first = synthetic.export_request([req])
    gateway_later = synthetic.export_request([req])
    del engine_first.resource_spans[0]
    del gateway_later.resource_spans[1]
    for body in (engine_first, gateway_later):
        response = collector.http.post(
            "/v1/traces", content=body.SerializeToString(), headers=PROTOBUF
        )
        assert response.status_code == 200
    (row,) = rows(collector.db, "SELECT span_id, engine_span_id FROM llm_requests")
    assert row == {"span_id": req.gateway_span_id.hex(), "engine_span_id": req.engine_span_id.hex()}


def test_nul_characters_do_not_sink_the_batch(collector: Collector) -> None:
    document = _json_doc(
        "svc\x00x",
        [
            _json_llm_span(
                "6" * 32,
                "7" * 16,
                {
                    "gen_ai.request.model": "m\x00odel",
                    "k\x00ey": "v\x00al",
                    "output.value": "a\x00b",
                },
            )
        ],
    )
    assert collector.http.post("/v1/traces", json=document).status_code == 200
    (span,) = rows(collector.db, "SELECT * FROM spans")
    assert span["model"] == "m\ufffdodel"
    assert span["attributes"]["k\ufffdey"] == "v\ufffdal"
    assert span["completion"] == "a\ufffdb"
    assert span["service_name"] == "svc\ufffdx"


def test_gzip_protobuf_body(collector: Collector) -> None:
    body = gzip.compress(synthetic.export_request(synthetic_requests(2)).SerializeToString())
    response = collector.http.post(
        "/v1/traces", content=body, headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert collector.count() == 4


def test_metrics_endpoint_counts_ingest(collector: Collector) -> None:
    body = synthetic.export_request(synthetic_requests(2)).SerializeToString()
    collector.http.post("/v1/traces", content=body, headers=PROTOBUF)
    collector.http.post("/v1/traces", content=b"\xff\xff", headers=PROTOBUF)
    text_ = collector.http.get("/metrics").text
    assert "inferwatch_collector_spans_stored_total 4.0" in text_
    assert "inferwatch_collector_spans_received_total 4.0" in text_
    assert 'inferwatch_collector_export_requests_total{code="200",protocol="http"} 1.0' in text_
    assert 'inferwatch_collector_export_requests_total{code="400",protocol="http"} 1.0' in text_
    assert "inferwatch_collector_write_seconds_count 1.0" in text_
    assert "inferwatch_collector_queued_spans 0.0" in text_


def test_health_and_readiness(collector: Collector) -> None:
    assert collector.http.get("/healthz").json() == {"status": "ok"}
    ready = collector.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["schema"] == "current"
    assert ready.json()["database"] == "ok"


def test_concurrent_requests_are_all_stored(collector: Collector) -> None:
    import concurrent.futures

    bodies = [
        synthetic.export_request(synthetic_requests(10, seed=s)).SerializeToString()
        for s in range(40)
    ]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(
            pool.map(
                lambda b: (
                    collector.http.post("/v1/traces", content=b, headers=PROTOBUF).status_code
                ),
                bodies,
            )
        )
    assert codes == [200] * 40, time.perf_counter() - started
    assert collector.count() == 800
