#!/usr/bin/env python3
"""A dask cluster on SLURM through dask-jobqueue, for ``dasknmf submit``.

Starts a scheduler in this process, submits ``--jobs`` SLURM jobs of dask workers
(``cores`` threads and ``memory`` each, split over ``processes`` worker processes),
waits until they are connected, writes the scheduler file and keeps the cluster up
until interrupted (Ctrl-C, SIGTERM) or ``--lifetime`` runs out; then the worker
jobs are cancelled and the scheduler file removed. Run it on a login node (in
``tmux``/``screen``) or inside a small allocation, then, from any node that sees the
shared file system::

    dasknmf submit job.yaml --scheduler-file /shared/dask/scheduler.json

Settings come from a YAML file (``slurm.yaml`` beside this script shows every key)
and the command line, which wins. Needs ``pip install 'dasknmf[slurm]'``
(dask-jobqueue); ``--dry-run`` prints the settings, and the job script when
dask-jobqueue is installed, without submitting anything.

Examples
--------
.. code-block:: console

    $ python deploy/slurm/slurm_cluster.py --config deploy/slurm/slurm.yaml --jobs 8 \\
    ...     --account proj42 --scheduler-file /shared/dask/scheduler.json
    $ python deploy/slurm/slurm_cluster.py --config deploy/slurm/slurm.yaml --dry-run
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]

#: Every setting, its default and what it is (also the keys of the YAML file).
SETTINGS: dict[str, tuple[Any, str]] = {
    "jobs": (2, "SLURM jobs of workers to submit"),
    "cores": (8, "CPU cores per job (threads, over all its worker processes)"),
    "processes": (1, "worker processes per job"),
    "memory": ("32GiB", "memory per job (split over its worker processes)"),
    "walltime": ("04:00:00", "time limit of each job"),
    "queue": (None, "SLURM partition (-p)"),
    "account": (None, "SLURM account (-A)"),
    "interface": (None, "network interface of the workers and scheduler, e.g. ib0"),
    "local_directory": (None, "workers' spill directory, a node-local disk (e.g. $TMPDIR)"),
    "scheduler_file": ("dask-scheduler.json", "where to write the scheduler file (shared)"),
    "dask_config": (str(REPO / "configs" / "dask.yaml"), "DASK_CONFIG for every process"),
    "python": (None, "Python on the compute nodes (default: this one)"),
    "job_extra_directives": ([], "more #SBATCH lines, e.g. ['--qos=long']"),
    "job_script_prologue": ([], "shell lines run before the worker, e.g. module loads"),
    "timeout": (600, "seconds to wait for all workers (queueing included)"),
    "lifetime": (None, "seconds to keep the cluster up (default: until interrupted)"),
}
_LISTS = {"job_extra_directives", "job_script_prologue"}
_INTS = {"jobs", "cores", "processes", "timeout", "lifetime"}


class SettingsError(ValueError):
    """A setting from the YAML file or the command line is not valid."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = resolve(args)
    except SettingsError as exc:
        print(f"slurm_cluster: error: {exc}", file=sys.stderr)
        return 2
    for key, value in settings.items():
        print(f"  {key:<20} : {value}")
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        message = "dask-jobqueue is not installed: pip install 'dasknmf[slurm]'"
        if args.dry_run:
            print(f"(job script not shown: {message})")
            return 0
        print(f"slurm_cluster: error: {message}", file=sys.stderr)
        return 2

    import dask.config

    # The scheduler runs in this process: it reads the same dask config as the workers.
    os.environ["DASK_CONFIG"] = settings["dask_config"]
    with open(settings["dask_config"]) as f:
        dask.config.update(dask.config.config, yaml.safe_load(f) or {}, priority="new")
    with SLURMCluster(**cluster_kwargs(settings)) as cluster:
        if args.dry_run:
            print(cluster.job_script())
            return 0
        return _serve(cluster, settings)


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Defaults, then the YAML file, then the command line; checked."""
    settings = {key: default for key, (default, _) in SETTINGS.items()}
    if args.config:
        with open(args.config) as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise SettingsError(f"{args.config}: expected a mapping of settings")
        unknown = sorted(set(data) - set(SETTINGS))
        if unknown:
            raise SettingsError(
                f"{args.config}: unknown setting(s) {', '.join(unknown)}; "
                f"the settings are: {', '.join(SETTINGS)}"
            )
        settings.update(data)
    for key in SETTINGS:
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
    for key in _INTS:
        value = settings[key]
        if value is not None and (not isinstance(value, int) or value < 1):
            raise SettingsError(f"{key} must be an integer >= 1; got {value!r}")
    for key in _LISTS:
        if not isinstance(settings[key], list):
            raise SettingsError(f"{key} must be a list of strings; got {settings[key]!r}")
    if settings["cores"] % settings["processes"]:
        raise SettingsError(
            f"cores ({settings['cores']}) must be a multiple of processes "
            f"({settings['processes']}): each worker process gets cores/processes threads"
        )
    config = Path(os.path.expandvars(str(settings["dask_config"]))).expanduser()
    if not config.is_file():
        raise SettingsError(f"dask_config {str(config)!r} is not a file")
    settings["dask_config"] = str(config.resolve())
    settings["scheduler_file"] = str(Path(settings["scheduler_file"]).expanduser().absolute())
    settings["python"] = settings["python"] or sys.executable
    return settings


def cluster_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``dask_jobqueue.SLURMCluster`` (version 0.8 or later)."""
    kwargs: dict[str, Any] = {
        "cores": settings["cores"],
        "processes": settings["processes"],
        "memory": settings["memory"],
        "walltime": settings["walltime"],
        "job_name": "dasknmf-worker",
        "python": settings["python"],
        "job_extra_directives": list(settings["job_extra_directives"]),
        "job_script_prologue": [
            f"export DASK_CONFIG={settings['dask_config']}",
            *settings["job_script_prologue"],
        ],
        # The dashboard on a random port: several clusters may share a login node.
        "scheduler_options": {"dashboard_address": ":0"},
    }
    for key in ("queue", "account", "interface", "local_directory"):
        if settings[key] is not None:
            kwargs[key] = settings[key]
    if settings["interface"] is not None:
        kwargs["scheduler_options"]["interface"] = settings["interface"]
    return kwargs


