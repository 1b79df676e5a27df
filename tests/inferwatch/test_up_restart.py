"""`up`, traffic, `down`, `up` again: the data is still there and no alert fires twice.

Monitoring-only (`--no-serve`): the traffic is real OTLP posted to the collector, so the
test needs no model; the alert engine and evaluator worker run as in any `up`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

from bench.ports import free_port
from collector import synthetic
from tests.alerting.receivers import webhook_recorder, webhook_route
from tests.collector.conftest import wait_for
from tests.inferwatch.cli_helpers import cli_env, inferwatch
from tests.seed import requests_at
from tests.servers import ServerThread

RULES = """
rules:
  - name: Busy
    metric: requests
    aggregation: count
    window: 1h
    comparison: ">="
    threshold: 3
    group_by: [model]
"""


def sql(env: dict[str, str], query: str) -> list[str]:
    done = inferwatch("sql", query, "-f", "csv", env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[1:]


def test_a_restart_keeps_the_data_and_does_not_notify_again(tmp_path: Path) -> None:
    app, notified = webhook_recorder()
    with ServerThread(app) as hook_url:
        rules = tmp_path / "alerts.yaml"
        rules.write_text(RULES + webhook_route(f"{hook_url}/hook", group_interval="2s"))
        collector_port = free_port()
        env = cli_env(
            tmp_path / "home",
            INFERWATCH_COLLECTOR__PORT=str(collector_port),
            INFERWATCH_ALERTING__PORT=str(free_port()),
            INFERWATCH_ALERTING__FILES=orjson.dumps([str(rules)]).decode(),
            INFERWATCH_ALERTING__DEFAULT_RULES="false",
            INFERWATCH_ALERTING__INTERVAL_S="0.5",
            INFERWATCH_EVALUATORS__PORT=str(free_port()),
            INFERWATCH_UI__PORT=str(free_port()),
        )
        try:
            first = inferwatch("up", "--no-serve", "--detach", env=env, timeout=180)
            assert first.returncode == 0, first.stderr
            requests = requests_at(datetime.now(UTC) - timedelta(minutes=1), 5)
            body = synthetic.export_request(requests).SerializeToString()
            posted = httpx.post(
                f"http://127.0.0.1:{collector_port}/v1/traces",
                content=body,
                headers={"content-type": "application/x-protobuf"},
            )
            assert posted.status_code == 200
            wait_for(lambda: notified, timeout=60)
            assert inferwatch("down", env=env).returncode == 0

            again = inferwatch("up", "--no-serve", "--detach", env=env, timeout=180)
            assert again.returncode == 0, again.stderr
            assert sql(env, "SELECT count(*) FROM llm_requests") == ["5"]
            # Several evaluations after the restart: still firing, never notified again.
            time.sleep(5)
            transitions = sql(
                env, "SELECT from_state || '>' || to_state FROM alert_events ORDER BY id"
            )
            assert transitions == ["inactive>firing"]
            assert sql(env, "SELECT state FROM alert_states") == ["firing"]
            assert len(notified) == 1 and notified[0]["status"] == "firing"
        finally:
            inferwatch("down", env=env)
