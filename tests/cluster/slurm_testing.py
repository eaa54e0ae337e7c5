"""SLURM for the tests of ``deploy/slurm``: stand-in commands for the fast tests, and
a real one-node SLURM (``deploy/slurm/local-slurm.sh``) for the slow ones.

A stand-in is honest only where the recipe's own logic is under test (what it checks
before calling SLURM, what it does with SLURM's answer); everything that depends on
what SLURM does (allocations, steps, signals, two jobs on a node) runs on the real one.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster.conftest import REPO

SLURM = REPO / "deploy" / "slurm"
SBATCH_SCRIPT = SLURM / "dasknmf.sbatch"
SLURM_CLUSTER = SLURM / "slurm_cluster.py"
LOCAL_SLURM = SLURM / "local-slurm.sh"
VENV_BIN = Path(sys.executable).parent

#: ``slurm_cluster.py`` beyond its settings needs dask-jobqueue (the ``slurm`` extra).
needs_jobqueue = pytest.mark.skipif(
    importlib.util.find_spec("dask_jobqueue") is None,
    reason="dask-jobqueue is not installed (pip install -e '.[slurm]')",
)

#: One CPU and 1.5 GiB per job: two jobs fit on the node at once.
SMALL = ["--nodes=1", "--cpus-per-task=1", "--mem=1536M", "--time=00:10:00"]

#: The job every SLURM test runs: the built-in example, small enough for seconds.
JOB = """\
version: 1
input: {{path: "example:term-document", rows: 1200, cols: 400, chunks: [600, 400]}}
model: {{n_components: 4, solver: hals, max_iter: 10, tol: 0, random_state: 0}}
output: {{directory: "{output}"}}
report: {{plot: false}}
"""


def write_job(path: Path, output: Path) -> Path:
    path.write_text(JOB.format(output=output))
    return path


def fake_command(folder: Path, name: str, body: str) -> Path:
    """An executable ``folder/name`` running the bash ``body``; each call's arguments
    are appended to ``folder/name.calls``, one line each."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    calls = folder / f"{name}.calls"
    path.write_text(f'#!/usr/bin/env bash\necho "$*" >>"{calls}"\n{body}\n')
    path.chmod(0o755)
    return path


def calls(folder: Path, name: str) -> list[str]:
    """The argument lines of every call of the stand-in ``name`` so far."""
    path = folder / f"{name}.calls"
    return path.read_text().splitlines() if path.exists() else []


def environment(path_first: Path | None = None, **extra: str) -> dict[str, str]:
    """This environment with ``path_first`` and the test's interpreter first on PATH."""
    env = dict(os.environ)
    parts = [str(path_first)] if path_first is not None else []
    env["PATH"] = os.pathsep.join([*parts, str(VENV_BIN), env.get("PATH", "")])
    env.update(extra)
    return env


def dask_processes(marker: str | None = None) -> list[str]:
    """Command lines of dask schedulers and workers running on this machine; with a
    ``marker``, only those whose command line holds it (a test's own directory: a
    test must not count the processes of another test running beside it)."""
    # -ww: whole command lines (ps cuts them at the terminal's width otherwise).
    done = subprocess.run(["ps", "-ww", "-eo", "args="], capture_output=True, text=True)
    return [
        line
        for line in done.stdout.splitlines()
        if ("dask worker" in line or "dask scheduler" in line or "dask_worker" in line)
        and (marker is None or marker in line)
    ]


def no_dask_left(directory: Path, timeout: float = 30) -> None:
    """Wait until no dask process started under ``directory`` (a test's own) is left."""
    deadline = time.monotonic() + timeout
    while (left := dask_processes(str(directory))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"dask processes left behind: {left}"


def submit_env(tmp_path: Path) -> dict[str, str]:
    """What ``dasknmf.sbatch`` needs in a test (deploy/README.md's variables)."""
    return {
        "DASKNMF_REPO": str(REPO),
        "DASKNMF_VENV": str(VENV_BIN.parent),
        "WORKER_DIR": str(tmp_path / "scratch"),
    }


@dataclass(frozen=True)
class LocalSlurm:
    """A SLURM started by ``local-slurm.sh`` in ``directory``."""

    directory: Path

    @property
    def env(self) -> dict[str, str]:
        return environment(SLURM_CONF=str(self.directory / "slurm.conf"))

    def run(self, *command: str, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("timeout", 60)
        return subprocess.run(command, capture_output=True, text=True, env=self.env, **kwargs)

    def sbatch(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
        """Submit; the job id."""
        done = subprocess.run(
            ["sbatch", "--parsable", *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env={**self.env, **(env or {})},
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().split(";")[0]

    def state(self, job: str) -> dict[str, str]:
        """``scontrol show job``'s fields (JobState, ExitCode, ...)."""
        text = self.run("scontrol", "show", "job", job).stdout
        return dict(item.split("=", 1) for item in text.split() if "=" in item)

    def wait(self, *jobs: str, timeout: float = 240) -> dict[str, dict[str, str]]:
        """Wait until every job has ended; their states."""
        deadline = time.monotonic() + timeout
        while True:
            states = {job: self.state(job) for job in jobs}
            if all(
                s.get("JobState") not in ("PENDING", "RUNNING", "COMPLETING")
                for s in states.values()
            ):
                return states
            if time.monotonic() > deadline:
                self.run("scancel", *jobs)
                pytest.fail(f"SLURM jobs still running after {timeout}s: {states}")
            time.sleep(0.5)

    def idle(self) -> bool:
        """No job in the queue."""
        return self.run("squeue", "-h").stdout.strip() == ""


def start_local_slurm(directory: Path) -> LocalSlurm:
    """Start the one-node SLURM, or skip (saying why) where it cannot run here."""
    if shutil.which("sbatch") is None or shutil.which("slurmctld", path="/usr/sbin:/sbin") is None:
        pytest.skip(
            "SLURM is not installed (apt-get install slurm-wlm munge; .ci/run installs it "
            "where it runs as root)"
        )
    if os.geteuid() != 0:
        pytest.skip("the local SLURM runs its daemons as root (SlurmUser=root): not root")
    done = subprocess.run(
        [str(LOCAL_SLURM), "start", str(directory)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        subprocess.run([str(LOCAL_SLURM), "stop", str(directory)], capture_output=True)
        pytest.fail(f"local-slurm.sh start failed:\n{done.stdout}\n{done.stderr}")
    return LocalSlurm(directory)


def stop_local_slurm(slurm: LocalSlurm) -> None:
    slurm.run("scancel", "--user", "root")
    subprocess.run(
        [str(LOCAL_SLURM), "stop", str(slurm.directory)],
        capture_output=True,
        text=True,
        timeout=60,
    )
