from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from collector import synthetic
from collector.app import create_app
from inferwatch.settings import CollectorSettings
from inferwatch.store.database import Database
from tests.servers import ServerThread


@dataclass
class Collector:
    url: str
    app: FastAPI
    db: Database
    http: httpx.Client

    def count(self, table: str = "spans") -> int:
        with self.db.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.app.state.metrics.registry.get_sample_value(name, labels or {})
        return 0.0 if value is None else float(value)

    def store(self, requests: list[synthetic.Request]) -> None:
        """Posts ``requests`` (gateway + vLLM span each) as OTLP/protobuf; asserts the 200."""
        body = synthetic.export_request(requests).SerializeToString()
        answer = self.http.post(
            "/v1/traces", content=body, headers={"content-type": "application/x-protobuf"}
        )
        assert answer.status_code == 200, answer.text


def rows(db: Database, query: str, **params: Any) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(query), params)]


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> None:
    """Polls ``predicate`` until it holds; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def run_collector(db: Database, settings: CollectorSettings) -> Iterator[Collector]:
    app = create_app(settings, db)
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Collector(url, app, db, http)


@pytest.fixture
def collector_settings() -> CollectorSettings:
    return CollectorSettings(max_body_bytes=1024 * 1024, grpc_port=None)


@pytest.fixture
def collector(db: Database, collector_settings: CollectorSettings) -> Iterator[Collector]:
    yield from run_collector(db, collector_settings)
