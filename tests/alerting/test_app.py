"""The alert engine as it runs: a live app on real HTTP notifies a real webhook receiver."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from alerting.app import create_app
from alerting.rules import load_config
from inferwatch.settings import AlertingSettings
from inferwatch.store.database import Database
from tests.alerting.receivers import webhook_recorder, webhook_route
from tests.collector.conftest import wait_for
from tests.seed import requests_at, store_requests
from tests.servers import ServerThread

RULES = """
rules:
  - name: ErrorsNow
    metric: errors
    aggregation: ratio
    window: 10m
    comparison: ">"
    threshold: 0.2
    group_by: [model]
"""


def test_a_running_engine_evaluates_notifies_and_serves_its_state(
    db: Database, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    store_requests(db, requests_at(now - timedelta(minutes=2), 20, error_every=2))
    hook_app, received = webhook_recorder()
    with ServerThread(hook_app) as hook_url:
        path = tmp_path / "rules.yaml"
        path.write_text(RULES + webhook_route(f"{hook_url}/hook"))
        config = load_config([path], defaults=False)
        settings = AlertingSettings(interval_s=0.2)
        app = create_app(settings, config, db)
        with ServerThread(app) as url, httpx.Client(base_url=url) as http:
            wait_for(lambda: received, timeout=30)
            assert received[0]["status"] == "firing"
            assert received[0]["alerts"][0]["labels"]["alertname"] == "ErrorsNow"
            ready = http.get("/readyz").json()
            assert ready == {"status": "ready", "role": "leader", "rules": 1}
            alerts = http.get("/v1/alerts").json()
            assert [(a["rule"], a["state"]) for a in alerts] == [("ErrorsNow", "firing")]
            exposed = http.get("/metrics").text
            assert 'inferwatch_alerts{alertname="ErrorsNow",alertstate="firing"' in exposed
            assert "inferwatch_alerting_leader 1.0" in exposed
            time.sleep(1.0)  # several more evaluations: still one notification
            assert len(received) == 1
