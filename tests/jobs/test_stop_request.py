"""A job asked to stop (SIGUSR1, as ``sbatch --signal=B:USR1@SECONDS`` sends it before
a time limit) writes a checkpoint at the end of the iteration under way, exits with
its own status (75) and message, and resumes to the results of a run never stopped.

The signal to a real ``dasknmf run`` process; the stop request itself (a flag that the
checkpoint writer reads) in this process, where the iteration it lands on is exact.
The same on a real SLURM: ``tests/cluster/test_slurm_real.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import dasknmf
from dasknmf.cli import EXIT_OK, main
from dasknmf.cli.exit_codes import EXIT_STOPPED
from dasknmf.jobs import checkpoints, runner
from dasknmf.jobs.checkpoint_writer import JobStopped
from dasknmf.jobs.checkpoints import read_checkpoint
from dasknmf.jobs.loading import parse_config
from dasknmf.jobs.runner import resume_job, run_job
from dasknmf.jobs.workarea import WorkArea
from tests.helpers import make_matrix
from tests.jobs.jobs_testing import REPO, StopAt, base_job, dense, hidden


def read_back(directory: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    W, H = (dense(dasknmf.open_matrix(directory / n).compute()) for n in ("W.zarr", "H.zarr"))
    return W, H, json.loads((directory / "summary.json").read_text())


def assert_uninterrupted(resumed: Path, reference: Path) -> dict:
    """The outputs of ``resumed`` are those of ``reference``, to the bit (float64 on
    dask's threads: the same additions in the same order)."""
    W, H, summary = read_back(resumed)
    W_ref, H_ref, expected = read_back(reference)
    np.testing.assert_array_equal(W, W_ref)
    np.testing.assert_array_equal(H, H_ref)
    assert summary["result"]["error_curve"] == expected["result"]["error_curve"]
    return summary


def job_mapping(store: Path, output: Path, every: int, max_iter: int) -> dict:
    job = base_job(store, output, max_iter=max_iter)
    del job["input"]["chunks"]  # a store keeps its tiles
    job["checkpoint"] = {"every": every}
    job["report"] = {"plot": False}
    return job


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "V.zarr"
    dasknmf.write_matrix(make_matrix(300, 200, density=0.1, seed=4), path, chunks=(150, 200))
    return path


class StopRequestAt:
    """Progress that asks for a stop at an iteration, as the signal handler would."""

    def __init__(self, stop: threading.Event, at: int) -> None:
        self.stop, self.at = stop, at

    def event(self, message: str) -> None:
        pass

    def iteration(self, info) -> None:
        if info.iteration == self.at:
            self.stop.set()


@pytest.mark.slow
def test_sigusr1_stops_dasknmf_run_after_a_checkpoint_and_resume_ends_as_uninterrupted(
    store, tmp_path
):
    """A real ``dasknmf run`` process signalled after its fifth iteration: exit 75,
    the checkpoint of the iteration it stopped at (not the periodic one before it),
    the message; then ``dasknmf resume`` ends with the factors of a run never
    stopped."""
    max_iter = 300  # a second or more of iterations left when the signal comes
    job = job_mapping(store, tmp_path / "out", every=50, max_iter=max_iter)
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(job))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "dasknmf", "run", str(path)]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if re.match(r"iter\s+5\b", line):
                proc.send_signal(signal.SIGUSR1)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(seen) + out
    assert proc.returncode == EXIT_STOPPED, out + err
    found = re.search(r"stopped on request after iteration (\d+), with a checkpoint", err)
    assert found is not None, err
    stopped_at = int(found.group(1))
    assert 5 <= stopped_at < max_iter
    assert f"`dasknmf resume {tmp_path / 'out'}` continues it" in err
    assert "Traceback" not in err
    assert f"checkpoint: iteration {stopped_at} (stop requested)" in out
    state = read_checkpoint(WorkArea(tmp_path / "out").checkpoints).state
    assert state.iteration == stopped_at
    assert not (tmp_path / "out").exists()

    before = signal.getsignal(signal.SIGUSR1)
    assert main(["resume", str(tmp_path / "out"), "--quiet"]) == EXIT_OK
    assert signal.getsignal(signal.SIGUSR1) is before  # the command's handler is gone
    run_job(parse_config({**job, "output": {"directory": str(tmp_path / "ref")}}))
    summary = assert_uninterrupted(tmp_path / "out", tmp_path / "ref")
    assert summary["resumed"]["from_iteration"] == stopped_at
    assert summary["result"]["iterations"] == max_iter
    assert hidden(tmp_path) == []


