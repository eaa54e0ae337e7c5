"""Helpers of the job tests: a small job mapping, directory snapshots."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

#: Shape and tiles of the small matrix of the end-to-end runs.
M, N, TILES = 90, 40, (30, 40)
REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"


def base_job(input_path: str | Path, output: str | Path, **model: Any) -> dict[str, Any]:
    """A small valid job mapping: 3 components, 15 MU iterations, threads."""
    return {
        "input": {"path": str(input_path), "chunks": list(TILES)},
        "model": {"n_components": 3, "max_iter": 15, "tol": 0, "random_state": 0, **model},
        "cluster": {"type": "threads", "threads": 2},
        "output": {"directory": str(output)},
    }


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes, to check a directory is untouched."""
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def hidden(parent: Path) -> list[str]:
    """Hidden entries (temporary or work directories) left in ``parent``."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)


class StopAt:
    """A progress observer that fails the job at an iteration (a crash mid-fit)."""

    def __init__(self, iteration: int) -> None:
        self.at = iteration

    def event(self, message: str) -> None:
        pass

    def iteration(self, info) -> None:
        if info.iteration == self.at:
            raise RuntimeError(f"simulated crash at iteration {info.iteration}")


def run_killed_at_first_checkpoint(job_file: Path, state: Path, timeout: float = 60) -> None:
    """``dasknmf run JOB --quiet`` in a subprocess, killed with SIGKILL as soon as its
    checkpoint ``state`` (a ``state.json``) exists; fails if the run ended first."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "dasknmf", "run", str(job_file), "--quiet"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill: {err!r}"


#: A plain progress line about a phase: its name, then progress, stamped with the time.
_PHASE_LINE = re.compile(r"^(?!iter ).*  \[\d\d:\d\d:\d\d\]$")


def steps(printed: str) -> list[str]:
    """The lines of a job's output without its phase lines, which appear only for
    phases that last (2 s or more: on a slow machine, writing the outputs may)."""
    return [line for line in printed.splitlines() if not _PHASE_LINE.match(line)]
