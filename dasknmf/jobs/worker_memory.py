"""Whether a job's workers can hold its tasks, checked before the fit and explained after.

A worker too small for one task of the fit does not fail: its nanny restarts it, the
task moves to the next worker, which dies too, and the fit ends in
``KilledWorker`` after a minute of restarts. :func:`task_need` estimates a task's
memory from the input's metadata and the job's rank, :func:`check_worker_memory`
compares it with each worker's limit before anything is computed, and
:func:`lost_workers` turns a ``KilledWorker`` during the fit into the same kind of
message.

This is kept apart from :mod:`dasknmf.jobs.cluster`, which sets the scheduler up and
tears it down: the estimate is arithmetic on metadata, and the check only asks a
running client about its workers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
from dask.utils import format_bytes

from dasknmf.errors import DaskNMFError

__all__ = [
    "MEMORY_FRACTION_KEYS",
    "TILE_COPIES",
    "TaskNeed",
    "WorkersLostError",
    "WorkersTooSmallError",
    "check_worker_memory",
    "lost_workers",
    "task_need",
]


class WorkersTooSmallError(DaskNMFError, MemoryError):
    """The workers' memory limits are below what the fit's tasks need."""


class WorkersLostError(DaskNMFError, MemoryError):
    """Workers died while running a task of the fit (``KilledWorker``)."""


#: dask's settings of a worker's thresholds, as fractions of its memory limit: the
#: first one set is where a worker stops running tasks (pause) or is restarted.
MEMORY_FRACTION_KEYS = ("distributed.worker.memory.pause", "distributed.worker.memory.terminate")


#: A task's peak memory in tiles: reading a tile (its compressed chunks, the decoded
#: arrays, the working-dtype copy) and the products over it hold several copies at
#: once. (The statistics read a tile in place since they stopped forming row and
#: column indices for every value, which had set dense tiles' peak at ≈ 10 copies.)
#: ``tests/jobs/test_worker_memory.py`` measures the peak of the statistics pass and
#: of an iteration on one tile of each kind (2.9 dense tiles, 2.2–2.7 sparse ones)
#: and checks that these bound it (with room for what varies between processes)
#: without exceeding it by more than 60 %.
TILE_COPIES = {"dense": 4.0, "sparse": 3.0}


@dataclass(frozen=True)
class TaskNeed:
    """The memory one task of a fit needs, estimated from metadata (bytes).

    A task holds one tile of ``V`` several times over while it reads it and computes
    on it (:data:`TILE_COPIES`), and beside it ``W_i`` before and after its update
    (``2 · rows · k``) and the ``k × n`` blocks of ``H`` and of its partial products.

    Attributes
    ----------
    tile_shape : (int, int)
        The tile's rows and columns.
    tile_nnz : int or None
        Stored entries of a tile, on average (``None``: dense tiles).
    tile : int
        One tile decoded.
    copies : float
        The task's peak in tiles.
    factors : int
        The factor blocks and partial products a task holds.
    persisted : int
        All of ``V`` in memory, when the fit keeps it there (0 when out of core).
    """

    tile_shape: tuple[int, int]
    tile_nnz: int | None
    tile: int
    copies: float
    factors: int
    persisted: int = 0

    @property
    def task(self) -> int:
        """One task: its tile's copies and its factor blocks."""
        return int(self.copies * self.tile) + self.factors

    def describe(self) -> str:
        r, c = self.tile_shape
        entries = f", about {self.tile_nnz:,} non-zeros" if self.tile_nnz is not None else ""
        return (
            f"a tile of {r:,} x {c:,}{entries}: {format_bytes(self.tile)} decoded, held "
            f"up to {self.copies:g} times over while it is read and computed on; W and H "
            f"blocks: {format_bytes(self.factors)}"
        )


