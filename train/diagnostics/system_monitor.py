"""CPU, memory and GPU utilisation sampled in a background thread (SageMaker's system monitor).

GPU figures come from NVML (nvidia-ml-py), the library nvidia-smi reads; without it, or
without a GPU, the samples carry CPU and memory only.
"""

from __future__ import annotations

import logging
import threading
import time

import psutil

from train.diagnostics.record import SystemSample

log = logging.getLogger(__name__)


class SystemMonitor:
    def __init__(self, interval_seconds: float, use_gpu: bool):
        self.interval = interval_seconds
        self.samples: list[SystemSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="system-monitor", daemon=True)
        self._gpus = _open_gpus() if use_gpu else []
        self._started = time.monotonic()

    def start(self) -> SystemMonitor:
        psutil.cpu_percent(None)  # the first call only sets the reference point
        self._thread.start()
        return self

    def stop(self) -> list[SystemSample]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        return self.samples

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(self._sample())
            except Exception as error:  # noqa: BLE001 - a monitoring hiccup must never stop training
                log.warning("system monitor stopped: %s: %s", type(error).__name__, error)
                return

    def _sample(self) -> SystemSample:
        sample = SystemSample(seconds=time.monotonic() - self._started, cpu_percent=psutil.cpu_percent(None),
                              memory_percent=psutil.virtual_memory().percent)
        if self._gpus:
            import pynvml

            for handle in self._gpus:
                sample.gpu_percent.append(float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu))
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                sample.gpu_memory_percent.append(100.0 * memory.used / max(1, memory.total))
        return sample


def _open_gpus() -> list:
    try:
        import pynvml

        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception as error:  # noqa: BLE001 - no NVML: CPU figures only, said once
        log.warning("GPU utilisation is not sampled (NVML unavailable: %s: %s)", type(error).__name__, error)
        return []
