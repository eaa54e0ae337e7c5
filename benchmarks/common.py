"""What every benchmark script shares: the machine line, the per-iteration timing and
the peak memory of a cluster's workers."""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from distributed import Client


def machine(*packages: str) -> str:
    """One line naming this machine and the versions of ``packages`` (and dasknmf)."""
    versions = ", ".join(f"{name} {version(name)}" for name in (*packages, "dasknmf"))
    return (
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
        f"python {platform.python_version()}, {versions}"
    )


def per_iteration(fit: Callable[[int], object], short: int, long: int) -> float:
    """Seconds per iteration of ``fit(max_iter)``: ``(t(long) − t(short)) / (long − short)``.

    The difference cancels what a fit costs once (opening the input, its statistics,
    the initialisation, gathering the result).
    """
    times = []
    for n in (short, long):
        start = time.perf_counter()
        fit(n)
        times.append(time.perf_counter() - start)
    return (times[1] - times[0]) / (long - short)


class WorkerPeaks:
    """Samples the resident memory of each worker process while it is running."""

    def __init__(self, client: Client, interval: float = 0.2) -> None:
        self.client, self.interval = client, interval
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.client.run(lambda: psutil.Process().memory_info().rss)
            for worker, value in rss.items():
                self.peak[worker] = max(self.peak.get(worker, 0), value)
            self._stop.wait(self.interval)

    def __enter__(self) -> WorkerPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