def task_need(
    shape: tuple[int, int],
    tile_shape: tuple[int, int],
    *,
    nnz: int | None,
    dtype: str | np.dtype,
    n_components: int,
    persisted: bool = False,
) -> TaskNeed:
    """Estimate one task's memory (see :class:`TaskNeed`).

    Parameters
    ----------
    shape, tile_shape : (int, int)
        ``V``'s shape and its tiles'.
    nnz : int or None
        ``V``'s stored entries (``None`` for dense tiles).
    dtype : str or numpy.dtype
        The stored dtype (float64 stays float64, the rest is computed in float32).
    n_components : int
        The rank ``k``.
    persisted : bool
        Whether the fit keeps ``V`` in the workers' memory.

    Examples
    --------
    >>> need = task_need((400_000, 30_000), (100_000, 30_000), nnz=14_500_000,
    ...                  dtype="float32", n_components=20)
    >>> need.tile_nnz, format_bytes(need.task)
    (3625000, '105.09 MiB')
    """
    m, n = shape
    r, c = min(tile_shape[0], m), min(tile_shape[1], n)
    stored = np.dtype(dtype)
    working = stored if stored == np.float64 else np.dtype(np.float32)
    n_tiles = -(-m // r) * -(-n // c)
    if nnz is None:
        tile_nnz, tile, whole = None, r * c * working.itemsize, m * n * working.itemsize
    else:
        tile_nnz = -(-nnz // n_tiles)
        tile = tile_nnz * (working.itemsize + 4) + (r + 1) * 8  # int32 column indices
        whole = nnz * (working.itemsize + 4) + (m + n_tiles) * 4
    copies = TILE_COPIES["dense" if nnz is None else "sparse"]
    if working != stored:  # read in the stored dtype, then converted
        copies += stored.itemsize / working.itemsize
    factors = (2 * r + 2 * n) * n_components * working.itemsize
    return TaskNeed((r, c), tile_nnz, tile, copies, factors, whole if persisted else 0)


def _usable_fraction() -> tuple[float, str]:
    for key in MEMORY_FRACTION_KEYS:
        fraction = dask.config.get(key, None)
        if fraction:
            return float(fraction), key
    return 1.0, "the limit"


def check_worker_memory(client: Any, need: TaskNeed, *, chunks_key: str) -> None:
    """Refuse a fit whose tasks do not fit in the workers' memory.

    Each worker with a memory limit must hold what it uses now (its process, once it
    has imported dasknmf), one task per thread at once, and its share of
    ``V`` when the fit keeps ``V`` in memory, below the fraction of its limit where
    dask pauses it (``distributed.worker.memory.pause``; a paused worker stalls the
    fit) or restarts it (``terminate``).

    Parameters
    ----------
    client : distributed.Client
        The job's client.
    need : TaskNeed
        From :func:`task_need`.
    chunks_key : str
        What sets the tiles of this job (named in the message).

    Raises
    ------
    WorkersTooSmallError
        Naming the worker's limit, what it would need and what to change.
    """
    workers = client.scheduler_info(n_workers=-1)["workers"]
    try:
        measured = client.run(_process_memory)
    except Exception:  # a worker going away: the scheduler's last figures will do
        measured = {}
    fraction, key = _usable_fraction()
    share = need.persisted // max(len(workers), 1)
    short = []
    for address, w in workers.items():
        limit = int(w.get("memory_limit") or 0)
        if not limit:
            continue  # no limit: the whole host
        used = int(measured.get(address) or w.get("metrics", {}).get("memory", 0))
        threads = int(w.get("nthreads", 1))
        total = used + threads * need.task + share
        if total > fraction * limit:
            short.append((limit, used, threads, total, address))
    if not short:
        return
    limit, used, threads, total, address = min(short)
    where = f"{len(short)} of the {len(workers)} workers" if len(workers) > 1 else "the worker"
    persisted = (
        f", and its share of V kept in memory ({format_bytes(share)}; model.persist: false "
        "keeps V on disk)"
        if share
        else ""
    )
    raise WorkersTooSmallError(
        f"the workers are too small for this job: {where} (e.g. {address}) have a memory "
        f"limit of {format_bytes(limit)}, of which dask lets a worker use "
        f"{format_bytes(int(fraction * limit))} ({fraction:.0%}, {key}); such a worker "
        f"uses {format_bytes(used)} already and would run {threads} task(s) at once of "
        f"about {format_bytes(need.task)} each ({need.describe()}){persisted}: "
        f"{format_bytes(total)} in all. Give each worker more memory (cluster.memory_limit, "
        f"dask worker --memory-limit, sbatch --mem), fewer threads per worker, or smaller "
        f"tiles ({chunks_key}). Nothing was computed."
    )


def _process_memory() -> int:
    """On a worker: its process's memory once it has imported what the fit's tasks
    import (a fresh worker's heartbeat figure is far below what it uses then): the
    storage layer (zarr), the products and the solvers' kernels (SciPy). ``import
    dasknmf`` alone imports almost nothing (its modules load on first use)."""
    import importlib

    import psutil

    for module in ("dasknmf.storage", "dasknmf.products", "dasknmf.solvers"):
        importlib.import_module(module)  # the import is the point
    return int(psutil.Process().memory_info().rss)


def lost_workers(exc: BaseException, need: TaskNeed | None) -> WorkersLostError:
    """The error to report for a ``distributed.scheduler.KilledWorker`` of the fit:
    the task's kind, how many workers died running it, their memory limit and what
    one task was estimated to need."""
    task = getattr(exc, "task", None)
    worker = getattr(exc, "last_worker", None)
    tries = int(getattr(exc, "allowed_failures", 0)) + 1
    name = task[0] if isinstance(task, tuple) else str(task)
    kind = re.sub(r"-[0-9a-f]{32}$", "", str(name))  # without the token
    limit = getattr(worker, "memory_limit", 0)
    limit_text = f"a memory limit of {format_bytes(limit)}" if limit else "no memory limit"
    estimate = (
        f"; one task of this fit was estimated at {format_bytes(need.task)} ({need.describe()})"
        if need is not None
        else ""
    )
    return WorkersLostError(
        f"the fit lost {tries} workers: each died while running a {kind!r} task "
        f"({task!r}), the last one {getattr(worker, 'address', '?')} with {limit_text}"
        f"{estimate}. Workers die like this when a task needs more memory than they have "
        "(their logs say 'exceeded 95% memory budget'): give each worker more memory, "
        "fewer threads per worker, or smaller tiles (input.chunks; a store: ingest it again "
        "with smaller --chunks)."
    )
