"""What the scheduler in use can offer: memory, threads, and BLAS discipline.

The fit never creates a cluster: it uses the active ``distributed.Client`` if there is
one, else dask's default (threaded) scheduler in this process.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

import dask.config
import dask.threaded
import psutil
from threadpoolctl import threadpool_limits

F = TypeVar("F", bound=Callable)


def active_client():
    """The current ``distributed.Client``, or ``None`` when dask runs in-process.

    A client exists only where ``distributed`` was imported; importing it just to ask
    would add its start-up (a quarter of a second, docs/benchmarks.md) to every fit of
    a script that never uses a cluster.
    """
    module = sys.modules.get("distributed")
    if module is None:
        return None
    try:
        return module.get_client()
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
def task_threads() -> Iterator[None]:
    """Run dask's tasks in this process's thread pool, the way a fit wants them.

    - BLAS is limited to one thread: dask already runs one task per core, and a
      multi-threaded BLAS call inside each task oversubscribes the cores, which slows
      an MU iteration and the randomized SVD's QR factorisations several times over
      (docs/benchmarks.md).
    - dask's threaded scheduler (as a function: a name makes dask check it against
      ``distributed``) and task-based rechunking are set, unless a scheduler is
      configured: otherwise every ``dask.compute`` and rechunk imports
      ``distributed`` to look for a client, whose start-up then counts in a laptop's
      first fit. No client can exist while ``distributed`` was never imported, so
      these are the choices dask would make.

    Workers of a ``distributed`` cluster run in other processes and set their BLAS
    threads through their own environment, so nothing is changed when a client is
    active.
    """
    if active_client() is not None:
        yield
        return
    with contextlib.ExitStack() as stack:
        stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        if "distributed" not in sys.modules and dask.config.get("scheduler", None) is None:
            # What dask would choose without a client, said so that it does not look.
            local = {"scheduler": dask.threaded.get, "array.rechunk.method": "tasks"}
            stack.enter_context(dask.config.set(local))
        yield


def in_task_threads(fn: F) -> F:
    """Run ``fn`` inside :func:`task_threads` (for the estimator's methods)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with task_threads():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# -- the allocator of distributed's workers ------------------------------------------
# distributed's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536
# (``distributed.nanny.pre-spawn-environ``), so that freed memory goes back to the OS.
# Setting it also switches off glibc's adaptive mmap threshold: every allocation above
# 128 KiB becomes a fresh mmap, unmapped when freed, and its pages are faulted in (and
# zeroed) again at first touch. An iteration allocates a k × c array per tile and
# sums them, so a worker pays that again and again: allocations and a row block's
# kernels ran slower in a worker than in this process, the same gap as this process
# gets when started with the variable set (docs/benchmarks.md, "Figures behind the
# code"). During a fit the workers' glibc keeps freed blocks up to these sizes for
# reuse instead.

#: ``mallopt`` parameters (glibc's ``malloc.h``).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Allocations below this come from the heap during a fit: glibc's largest allowed
#: value on 64-bit systems (a k × c block above it is still mapped on its own).
FIT_MMAP_THRESHOLD = 32 * 2**20
#: Free memory at the top of the heap kept during a fit: room for a few such blocks
#: (larger values were no faster; docs/benchmarks.md).
FIT_TRIM_THRESHOLD = 64 * 2**20
#: Memory a worker must have left below its first memory threshold (target, spill or
#: pause) for a fit to change its settings:
#: the kept heap can grow by fragments of freed blocks beyond the trim threshold.
HEADROOM = 8 * FIT_TRIM_THRESHOLD
#: glibc's default mmap and trim thresholds, restored after a fit (the trim threshold
#: unless the worker's environment sets MALLOC_TRIM_THRESHOLD_).
_DEFAULT_MMAP_THRESHOLD = _DEFAULT_TRIM_THRESHOLD = 128 * 2**10
#: Attribute of the worker object counting the fits that hold the roomy heap.
_HOLDERS = "_dasknmf_heap_holders"


@functools.cache
def _glibc():
    """This process's C library if it has glibc's ``mallopt``, else ``None``."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:  # pragma: no cover - no shared C library
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None  # pragma: no cover - musl, macOS
    return libc


def _has_headroom(dask_worker) -> bool:
    """Whether the worker's managed memory leaves room for the heap a fit keeps: a
    worker near its first threshold (spilling, pausing) must give freed memory back,
    or distributed spills or pauses it, and a paused worker can stall the fit."""
    manager = getattr(dask_worker, "memory_manager", None)
    limit = getattr(manager, "memory_limit", None)
    fractions = [
        getattr(manager, f"memory_{name}_fraction", False) for name in ("target", "spill", "pause")
    ]
    active = [f for f in fractions if f]
    if not limit or not active:
        return True  # no limit, or one that nothing enforces
    used = dask_worker.monitor.get_process_memory()
    return limit * min(active) - used > HEADROOM


def _hold_heap(dask_worker) -> int:
    """On a worker: the fit-time allocator settings, for the first fit to ask (left
    as they are on a worker without :data:`HEADROOM` below its first memory threshold,
    see :func:`_has_headroom`)."""
    holders = getattr(dask_worker, _HOLDERS, 0)
    libc = _glibc()
    if holders == 0 and libc is not None and _has_headroom(dask_worker):
        libc.mallopt(_M_MMAP_THRESHOLD, FIT_MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, FIT_TRIM_THRESHOLD)
    setattr(dask_worker, _HOLDERS, holders + 1)
    return holders + 1


def _release_heap(dask_worker) -> int:
    """On a worker: the settings it was started with, once the last fit is done, and
    the freed heap handed back to the OS."""
    holders = max(getattr(dask_worker, _HOLDERS, 0) - 1, 0)
    setattr(dask_worker, _HOLDERS, holders)
    libc = _glibc()
    if holders == 0 and libc is not None:
        trim = os.environ.get("MALLOC_TRIM_THRESHOLD_", "")
        libc.mallopt(_M_TRIM_THRESHOLD, int(trim) if trim.isdigit() else _DEFAULT_TRIM_THRESHOLD)
        libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_MMAP_THRESHOLD)
        libc.malloc_trim(0)
    return holders


@contextlib.contextmanager
def reusing_worker_heap(client) -> Iterator[None]:
    """Let the workers' allocator reuse freed large blocks while the body runs.

    On the ``distributed`` cluster of ``client`` each worker's glibc keeps freed
    blocks up to :data:`FIT_MMAP_THRESHOLD` in its heap and up to
    :data:`FIT_TRIM_THRESHOLD` of free heap, instead of unmapping them (see above);
    afterwards the settings the workers started with come back (glibc's adaptive
    mmap threshold, already off under distributed's environment, stays off) and the
    free heap is trimmed. Fits running at once on one cluster share the settings (a
    count on each worker). Workers that join during the body, workers without
    glibc, and workers with less than :data:`HEADROOM` left below their first memory
    threshold keep their own settings. With ``client`` ``None`` (dask's local
    schedulers) nothing changes: this process keeps glibc's adaptive defaults.
    """
    if client is None:
        yield
        return
    # Only speed depends on these settings: a worker that cannot take them (one dying,
    # a cluster closing) must not fail the fit or hide its error.
    with contextlib.suppress(Exception):
        client.run(_hold_heap)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            client.run(_release_heap)
