"""A stand-in for ``pynvml`` with NVML's shapes: handles, result structs, ``NVMLError``
subclasses raised by code (the real package's classes, which import without a driver),
``None`` process memory as containers report it."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml  # type: ignore[import-untyped]

GIB = 1024**3


def nvml_error(code: int) -> Exception:
    error: Exception = pynvml.NVMLError(code)  # NVMLError(code) builds the code's subclass
    return error


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    utilization: tuple[int, int] = (87, 41)  # gpu %, memory %
    memory: tuple[int, int] = (60 * GIB, 80 * GIB)  # used, total
    power_mw: int | None = 350_000  # None: not supported on this board
    limit_mw: int = 700_000
    temperature: int = 64
    sm_clock: int = 1755
    energy_mj: int | None = 123_456_789
    processes: list[tuple[int, int | None]] = field(default_factory=list)  # (pid, bytes)
    lost: bool = False  # every call fails with GPU_IS_LOST (an Xid, a fallen-off-the-bus)


class FakeNvml:
    NVMLError = pynvml.NVMLError
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM

    def __init__(self, gpus: list[FakeGpu], *, driver: bool = True) -> None:
        self.gpus = gpus
        self.driver = driver
        self.initialized = False
        self.count_error: int | None = None  # set to make nvmlDeviceGetCount fail

    def nvmlInit(self) -> None:
        if not self.driver:
            raise nvml_error(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        self.initialized = True

    def nvmlShutdown(self) -> None:
        self.initialized = False

    def _gpu(self, handle: Any) -> FakeGpu:
        if not self.initialized:
            raise nvml_error(pynvml.NVML_ERROR_UNINITIALIZED)
        gpu: FakeGpu = handle
        if gpu.lost:
            raise nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return gpu

    def nvmlDeviceGetCount(self) -> int:
        if self.count_error is not None:
            raise nvml_error(self.count_error)
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        if index >= len(self.gpus):
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[index]

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return self._gpu(handle).uuid

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self._gpu(handle).name

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        gpu, memory = self._gpu(handle).utilization
        return SimpleNamespace(gpu=gpu, memory=memory)

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        used, total = self._gpu(handle).memory
        return SimpleNamespace(used=used, total=total, free=total - used)

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        power = self._gpu(handle).power_mw
        if power is None:
            raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return power

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return self._gpu(handle).limit_mw

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return self._gpu(handle).temperature

    def nvmlDeviceGetClockInfo(self, handle: Any, clock: int) -> int:
        assert clock == pynvml.NVML_CLOCK_SM
        return self._gpu(handle).sm_clock

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        energy = self._gpu(handle).energy_mj
        if energy is None:
            raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return energy

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:
        return [
            SimpleNamespace(pid=pid, usedGpuMemory=used, gpuInstanceId=None, computeInstanceId=None)
            for pid, used in self._gpu(handle).processes
        ]