def _serve(cluster: Any, settings: dict[str, Any]) -> int:
    from distributed import Client

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # as Ctrl-C: leave the with-blocks cleanly
    workers = settings["jobs"] * settings["processes"]
    scheduler_file = Path(settings["scheduler_file"])
    cluster.scale(jobs=settings["jobs"])
    print(f"submitted {settings['jobs']} SLURM job(s); scheduler at {cluster.scheduler_address}")
    try:
        with Client(cluster) as client:
            try:
                client.wait_for_workers(workers, timeout=settings["timeout"])
            except TimeoutError:
                connected = len(client.scheduler_info(n_workers=-1)["workers"])
                print(
                    f"slurm_cluster: error: {connected} of {workers} workers connected within "
                    f"{settings['timeout']}s (jobs still queued? see squeue -u $USER)",
                    file=sys.stderr,
                )
                return 1
            scheduler_file.parent.mkdir(parents=True, exist_ok=True)
            client.write_scheduler_file(str(scheduler_file))
            print(f"{workers} workers up; scheduler file {scheduler_file}")
            print(f"  dasknmf submit JOB.yaml --scheduler-file {scheduler_file}")
            print(f"  dashboard: {client.dashboard_link}")
            print("Ctrl-C (or SIGTERM) stops the cluster and cancels the worker jobs.")
            end = time.monotonic() + (settings["lifetime"] or float("inf"))
            while time.monotonic() < end:
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            scheduler_file.unlink()
        print("stopping: cancelling the worker jobs")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", help="YAML file of settings (see slurm.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print, submit nothing")
    for key, (_default, text) in SETTINGS.items():
        flag = "--" + key.replace("_", "-")
        if key in _LISTS:
            parser.add_argument(flag, dest=key, action="append", metavar="VALUE", help=text)
        else:
            kind = int if key in _INTS else str
            parser.add_argument(flag, dest=key, type=kind, help=text)
    return parser


if __name__ == "__main__":
    sys.exit(main())
