"""The ``inferwatch`` command end to end, in subprocesses, against real Postgres."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import httpx
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from bench.ports import free_port
from collector import synthetic
from inferwatch.store import migrate
from tests.inferwatch.cli_helpers import cli_env, inferwatch, start_collector


def test_embedded_defaults_from_a_fresh_home(home: Path) -> None:
    """The README path: upgrade, run the collector, send spans, query them, stop cleanly."""
    env = cli_env(home)
    refused = inferwatch("collector", "--port", str(free_port()), env=env)
    assert refused.returncode == 2
    assert "run `inferwatch db upgrade`" in refused.stderr

    upgraded = inferwatch("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    current = inferwatch("db", "current", env=env)
    assert current.stdout.strip() == migrate.head_revision()
    assert "schema is current" in current.stderr

    port, grpc_port = free_port(), free_port()
    proc = start_collector(env, port, "--grpc-port", str(grpc_port))
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "readme"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces"))
        )
        provider.add_span_processor(  # the same span over OTLP/gRPC: stored once
            SimpleSpanProcessor(GrpcSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True))
        )
        with provider.get_tracer("t").start_as_current_span("chat m") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "m",
                    "gen_ai.usage.output_tokens": 3,
                }
            )
        provider.shutdown()
        # A second process finds the same embedded server while the collector holds it.
        result = inferwatch(
            "sql", "SELECT model, output_tokens FROM llm_requests", "--format", "json", env=env
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == [{"model": "m", "output_tokens": 3}]
        assert (home / "pgdata" / "postmaster.pid").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert not (home / "pgdata" / "postmaster.pid").exists(), "embedded server left running"


def test_sql_is_read_only_and_prints_formats(home: Path, db_url: str) -> None:
    env = cli_env(home, db_url)
    reqs = synthetic.random_requests(2, seed=1)
    port = free_port()
    proc = start_collector(env, port)
    try:
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/traces",
            content=synthetic.export_request(reqs).SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert response.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

    table = inferwatch(
        "sql", "SELECT count(*) AS n FROM llm_requests WHERE model LIKE '%M2%'", env=env
    )
    assert table.returncode == 0, table.stderr
    assert "│ 2 " in table.stdout and "(1 row)" in table.stderr
    as_csv = inferwatch("sql", "SELECT name FROM spans ORDER BY name", "-f", "csv", env=env)
    assert as_csv.stdout.splitlines() == [
        "name",
        "chat SmolLM2-135M-Instruct",
        "chat SmolLM2-135M-Instruct",
        "llm_request",
        "llm_request",
    ]
    write = inferwatch("sql", "DELETE FROM spans", env=env)
    assert write.returncode == 1
    assert "read-only transaction" in write.stderr
    bad = inferwatch("sql", "SELEC 1", env=env)
    assert bad.returncode == 1 and "syntax error" in bad.stderr
    still = inferwatch("sql", "SELECT count(*) FROM spans", "-f", "csv", env=env)
    assert still.stdout.splitlines()[1] == "4"


def test_db_url_points_at_the_configured_database(home: Path, db_url: str) -> None:
    result = inferwatch("db", "url", env=cli_env(home, db_url))
    assert result.returncode == 0
    assert result.stdout.strip().startswith("postgresql://")
    assert db_url.rsplit("/", 1)[1].split("?")[0] in result.stdout


def test_downgrade_then_collector_refuses_then_upgrade(home: Path, db_url: str) -> None:
    env = cli_env(home, db_url)
    assert inferwatch("db", "downgrade", env=env).returncode == 0
    current = inferwatch("db", "current", env=env)
    assert current.returncode == 1 and "inferwatch db upgrade" in current.stderr
    refused = inferwatch("collector", "--port", str(free_port()), env=env)
    assert refused.returncode == 2 and "inferwatch db upgrade" in refused.stderr
    assert inferwatch("db", "upgrade", env=env).returncode == 0


def test_worker_processes_share_the_port_and_their_metrics_add_up(home: Path, db_url: str) -> None:
    env = cli_env(home, db_url)
    port = free_port()
    proc = start_collector(env, port, "--workers", "2")
    try:
        rng = random.Random(2)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(12):
                reqs = synthetic.random_requests(5, seed=rng)
                response = http.post(
                    "/v1/traces",
                    content=synthetic.export_request(reqs).SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf"},
                )
                assert response.status_code == 200
            # Whichever worker answers, /metrics is the sum over both.
            for _ in range(4):
                text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
                assert "inferwatch_collector_spans_stored_total 120.0" in text
        count = inferwatch("sql", "SELECT count(*) FROM spans", "-f", "csv", env=env)
        assert count.stdout.splitlines()[1] == "120"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_a_taken_port_is_a_clear_error(home: Path, db_url: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = cli_env(home, db_url)
        http = inferwatch("collector", "--port", str(port), env=env)
        assert http.returncode == 2
        assert f"cannot listen for OTLP/HTTP on 127.0.0.1:{port}" in http.stderr
        grpc = inferwatch(
            "collector", "--port", str(free_port()), "--grpc-port", str(port), env=env
        )
        assert grpc.returncode == 2
        assert "--no-grpc" in grpc.stderr
