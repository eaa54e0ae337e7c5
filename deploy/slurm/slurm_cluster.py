#!/usr/bin/env python3
"""A dask cluster on SLURM through dask-jobqueue, for ``dasknmf submit``.

Starts a scheduler in this process, submits ``--jobs`` SLURM jobs of dask workers
(``cores`` threads and ``memory`` each, split over ``processes`` worker processes),
waits until they are connected, writes the scheduler file and keeps the cluster up
until interrupted (Ctrl-C, SIGTERM) or ``--lifetime`` runs out; then the worker
jobs are cancelled and the scheduler file removed (only when this run wrote it).
Run it on a login node (in ``tmux``/``screen``) or inside a small allocation, then,
from any node that sees the shared file system::

    dasknmf submit job.yaml --scheduler-file /shared/dask/scheduler.json

Settings come from a YAML file (``slurm.yaml`` beside this script shows every key)
and the command line, which wins. Needs ``pip install 'dasknmf[slurm]'``
(dask-jobqueue); ``--dry-run`` prints the settings, and the job script when
dask-jobqueue is installed, and asks ``sbatch --test-only`` whether SLURM would
accept it, without submitting anything or starting a scheduler.

Before anything is submitted, the scheduler file's path is checked (a directory it
can be written in; not the file of a scheduler that is running) and the worker job
is shown to ``sbatch --test-only``: a job SLURM refuses (unknown partition, account,
too much memory) is an error at once, exit 2, with SLURM's own message. Each worker
job writes its log to ``slurm-<jobid>.out`` in the directory this script was started
in (``--log-directory`` puts them elsewhere).

Exit status: 0 stopped as asked; 1 the workers did not connect within ``--timeout``;
2 a bad setting, an unusable scheduler file or a job SLURM refused.

Examples
--------
.. code-block:: console

    $ python deploy/slurm/slurm_cluster.py --config deploy/slurm/slurm.yaml --jobs 8 \\
    ...     --account proj42 --scheduler-file /shared/dask/scheduler.json
    $ python deploy/slurm/slurm_cluster.py --config deploy/slurm/slurm.yaml --dry-run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
    "log_directory": (None, "where the worker jobs write slurm-<jobid>.out (default: here)"),
    "scheduler_file": ("dask-scheduler.json", "where to write the scheduler file (shared)"),
    "dask_config": (str(REPO / "configs" / "dask.yaml"), "DASK_CONFIG for every process"),
    "python": (None, "Python on the compute nodes (default: the one running this script)"),
    "job_extra_directives": ([], "more #SBATCH lines, e.g. --qos=long (repeatable)"),
    "job_script_prologue": ([], "shell lines run before the worker, e.g. module loads"),
    "timeout": (600, "seconds to wait for all workers (queueing included)"),
    "lifetime": (None, "seconds to keep the cluster up (default: until interrupted)"),
}
_LISTS = {"job_extra_directives", "job_script_prologue"}
_INTS = {"jobs", "cores", "processes", "timeout", "lifetime"}
#: What the worker jobs connect to in the job script of ``--dry-run`` (no scheduler).
PLACEHOLDER = "tcp://SCHEDULER:PORT"


class SettingsError(ValueError):
    """A setting from the YAML file or the command line is not valid."""


class RefusedError(RuntimeError):
    """SLURM refused the worker job (``sbatch`` failed); the message is SLURM's."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(_list_values_joined(sys.argv[1:] if argv is None else argv))
    try:
        settings = resolve(args)
    except SettingsError as exc:
        return _error(str(exc))
    for key, value in settings.items():
        print(f"  {key:<20} : {value}")
    try:
        if not args.dry_run:
            check_scheduler_file(settings["scheduler_file"])
    except SettingsError as exc:
        return _error(str(exc))
    try:
        from dask_jobqueue.slurm import SLURMJob
    except ImportError:
        message = "dask-jobqueue is not installed: pip install 'dasknmf[slurm]'"
        if args.dry_run:
            print(f"(job script not shown: {message})")
            return 0
        return _error(message)

    script = SLURMJob(scheduler=PLACEHOLDER, name="dasknmf-worker", **job_kwargs(settings))
    if args.dry_run:
        print(script.job_script())
    try:
        verdict = test_submission(script.job_script())
    except RefusedError as exc:
        return _error(str(exc))
    if verdict is not None:
        print(f"sbatch --test-only: {verdict}")
    if args.dry_run:
        return 0

    import dask.config

    # The scheduler runs in this process: it reads the same dask config as the workers.
    os.environ["DASK_CONFIG"] = settings["dask_config"]
    with open(settings["dask_config"]) as f:
        dask.config.update(dask.config.config, yaml.safe_load(f) or {}, priority="new")
    refused: list[str] = []
    with _cluster_class(refused)(**cluster_kwargs(settings)) as cluster:
        return _serve(cluster, settings, refused)


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


def job_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``dask_jobqueue.SLURMJob`` (version 0.8 or later)."""
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
    }
    for key in ("queue", "account", "interface", "local_directory", "log_directory"):
        if settings[key] is not None:
            kwargs[key] = settings[key]
    return kwargs


def cluster_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``dask_jobqueue.SLURMCluster``: the job's, and the
    scheduler's (on the same interface as the workers)."""
    # The dashboard on a random port: several clusters may share a login node.
    scheduler: dict[str, Any] = {"dashboard_address": ":0"}
    if settings["interface"] is not None:
        scheduler["interface"] = settings["interface"]
    return {**job_kwargs(settings), "scheduler_options": scheduler}


