"""GPU telemetry from NVML: every few seconds, one sample per GPU and its processes.

``poll`` is the pure core: given an NVML (the ``pynvml`` module of the
``nvidia-ml-py`` package, or a fake in tests) it reads every GPU and returns
rows. A reading a GPU does not support is left empty; a GPU that fails (lost,
Xid, driver trouble) gets a row with ``error`` set and the others carry on.

``GpuPoller`` is the shell around it. A host without a GPU or driver is
normal: the poller says so once, reports ``gpu_available 0`` on ``/metrics``
and in ``/readyz``, keeps running, and tries NVML again every
``NO_GPU_RETRY_S``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import psutil
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from collector.metrics import CollectorMetrics
from inferwatch.leader import LeaderPoller, Leadership
from inferwatch.store.database import Database
from inferwatch.store.models import Engine, GpuProcess, GpuSample

log = logging.getLogger(__name__)

NO_GPU_RETRY_S = 300.0
# NVML return codes that mean "this GPU cannot tell", not "this GPU is in trouble".
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
UNREADABLE = frozenset({NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_NO_PERMISSION})
READINGS = (
    "uuid",
    "name",
    "utilization_gpu",
    "utilization_memory",
    "memory_used_bytes",
    "memory_total_bytes",
    "power_w",
    "power_limit_w",
    "temperature_c",
    "sm_clock_mhz",
    "energy_mj",
)


class Nvml(Protocol):
    """The part of ``pynvml`` the poller uses."""

    NVMLError: type[Exception]
    NVML_TEMPERATURE_GPU: int
    NVML_CLOCK_SM: int

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetUUID(self, handle: Any) -> str: ...
    def nvmlDeviceGetName(self, handle: Any) -> str: ...
    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any: ...
    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int: ...
    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int: ...
    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int: ...
    def nvmlDeviceGetClockInfo(self, handle: Any, clock: int) -> int: ...
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int: ...
    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]: ...


def real_nvml() -> Nvml:
    import pynvml  # type: ignore[import-untyped]  # nvidia-ml-py: ctypes over libnvidia-ml.so, loaded at nvmlInit()

    return cast(Nvml, pynvml)


def describe_gpus(nvml: Callable[[], Nvml] = real_nvml) -> str:
    """What NVML sees on this host, in words ("1x NVIDIA H100 80GB HBM3"), or why not."""
    try:
        lib = nvml()
        lib.nvmlInit()
    except Exception as exc:  # no driver, no library: a CPU host
        return f"CPU (no NVIDIA GPU: {exc})"
    try:
        names = [
            lib.nvmlDeviceGetName(lib.nvmlDeviceGetHandleByIndex(i))
            for i in range(lib.nvmlDeviceGetCount())
        ]
    except lib.NVMLError as exc:
        return f"GPU (NVML error: {exc})"
    finally:
        lib.nvmlShutdown()
    if not names:
        return "CPU (NVML reports no GPU)"
    return ", ".join(f"{names.count(n)}x {n}" for n in dict.fromkeys(names))


@dataclass
class GpuPoll:
    samples: list[dict[str, Any]] = field(default_factory=list)
    processes: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (gpu index, message)


def poll(nvml: Nvml, *, host: str, at: datetime, interval_s: float, vllm_pids: set[int]) -> GpuPoll:
    """Reads every GPU once. NVML failing as a whole (count) raises its ``NVMLError``."""
    result = GpuPoll()
    for index in range(nvml.nvmlDeviceGetCount()):
        row: dict[str, Any] = {"time": at, "host": host, "gpu_index": index}
        row["interval_s"] = interval_s
        try:
            row |= _read_gpu(nvml, nvml.nvmlDeviceGetHandleByIndex(index))
            processes = row.pop("processes")
        except nvml.NVMLError as exc:
            message = f"{type(exc).__name__}: {exc}"
            result.samples.append({**row, **dict.fromkeys(READINGS), "error": message})
            result.errors.append((index, message))
            continue
        result.samples.append({**row, "error": None})
        for process in processes:
            pid = int(process.pid)
            used = getattr(process, "usedGpuMemory", None)  # None in many containers
            result.processes.append(
                {
                    "time": at,
                    "host": host,
                    "gpu_index": index,
                    "pid": pid,
                    "used_memory_bytes": None if used is None else int(used),
                    "is_vllm": pid in vllm_pids,
                }
            )
    return result


def _read_gpu(nvml: Nvml, handle: Any) -> dict[str, Any]:
    def optional(read: Callable[[], Any]) -> Any:
        try:
            return read()
        except nvml.NVMLError as exc:
            if getattr(exc, "value", None) in UNREADABLE:
                return None
            raise

    util = optional(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    power = optional(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
    limit = optional(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))
    return {
        "uuid": nvml.nvmlDeviceGetUUID(handle),
        "name": nvml.nvmlDeviceGetName(handle),
        "utilization_gpu": None if util is None else float(util.gpu),
        "utilization_memory": None if util is None else float(util.memory),
        "memory_used_bytes": int(memory.used),
        "memory_total_bytes": int(memory.total),
        "power_w": None if power is None else power / 1000,
        "power_limit_w": None if limit is None else limit / 1000,
        "temperature_c": optional(
            lambda: float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        ),
        "sm_clock_mhz": optional(lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)),
        "energy_mj": optional(lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle)),
        "processes": optional(lambda: nvml.nvmlDeviceGetComputeRunningProcesses(handle)) or [],
    }


def with_descendants(pids: Iterable[int]) -> set[int]:
    """The pids and all their children's (vLLM's engine core is a child of its API server)."""
    found: set[int] = set()
    for pid in pids:
        try:
            process = psutil.Process(pid)
            found.add(pid)
            found.update(child.pid for child in process.children(recursive=True))
        except psutil.Error:
            continue
    return found


class GpuPoller(LeaderPoller):
    """Polls NVML every ``interval_s`` while this collector leads, and stores the rows."""

    name = "gpu-poller"

    def __init__(
        self,
        db: Database,
        metrics: CollectorMetrics,
        leadership: Leadership,
        *,
        interval_s: float,
        nvml: Callable[[], Nvml] = real_nvml,
        host: str | None = None,
    ) -> None:
        super().__init__(leadership, interval_s=interval_s)
        self.db = db
        self.metrics = metrics
        self._nvml_factory = nvml
        self.host = host or socket.gethostname()
        self.status = "not polled yet"
        self._nvml: Nvml | None = None
        self._said_no_gpu = False
        self._next_init = 0.0

    def following(self) -> None:
        self.status = "polled by another collector worker"

    async def close(self) -> None:
        if self._nvml is not None:
            await asyncio.to_thread(self._shutdown, self._nvml)

    async def round(self) -> None:
        nvml = await self._initialized()
        if nvml is None:
            return
        try:
            vllm_pids = with_descendants(await self._vllm_pids())
            result = await asyncio.to_thread(
                poll,
                nvml,
                host=self.host,
                at=datetime.now(UTC),
                interval_s=self.interval_s,
                vllm_pids=vllm_pids,
            )
        except nvml.NVMLError as exc:  # NVML as a whole failed: record, start over later
            log.warning("NVML failed while polling: %s", exc)
            self.metrics.gpu_errors.labels(gpu="all").inc()
            self.status = f"NVML error: {exc}"
            await asyncio.to_thread(self._shutdown, nvml)
            self._nvml = None
            return
        for index, message in result.errors:
            self.metrics.gpu_errors.labels(gpu=str(index)).inc()
            log.warning("GPU %d: %s", index, message)
        self.metrics.gpus.set(len(result.samples))
        async with self.db.async_engine.begin() as conn:
            await conn.execute(insert(GpuSample).on_conflict_do_nothing(), result.samples)
            if result.processes:
                await conn.execute(insert(GpuProcess).on_conflict_do_nothing(), result.processes)
        failing = len(result.errors)
        self.status = f"{len(result.samples)} GPU(s)" + (f", {failing} failing" if failing else "")

    async def _initialized(self) -> Nvml | None:
        if self._nvml is not None:
            return self._nvml
        if time.monotonic() < self._next_init:
            return None
        try:
            nvml = self._nvml_factory()
            await asyncio.to_thread(nvml.nvmlInit)
        except Exception as exc:  # no driver, no library, no GPU: a normal host
            self._next_init = time.monotonic() + NO_GPU_RETRY_S
            self.metrics.gpu_available.set(0)
            self.status = f"no GPU: {exc}"
            if not self._said_no_gpu:
                log.info(
                    "no GPU telemetry on this host (%s); trying again every %.0f s",
                    exc,
                    NO_GPU_RETRY_S,
                )
                self._said_no_gpu = True
            return None
        self._nvml = nvml
        self.metrics.gpu_available.set(1)
        return nvml

    async def _vllm_pids(self) -> list[int]:
        async with self.db.async_engine.connect() as conn:
            result = await conn.execute(
                select(Engine.pid).where(Engine.pid.is_not(None), Engine.host == self.host)
            )
            return [pid for pid in result.scalars() if pid is not None]

    @staticmethod
    def _shutdown(nvml: Nvml) -> None:
        try:
            nvml.nvmlShutdown()
        except Exception as exc:  # already gone with the driver
            log.debug("nvmlShutdown: %s", exc)
