"""Gateway spans travel as real OTLP to the real collector and become llm_requests rows."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from inferwatch.settings import CollectorSettings, ServingSettings
from inferwatch.store.database import Database
from serving.gateway import TRACE_ID_HEADER, create_gateway
from serving.telemetry import tracer_provider
from tests.collector.conftest import run_collector
from tests.servers import ServerThread
from tests.serving.fake_upstream import WORDS, Recorder, create_fake_upstream


def test_requests_through_the_gateway_are_queryable(db: Database) -> None:
    for collector in run_collector(db, CollectorSettings(grpc_port=None)):
        provider = tracer_provider(collector.url)
        with (
            ServerThread(create_fake_upstream(Recorder())) as fake,
            ServerThread(create_gateway(ServingSettings(upstream_url=fake), provider)) as gateway,
            httpx.Client(base_url=gateway, timeout=30) as http,
        ):
            plain = http.post(
                "/v1/chat/completions",
                json={"model": "ok", "messages": [{"role": "user", "content": "hi from a@b.io"}]},
            )
            body = {
                "model": "ok",
                "stream": True,
                "messages": [{"role": "user", "content": "stream please"}],
            }
            with http.stream("POST", "/v1/chat/completions", json=body) as streamed:
                list(streamed.iter_lines())
            failed = http.post("/v1/chat/completions", json={"model": "error500", "messages": []})
        provider.shutdown()  # flushes the batch processor

        with db.engine.connect() as conn:
            rows = {
                r.trace_id: r
                for r in conn.execute(
                    text(
                        "SELECT trace_id, model, status, error, input_tokens, output_tokens, "
                        "ttft_ms, service_name, prompt, completion FROM llm_requests"
                    )
                )
            }
        assert set(rows) == {
            plain.headers[TRACE_ID_HEADER],
            streamed.headers[TRACE_ID_HEADER],
            failed.headers[TRACE_ID_HEADER],
        }
        ok = rows[plain.headers[TRACE_ID_HEADER]]
        assert (ok.model, ok.status, ok.input_tokens, ok.output_tokens) == ("ok", "ok", 11, 4)
        assert ok.service_name == "inferwatch-gateway"
        assert ok.prompt == "hi from [REDACTED:EMAIL]"
        assert "[REDACTED:EMAIL]" in ok.completion and "@" not in ok.completion
        stream_row = rows[streamed.headers[TRACE_ID_HEADER]]
        assert stream_row.output_tokens == len(WORDS) and stream_row.ttft_ms > 0
        error_row = rows[failed.headers[TRACE_ID_HEADER]]
        assert (error_row.status, error_row.error) == ("error", "engine crashed")
