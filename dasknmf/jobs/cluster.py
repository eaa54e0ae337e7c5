"""The scheduler a job runs on, set up from the ``cluster`` section and torn down after,
and whether its workers can hold the job's tasks.

``threads`` runs dask's threaded scheduler in this process; ``local`` starts a
``distributed.LocalCluster`` for the job and closes it afterwards, ``cuda`` the same
with dask-cuda's ``LocalCUDACluster`` (one worker per GPU); ``existing``
connects a ``Client`` to a running scheduler and closes only that client: the cluster
belongs to whoever started it. While a ``distributed`` client is open it is the
default one, which is how :class:`dasknmf.NMF` finds it.

A worker too small for one task of the fit does not fail: its nanny restarts it, the
task moves to the next worker, which dies too, and the fit ends in
``KilledWorker`` after a minute of restarts. :func:`task_need` estimates a task's
memory from the input's metadata and the job's rank, :func:`check_worker_memory`
compares it with each worker's limit before anything is computed, and
:func:`lost_workers` turns a ``KilledWorker`` during the fit into the same kind of
message.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import dask
import numpy as np
from dask.utils import format_bytes

from dasknmf.errors import DaskNMFError, DeviceUnavailableError
from dasknmf.jobs.config import ClusterConfig
from dasknmf.jobs.tls import check_certificates, explain_handshake

__all__ = [
    "MEMORY_FRACTION_KEYS",
    "TILE_COPIES",
    "SchedulerFileError",
    "SchedulerFileNotFoundError",
    "SchedulerInfo",
    "SchedulerTLSError",
    "TaskNeed",
    "WorkersLostError",
    "WorkersTooSmallError",
    "check_worker_memory",
    "connect",
    "lost_workers",
    "task_need",
]

logger = logging.getLogger(__name__)

#: What the dashboard needs (bokeh), as the extra that installs it.
DASHBOARD_INSTALL = "pip install 'dasknmf[dashboard]'"


class SchedulerFileNotFoundError(DaskNMFError, FileNotFoundError):
    """``cluster.scheduler_file`` does not exist when the job connects."""


class SchedulerFileError(DaskNMFError, ValueError):
    """``cluster.scheduler_file`` is not a scheduler file."""


class SchedulerTLSError(DaskNMFError, ValueError):
    """The scheduler requires TLS and neither the job nor dask's config gives any."""


@dataclass(frozen=True)
class SchedulerInfo:
    """What a job ran on (recorded in ``summary.json``).

    Attributes
    ----------
    type : str
        ``cluster.type``.
    address : str or None
        The scheduler's address (``None`` for ``threads``).
    dashboard_link : str or None
        The dashboard's URL when there is one to look at.
    workers, threads : int
        Worker processes (1 for ``threads``) and threads running tasks in all.
    note : str or None
        Something the user should know, e.g. why no dashboard link is given.
    """

    type: str
    address: str | None
    dashboard_link: str | None
    workers: int
    threads: int
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return asdict(self)


@contextmanager
def connect(config: ClusterConfig) -> Iterator[SchedulerInfo]:
    """Set up the scheduler of ``config`` for the duration of a ``with`` block.

    Examples
    --------
    >>> with connect(ClusterConfig(type="threads", threads=2)) as info:
    ...     info.threads
    2
    """
    if config.type == "threads":
        threads = config.threads or os.cpu_count() or 1
        with dask.config.set(scheduler="threads", num_workers=threads):
            yield SchedulerInfo("threads", None, None, workers=1, threads=threads)
    elif config.type == "local":
        with _local_cluster(config) as info:
            yield info
    elif config.type == "cuda":
        with _cuda_cluster(config) as info:
            yield info
    elif config.type == "existing":
        with _existing_cluster(config) as info:
            yield info
    else:  # pragma: no cover - the config loader allows only the three types
        raise ValueError(f"unknown cluster type {config.type!r}")


@contextmanager
def _local_cluster(config: ClusterConfig) -> Iterator[SchedulerInfo]:
    from distributed import Client, LocalCluster

    # A random port for the scheduler's HTTP server (which serves the dashboard, when
    # asked for and bokeh is installed): two jobs on one machine must not fight over
    # port 8787.
    with (
        LocalCluster(
            n_workers=config.n_workers,
            threads_per_worker=config.threads_per_worker,
            memory_limit=config.memory_limit,
            processes=config.processes,
            dashboard_address=":0",
            scheduler_kwargs={"dashboard": config.dashboard},
        ) as cluster,
        Client(cluster) as client,
    ):
        link, note = dashboard_link(client) if config.dashboard else (None, None)
        if note:
            logger.info(note)
        yield _describe(client, "local", link, note)