def test_dasknmf_resume_stops_on_sigusr1_too(store, tmp_path, monkeypatch, capsys):
    """The signal comes as ``dasknmf resume`` starts: it stops after its first
    iteration, with a checkpoint of it, exit 75."""
    job = job_mapping(store, tmp_path / "out", every=4, max_iter=20)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_job(parse_config(job), progress=StopAt(6))
    real = runner.resume_job

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGUSR1)  # handled by the command: sets its flag
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "resume_job", signalled)
    assert main(["resume", str(tmp_path / "out")]) == EXIT_STOPPED
    captured = capsys.readouterr()
    assert "resuming from the checkpoint at iteration 4" in captured.out
    assert "checkpoint: iteration 5 (stop requested)" in captured.out
    assert "dasknmf: stopped on request after iteration 5, with a checkpoint" in captured.err
    assert read_checkpoint(WorkArea(tmp_path / "out").checkpoints).state.iteration == 5


def test_a_stop_writes_one_checkpoint_even_without_periodic_ones(store, tmp_path):
    """``checkpoint.every: 0``: the stop's checkpoint is the only one, and the work
    area is kept for it; a resumed job may be stopped again."""
    job = job_mapping(store, tmp_path / "out", every=0, max_iter=20)
    stop = threading.Event()
    with pytest.raises(JobStopped) as stopped:
        run_job(parse_config(job), progress=StopRequestAt(stop, 6), stop=stop)
    work = WorkArea(tmp_path / "out")
    assert stopped.value.iteration == 6 and stopped.value.path == work.checkpoints / "state.json"
    assert read_checkpoint(work.checkpoints).state.iteration == 6

    stop = threading.Event()
    with pytest.raises(JobStopped, match="after iteration 11"):
        resume_job(tmp_path / "out", progress=StopRequestAt(stop, 11), stop=stop)
    assert read_checkpoint(work.checkpoints).state.iteration == 11
    summary = resume_job(tmp_path / "out", stop=threading.Event()).summary
    assert summary["resumed"]["from_iteration"] == 11
    assert summary["checkpoint"] == {"every": 0, "written": 2}
    run_job(parse_config({**job, "output": {"directory": str(tmp_path / "ref")}}))
    assert_uninterrupted(tmp_path / "out", tmp_path / "ref")
    assert hidden(tmp_path) == []


def test_a_failure_without_periodic_checkpoints_still_removes_the_work_area(store, tmp_path):
    job = job_mapping(store, tmp_path / "out", every=0, max_iter=20)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_job(parse_config(job), progress=StopAt(5), stop=threading.Event())
    assert hidden(tmp_path) == []


def test_a_stop_at_a_periodic_checkpoint_writes_it_once(store, tmp_path, monkeypatch):
    written = []
    real = checkpoints.write_checkpoint

    def spy(directory, state, job):
        written.append(state.iteration)
        return real(directory, state, job)

    monkeypatch.setattr(checkpoints, "write_checkpoint", spy)
    job = job_mapping(store, tmp_path / "out", every=3, max_iter=20)
    stop = threading.Event()
    with pytest.raises(JobStopped, match="after iteration 6"):
        run_job(parse_config(job), progress=StopRequestAt(stop, 6), stop=stop)
    assert written == [3, 6]
