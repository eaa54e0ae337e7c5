"""What the scheduler in use can offer: memory, threads, and BLAS discipline.

The fit never creates a cluster: it uses the active ``distributed.Client`` if there is
one, else dask's default (threaded) scheduler in this process.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import psutil
from threadpoolctl import threadpool_limits

F = TypeVar("F", bound=Callable)


def active_client():
    """The current ``distributed.Client``, or ``None`` when dask runs in-process."""
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return get_client()
    except ValueError:
        return None


def available_memory() -> int:
    """Bytes the scheduler can hold: the workers' memory limits summed, or this
    machine's available memory for the in-process scheduler."""
    client = active_client()
    if client is None:
        return int(psutil.virtual_memory().available)
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    limits = [w.get("memory_limit") or 0 for w in workers]
    if not limits or not all(limits):
        # A worker without a limit can use the whole host.
        return int(psutil.virtual_memory().total) * max(len(limits), 1)
    return int(sum(limits))


def total_threads() -> int:
    """Threads that run tasks in parallel (all workers' threads, or local cores)."""
    client = active_client()
    if client is None:
        return os.cpu_count() or 1
    return int(sum(client.nthreads().values())) or 1


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit BLAS to one thread while tasks run in this process's thread pool.

    Dask already runs one task per core; a multi-threaded BLAS call inside each task
    oversubscribes the cores: measured 3× slower for an MU iteration and 34× slower
    for the randomized SVD's QR factorisations (docs/benchmarks.md). Workers of a
    ``distributed`` cluster run in other processes and set this through their own
    environment, so nothing is changed when a client is active.
    """
    if active_client() is not None:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def blas_guarded(fn: F) -> F:
    """Run ``fn`` inside :func:`single_threaded_blas` (for the estimator's methods)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with single_threaded_blas():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