@contextmanager
def _cuda_cluster(config: ClusterConfig) -> Iterator[SchedulerInfo]:
    from distributed import Client

    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as exc:
        raise DeviceUnavailableError(
            f"cluster.type 'cuda' needs dask-cuda, which is not installed ({exc}): "
            "pip install 'dasknmf[gpu]', or use cluster.type 'threads' for one GPU."
        ) from exc
    # One thread per worker: a worker drives one GPU, and more threads would only
    # queue kernels on the same device.
    with (
        LocalCUDACluster(
            n_workers=config.n_workers,
            threads_per_worker=1,
            memory_limit=config.memory_limit,
            dashboard_address=":0",
            scheduler_kwargs={"dashboard": config.dashboard},
        ) as cluster,
        Client(cluster) as client,
    ):
        link, note = dashboard_link(client) if config.dashboard else (None, None)
        yield _describe(client, "cuda", link, note)


@contextmanager
def _existing_cluster(config: ClusterConfig) -> Iterator[SchedulerInfo]:
    from distributed import Client
    from distributed.security import Security

    if config.tls is not None:
        check_certificates(config.tls)  # which file is at fault, before distributed fails
        security = Security(
            tls_ca_file=config.tls.ca_file,
            tls_client_cert=config.tls.cert,
            tls_client_key=config.tls.key,
            require_encryption=True,
        )
    else:
        security = Security()  # TLS from dask's config (distributed.comm.tls), if any
    address = config.address or _scheduler_address(config.scheduler_file)
    if (
        address.startswith("tls://")
        and security.get_connection_args("client")["ssl_context"] is None
    ):
        raise SchedulerTLSError(
            f"the scheduler at {address} requires TLS: give cluster.tls (with dasknmf submit: "
            "--tls-ca-file, --tls-cert, --tls-key), or TLS in dask's configuration."
        )
    try:
        client = Client(address, security=security)
    except OSError as exc:  # distributed's CommClosedError: a handshake refused
        if config.tls is None or not address.startswith("tls://"):
            raise
        raise explain_handshake(address, config.tls, exc) from None
    try:
        yield _describe(client, "existing", *dashboard_link(client))
    finally:
        client.close()  # the cluster itself is not ours to stop


def dashboard_link(client: Any) -> tuple[str | None, str | None]:
    """The link to the scheduler's dashboard, given only when the page is the dashboard;
    else ``None`` and why (with what to install), or ``(None, None)`` when the
    scheduler serves no dashboard at all.

    Without bokeh the scheduler's page is only a notice that bokeh is missing; whether
    bokeh is installed is asked of the scheduler, which may run on another host.
    """
    if "dashboard" not in client.scheduler_info(n_workers=0).get("services", {}):
        return None, None
    packages = client.get_versions(packages=["bokeh"])["scheduler"]["packages"]
    if packages.get("bokeh") is None:
        return None, (
            "no dashboard link: bokeh is not installed where the scheduler runs; install "
            f"it there for the dashboard: {DASHBOARD_INSTALL}"
        )
    return client.dashboard_link, None


def _scheduler_address(path: str | None) -> str:
    """The address in a scheduler file (which ``distributed.Client`` would wait for, for
    ever, when it does not exist)."""
    assert path is not None  # validation: address or scheduler_file
    try:
        with open(path) as f:
            return str(json.load(f)["address"])
    except FileNotFoundError:
        raise SchedulerFileNotFoundError(
            f"cluster.scheduler_file {path!r} does not exist: start the scheduler first "
            "(e.g. deploy/processes/start-cluster.sh) or correct the path (a job resumed "
            "on a new cluster: dasknmf resume OUTPUT_DIR --scheduler-file FILE)."
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise SchedulerFileError(
            f"cluster.scheduler_file {path!r} is not a dask scheduler file (JSON with an "
            f"'address'): {exc!r}"
        ) from None


def _describe(client: Any, kind: str, link: str | None, note: str | None) -> SchedulerInfo:
    nthreads = client.nthreads()
    return SchedulerInfo(
        type=kind,
        address=client.scheduler.address,
        dashboard_link=link,
        workers=len(nthreads),
        threads=int(sum(nthreads.values())),
        note=note,
    )


# -- workers too small for the job -------------------------------------------------------


class WorkersTooSmallError(DaskNMFError, MemoryError):
    """The workers' memory limits are below what the fit's tasks need."""


class WorkersLostError(DaskNMFError, MemoryError):
    """Workers died while running a task of the fit (``KilledWorker``)."""


#: dask's settings of a worker's thresholds, as fractions of its memory limit: the
#: first one set is where a worker stops running tasks (pause) or is restarted.
MEMORY_FRACTION_KEYS = ("distributed.worker.memory.pause", "distributed.worker.memory.terminate")


#: A task's peak memory in tiles: reading a tile (its compressed chunks, the decoded
#: arrays, the working-dtype copy) and the statistics and products over it hold
#: several copies at once, more for dense tiles (element-wise temporaries in float64)
#: than for sparse ones. ``tests/jobs/test_worker_memory.py`` measures the peak of
#: the statistics pass and of an iteration on one tile of each kind and checks that
#: these bound it.
TILE_COPIES = {"dense": 10.0, "sparse": 3.5}


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
    (3625000, '119.30 MiB')
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
    import (a fresh worker's heartbeat figure is far below what it uses then)."""
    import psutil

    import dasknmf  # noqa: F401  (the import is the point)

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
