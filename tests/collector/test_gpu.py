"""GPU telemetry with a fake NVML: readings, unsupported fields, a lost GPU, no GPU at all,
NVML failing mid-run, vLLM's processes recognised, rows in Postgres and the joined view."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pynvml  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text

from collector import synthetic
from collector.app import create_app
from collector.gpu import poll, with_descendants
from inferwatch.settings import CollectorSettings
from inferwatch.store.database import Database
from tests.collector.conftest import Collector, rows, wait_for
from tests.collector.fake_nvml import GIB, FakeGpu, FakeNvml
from tests.servers import ServerThread

AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_poll_reads_every_gpu_and_tolerates_what_one_cannot_tell() -> None:
    nvml = FakeNvml(
        [
            FakeGpu(processes=[(4242, 50 * GIB), (777, None)]),
            FakeGpu(name="NVIDIA L4", uuid="GPU-1", power_mw=None, energy_mj=None),
            FakeGpu(uuid="GPU-2", lost=True),
        ]
    )
    nvml.nvmlInit()
    result = poll(nvml, host="h", at=AT, interval_s=5.0, vllm_pids={4242})
    first, second, lost = result.samples
    assert first | {"time": None} == {
        "time": None,
        "host": "h",
        "gpu_index": 0,
        "interval_s": 5.0,
        "uuid": "GPU-00000000-0000-0000-0000-000000000000",
        "name": "NVIDIA H100 80GB HBM3",
        "utilization_gpu": 87.0,
        "utilization_memory": 41.0,
        "memory_used_bytes": 60 * GIB,
        "memory_total_bytes": 80 * GIB,
        "power_w": 350.0,
        "power_limit_w": 700.0,
        "temperature_c": 64.0,
        "sm_clock_mhz": 1755,
        "energy_mj": 123_456_789,
        "error": None,
    }
    assert second["power_w"] is None and second["energy_mj"] is None and second["error"] is None
    assert lost["error"] == "NVMLError_GpuIsLost: GPU is lost" and lost["uuid"] is None
    assert result.errors == [(2, "NVMLError_GpuIsLost: GPU is lost")]
    assert [(p["pid"], p["used_memory_bytes"], p["is_vllm"]) for p in result.processes] == [
        (4242, 50 * GIB, True),
        (777, None, False),
    ]


def test_a_failing_nvml_raises_its_own_error() -> None:
    nvml = FakeNvml([FakeGpu()])
    nvml.nvmlInit()
    nvml.count_error = pynvml.NVML_ERROR_UNKNOWN
    with pytest.raises(pynvml.NVMLError_Unknown):
        poll(nvml, host="h", at=AT, interval_s=5.0, vllm_pids=set())


def test_vllm_is_recognised_by_its_process_tree() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert {os.getpid(), child.pid} <= with_descendants([os.getpid()])
        assert with_descendants([2**22 + 12345]) == set()  # no such process
    finally:
        child.kill()
        child.wait()


@contextmanager
def running(db: Database, nvml: FakeNvml) -> Iterator[Collector]:
    settings = CollectorSettings(grpc_port=None, gpu_poll_s=0.1)
    app = create_app(settings, db, nvml=lambda: nvml)
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Collector(url, app, db, http)


def test_the_poller_stores_samples_and_recognises_a_registered_vllm(db: Database) -> None:
    me = os.getpid()
    nvml = FakeNvml([FakeGpu(processes=[(me, 10 * GIB)]), FakeGpu(uuid="GPU-1")])
    with running(db, nvml) as collector:
        host = collector.app.state.gpu_poller.host
        put = {"url": "http://127.0.0.1:9", "pid": me, "host": host}
        assert collector.http.put("/v1/engines", json=put).status_code == 200
        wait_for(lambda: collector.count("gpu_processes") >= 2)
        assert collector.metric("inferwatch_collector_gpu_available") == 1
        assert collector.metric("inferwatch_collector_gpus") == 2
        assert collector.http.get("/readyz").json()["gpu"] == "2 GPU(s)"
        nvml.gpus[1].lost = True  # an Xid mid-run: recorded, not fatal
        wait_for(lambda: bool(rows(db, "SELECT 1 FROM gpu_samples WHERE error IS NOT NULL")))
        assert collector.metric("inferwatch_collector_gpu_errors_total", {"gpu": "1"}) >= 1
        assert "1 failing" in collector.http.get("/readyz").json()["gpu"]
    flagged = rows(db, "SELECT DISTINCT is_vllm FROM gpu_processes WHERE pid = :p", p=me)
    assert flagged[-1] == {"is_vllm": True}
    assert {r["gpu_index"] for r in rows(db, "SELECT gpu_index FROM gpu_samples")} == {0, 1}


def test_no_gpu_is_a_normal_state(db: Database) -> None:
    with running(db, FakeNvml([], driver=False)) as collector:
        wait_for(lambda: "no GPU" in collector.http.get("/readyz").json()["gpu"])
        ready = collector.http.get("/readyz")
        assert ready.status_code == 200
        assert "NVML Shared Library Not Found" in ready.json()["gpu"]
        assert collector.metric("inferwatch_collector_gpu_available") == 0
        assert "inferwatch_collector_gpu_available 0.0" in collector.http.get("/metrics").text
    assert rows(db, "SELECT * FROM gpu_samples") == []


def test_nvml_failing_as_a_whole_is_counted_and_retried(db: Database) -> None:
    nvml = FakeNvml([FakeGpu()])
    with running(db, nvml) as collector:
        wait_for(lambda: collector.count("gpu_samples") >= 1)
        nvml.count_error = pynvml.NVML_ERROR_UNKNOWN
        wait_for(
            lambda: collector.metric("inferwatch_collector_gpu_errors_total", {"gpu": "all"}) >= 1
        )
        assert "NVML error" in collector.http.get("/readyz").json()["gpu"]


def store_request(collector: Collector, start: datetime, e2e_s: float) -> synthetic.Request:
    """One synthetic LLM request (gateway + vLLM span) posted to the collector."""
    req = synthetic.random_requests(1, seed=5, start_ns=int(start.timestamp() * 1e9))[0]
    req = dataclasses.replace(req, e2e_s=e2e_s, error=None)
    collector.store([req])
    return req


def test_requests_get_the_gpu_and_engine_around_them(collector: Collector) -> None:
    req = store_request(collector, AT, e2e_s=10.0)
    gpu = (
        "INSERT INTO gpu_samples (time, host, gpu_index, interval_s, utilization_gpu,"
        " memory_used_bytes, error) VALUES (:t, 'h', 0, 5, :u, :m, :e)"
    )
    engine = (
        "INSERT INTO engine_samples (time, engine_id, model, requests_running,"
        " requests_waiting, kv_cache_usage, finished_by_reason) VALUES (:t, :id, :model, :r,"
        " :w, :kv, '{}')"
    )
    s = timedelta(seconds=1)
    with collector.db.engine.begin() as conn:
        for at, util, error in [
            (AT - 1 * s, 99, None),  # covers AT-6 .. AT-1: before the request
            (AT + 3 * s, 50, None),
            (AT + 5 * s, None, "NVMLError_GpuIsLost: GPU is lost"),  # no readings
            (AT + 8 * s, 70, None),
            (AT + 14 * s, 90, None),  # covers AT+9 .. AT+14: overlaps the end
            (AT + 16 * s, 10, None),  # covers AT+11 ..: after it
        ]:
            memory = None if util is None else util * GIB
            conn.execute(text(gpu), {"t": at, "u": util, "m": memory, "e": error})
        engine_id = conn.execute(
            text("INSERT INTO engines (name, url) VALUES ('e', 'http://e') RETURNING id")
        ).scalar_one()
        for at, running, waiting, kv in [
            (AT - 30 * s, 1, 9, 0.1),
            (AT - 2 * s, 2, 4, 0.5),  # the engine as the request arrived
            (AT + 1 * s, 3, 0, 0.9),
        ]:
            params = {"t": at, "id": engine_id, "model": req.model, "r": running, "w": waiting}
            conn.execute(text(engine), params | {"kv": kv})
    (row,) = rows(collector.db, "SELECT * FROM llm_request_gpu")
    assert row["trace_id"] == req.trace_id.hex()
    assert row["gpu_samples"] == 3
    assert row["gpu_utilization_mean"] == pytest.approx(70.0)
    assert row["gpu_utilization_max"] == 90.0
    assert row["gpu_memory_used_max_bytes"] == 90 * GIB
    assert (row["engine_requests_running"], row["engine_requests_waiting"]) == (2, 4)
    assert row["engine_kv_cache_usage"] == 0.5
