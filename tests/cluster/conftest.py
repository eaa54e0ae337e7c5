"""Real clusters for the tests of this folder: ``dask scheduler`` and ``dask worker``
processes started by ``deploy/processes/start-cluster.sh`` on 127.0.0.1, always
stopped by ``stop-cluster.sh`` (and killed if that fails)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dasknmf
from tests.helpers import make_matrix

REPO = Path(__file__).resolve().parents[2]
PROCESSES = REPO / "deploy" / "processes"
START, STOP = PROCESSES / "start-cluster.sh", PROCESSES / "stop-cluster.sh"
MAKE_CERTS = REPO / "deploy" / "tls" / "make-certs.sh"

#: The small problem fitted on every cluster: 2 x 2 tiles, read by the workers.
M, N, TILES = 400, 300, (200, 150)
PARAMS: dict[str, Any] = {
    "n_components": 4,
    "init": "random",
    "max_iter": 8,
    "tol": 0,
    "random_state": 0,
}


def dask_command() -> str:
    """The ``dask`` command of the Python running the tests."""
    beside = Path(sys.executable).with_name("dask")
    return str(beside) if beside.exists() else (shutil.which("dask") or "dask")


@dataclass(frozen=True)
class Cluster:
    """A cluster started by ``start-cluster.sh`` from ``run_dir``."""

    run_dir: Path
    scheduler_file: Path
    output: str

    @property
    def address(self) -> str:
        return json.loads(self.scheduler_file.read_text())["address"]

    def pid(self, name: str) -> int:
        """The PID of ``scheduler`` or ``worker-<i>``, from its PID file."""
        return int((self.run_dir / f"{name}.pid").read_text())


def start_cluster(run_dir: Path, *options: str, timeout: int = 60) -> Cluster:
    """Run ``start-cluster.sh`` (scheduler on 127.0.0.1, any free port, no dashboard unless
    ``--dashboard-address`` is among ``options``)."""
    scheduler_file = run_dir / "scheduler.json"
    command = [
        str(START),
        "--run-dir",
        str(run_dir),
        "--scheduler-file",
        str(scheduler_file),
        "--dask",
        dask_command(),
        "--python",
        sys.executable,
        "--timeout",
        str(timeout),
        *options,
    ]
    if "--workers-only" not in options:
        command += ["--host", "127.0.0.1", "--port", "0"]
        if "--dashboard-address" not in options:
            command += ["--dashboard-address", "none"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 60)
    if done.returncode != 0:
        stop_cluster(run_dir)
        pytest.fail(
            f"start-cluster.sh exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return Cluster(run_dir, scheduler_file, done.stdout)


def stop_cluster(run_dir: Path) -> None:
    """``stop-cluster.sh``; if it fails, SIGKILL whatever its PID files name."""
    try:
        done = subprocess.run(
            [str(STOP), "--run-dir", str(run_dir), "--grace", "10"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        failed = done.returncode != 0
    except subprocess.TimeoutExpired:
        failed = True
    if failed:
        for pid_file in run_dir.glob("*.pid"):
            pid = int(pid_file.read_text())
            for kill in (os.killpg, os.kill):  # its process group (nanny + worker), or it
                try:
                    kill(pid, signal.SIGKILL)
                    break
                except (ProcessLookupError, PermissionError):
                    continue


@pytest.fixture(scope="package")
def store(tmp_path_factory) -> str:
    """A small sparse store on the (shared, here local) file system."""
    path = str(tmp_path_factory.mktemp("cluster-data") / "V.zarr")
    dasknmf.write_matrix(make_matrix(M, N, density=0.1, seed=3), path, chunks=TILES)
    return path


@pytest.fixture(scope="package")
def reference(store) -> tuple[np.ndarray, np.ndarray]:
    """``W`` and ``H`` of the same fit in this process (dask's threaded scheduler)."""
    model = dasknmf.NMF(**PARAMS)
    W = np.asarray(model.fit_transform(store))
    return W, model.components_


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """A scheduler and two workers (no nanny: a killed worker stays dead)."""
    run_dir = tmp_path_factory.mktemp("cluster")
    try:
        yield start_cluster(run_dir, "--n-workers", "2", "--nthreads", "1", "--no-nanny")
    finally:
        stop_cluster(run_dir)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> Iterator[Any]:
    """A one-node SLURM on 127.0.0.1 for the tests of one module (skips, saying why,
    where SLURM cannot be installed); its daemons stopped at the end."""
    from tests.cluster.slurm_testing import start_local_slurm, stop_local_slurm

    started = start_local_slurm(tmp_path_factory.mktemp("slurm"))
    try:
        yield started
    finally:
        stop_local_slurm(started)