def check_scheduler_file(path: str) -> None:
    """Refuse a scheduler file that could not be written, or that belongs to a
    scheduler that is running (checked before anything is submitted)."""
    target = Path(path)
    if target.is_dir():
        raise SettingsError(f"scheduler_file {path!r} is a directory; give a file's path")
    if target.exists():
        address = _address_in(target)
        if address is not None and _listening(address):
            raise SettingsError(
                f"scheduler_file {path!r} belongs to a running scheduler ({address}): "
                "stop that cluster first, or give another --scheduler-file"
            )
    folder = target.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise SettingsError(
            f"scheduler_file {path!r} cannot be written: {str(folder)!r} is a file, "
            "not a directory"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SettingsError(
            f"scheduler_file {path!r} cannot be written: no permission to write in {str(folder)!r}"
        )


def test_submission(script: str) -> str | None:
    """SLURM's answer to ``sbatch --test-only`` of the worker job (``None`` without
    ``sbatch`` on PATH); raises :class:`RefusedError` when SLURM would refuse it."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(script)
    try:
        done = subprocess.run(
            [sbatch, "--test-only", f.name], capture_output=True, text=True, timeout=60
        )
    finally:
        os.unlink(f.name)
    said = (done.stderr.strip() or done.stdout.strip()).replace("\n", "; ")
    if done.returncode != 0:
        raise RefusedError(f"sbatch --test-only refuses the worker job: {said}")
    return said


def _cluster_class(refused: list[str]) -> type:
    """``SLURMCluster`` whose jobs put SLURM's message in ``refused`` when ``sbatch``
    fails, instead of raising inside the event loop (a traceback, and a cluster that
    waits for workers that will never come)."""
    from dask_jobqueue import SLURMCluster
    from dask_jobqueue.core import Job
    from dask_jobqueue.slurm import SLURMJob

    class RefusableJob(SLURMJob):
        async def start(self) -> None:
            try:
                await super().start()
            except RuntimeError as exc:  # dask-jobqueue: "Command exited with non-zero..."
                text = str(exc)
                refused.append(text.split("stderr:", 1)[-1].strip() or text)
                await super(Job, self).start()  # no job: nothing to cancel at the end

    class RefusableCluster(SLURMCluster):
        job_cls = RefusableJob

    return RefusableCluster


def _serve(cluster: Any, settings: dict[str, Any], refused: list[str]) -> int:
    from distributed import Client

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # as Ctrl-C: leave the with-blocks cleanly
    workers = settings["jobs"] * settings["processes"]
    scheduler_file = Path(settings["scheduler_file"])
    written = None  # the scheduler file's content, once this run has written it
    cluster.scale(jobs=settings["jobs"])
    print(f"submitting {settings['jobs']} SLURM job(s); scheduler at {cluster.scheduler_address}")
    try:
        with Client(cluster) as client:
            deadline = time.monotonic() + settings["timeout"]
            while (connected := len(client.scheduler_info(n_workers=-1)["workers"])) < workers:
                if refused:
                    return _error(f"SLURM refused a worker job: {'; '.join(refused)}")
                if time.monotonic() > deadline:
                    return _error(
                        f"{connected} of {workers} workers connected within "
                        f"{settings['timeout']}s (jobs still queued? see squeue -u $USER, "
                        "and the jobs' slurm-<jobid>.out)",
                        code=1,
                    )
                time.sleep(0.5)
            scheduler_file.parent.mkdir(parents=True, exist_ok=True)
            client.write_scheduler_file(str(scheduler_file))
            written = scheduler_file.read_text()
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
        # Only the file this run wrote: a failed start must not delete the scheduler
        # file of another cluster, nor one that was written over since.
        try:
            if written is not None and scheduler_file.read_text() == written:
                scheduler_file.unlink()
        except OSError:
            pass
        print("stopping: cancelling the worker jobs")
    return 0


def _address_in(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_text())["address"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _listening(address: str) -> bool:
    """Whether something accepts connections at a dask address (``tcp://host:port``)."""
    parts = urlsplit(address)
    if parts.hostname is None or parts.port is None:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=2):
            return True
    except OSError:
        return False


def _error(message: str, code: int = 2) -> int:
    print(f"slurm_cluster: error: {message}", file=sys.stderr)
    return code


def _list_values_joined(argv: Sequence[str]) -> list[str]:
    """``--job-extra-directives --qos=long`` as ``--job-extra-directives=--qos=long``:
    argparse takes a value that starts with ``-`` for an option."""
    flags = {"--" + key.replace("_", "-") for key in _LISTS}
    out: list[str] = []
    items = iter(argv)
    for item in items:
        if item in flags:
            value = next(items, None)
            out.append(item if value is None else f"{item}={value}")
        else:
            out.append(item)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Settings not given here come from --config, else the defaults shown.",
    )
    parser.add_argument("--config", help="YAML file of settings (see slurm.yaml)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the settings and the job script, ask sbatch --test-only; submit nothing",
    )
    for key, (default, text) in SETTINGS.items():
        flag = "--" + key.replace("_", "-")
        shown = "" if default in (None, []) or "(default" in text else f" (default: {default})"
        if key in _LISTS:
            parser.add_argument(
                flag, dest=key, action="append", metavar="VALUE", help=text + shown
            )
        else:
            kind = int if key in _INTS else str
            parser.add_argument(flag, dest=key, type=kind, help=text + shown)
    return parser


if __name__ == "__main__":
    sys.exit(main())
