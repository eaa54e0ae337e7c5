"""What every benchmark script shares: the machine line and the per-iteration timing."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from importlib.metadata import version

import psutil


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
