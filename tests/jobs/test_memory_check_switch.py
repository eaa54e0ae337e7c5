"""``--no-memory-check``: run, submit and resume without comparing the workers' memory
limits with what one task of the fit needs (``tests/jobs/test_worker_memory.py`` has
the check itself), for users who know their workers cope."""

from __future__ import annotations

import json
from pathlib import Path

import dask
import pytest

import dasknmf
from dasknmf.cli import EXIT_OK, EXIT_USAGE, main
from dasknmf.jobs import runner
from tests.helpers import make_matrix

#: Worker thresholds off: a worker over its limit goes on (no pause, no spilling), so
#: that only the check can refuse the job.
UNCHECKED_WORKERS = {
    f"distributed.worker.memory.{key}": False for key in ("target", "spill", "pause", "terminate")
}


def job_file(tmp_path: Path, cluster: dict) -> Path:
    store = tmp_path / "V.zarr"
    dasknmf.write_matrix(make_matrix(120, 80, density=0.2, seed=2), store, chunks=(60, 80))
    job = {
        "input": {"path": str(store)},
        "model": {"n_components": 3, "max_iter": 4, "tol": 0, "random_state": 0},
        "cluster": cluster,
        "output": {"directory": str(tmp_path / "out")},
        "report": {"plot": False},
    }
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(job))
    return path


def test_a_job_the_check_refuses_runs_with_no_memory_check(tmp_path, capsys):
    """A worker in this process, limited to 100 MiB: the check counts the process's
    memory (this test run's, hundreds of MiB) and refuses; the switch runs it."""
    local = {"type": "local", "n_workers": 1, "threads_per_worker": 1, "processes": False}
    path = job_file(tmp_path, {**local, "memory_limit": "100MiB"})
    with dask.config.set(UNCHECKED_WORKERS):
        assert main(["run", str(path)]) == EXIT_USAGE
        assert "the workers are too small for this job" in capsys.readouterr().err
        assert not (tmp_path / "out").exists()

        assert main(["run", str(path), "--no-memory-check"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "note: the workers' memory limits were not compared" in out
    assert "(--no-memory-check)" in out
    assert (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize("command", ["run", "submit", "resume"])
@pytest.mark.parametrize("switch", [False, True])
def test_each_job_command_passes_the_switch_on(command, switch, tmp_path, monkeypatch):
    seen = {}

    def record(*args, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)  # the job itself is not the point

    monkeypatch.setattr(runner, "resume_job" if command == "resume" else "run_job", record)
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_file.write_text(json.dumps({"address": "tcp://127.0.0.1:9"}))
    path = job_file(tmp_path, {"type": "threads"})
    target = str(tmp_path / "out") if command == "resume" else str(path)
    args = [command, target, *(["--scheduler-file", str(scheduler_file)] * (command == "submit"))]
    with pytest.raises(SystemExit):
        main([*args, *(["--no-memory-check"] if switch else [])])
    assert seen["check_memory"] is not switch
