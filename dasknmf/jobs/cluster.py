"""The scheduler a job runs on, set up from the ``cluster`` section and torn down after.

``threads`` runs dask's threaded scheduler in this process; ``local`` starts a
``distributed.LocalCluster`` for the job and closes it afterwards, ``cuda`` the same
with dask-cuda's ``LocalCUDACluster`` (one worker per GPU); ``existing``
connects a ``Client`` to a running scheduler and closes only that client: the cluster
belongs to whoever started it. While a ``distributed`` client is open it is the
default one, which is how :class:`dasknmf.NMF` finds it.

Whether the workers can hold the job's tasks is checked in
:mod:`dasknmf.jobs.worker_memory`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import dask

from dasknmf.errors import DaskNMFError, DeviceUnavailableError
from dasknmf.jobs.config import ClusterConfig
from dasknmf.jobs.tls import check_certificates, explain_handshake

__all__ = [
    "SchedulerFileError",
    "SchedulerFileNotFoundError",
    "SchedulerInfo",
    "SchedulerTLSError",
    "connect",
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
