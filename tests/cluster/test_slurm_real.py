"""Both SLURM recipes on a real one-node SLURM (``deploy/slurm/local-slurm.sh``), as
``deploy/README.md`` runs them: outputs, exit codes, messages, and no process left.
Skipped, saying why, where SLURM is not installed or cannot run (not root)."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dasknmf.jobs.checkpoints import read_checkpoint
from tests.cluster.slurm_testing import (
    SBATCH_SCRIPT,
    SLURM_CLUSTER,
    SMALL,
    VENV_BIN,
    needs_jobqueue,
    no_dask_left,
    submit_env,
    write_job,
)
from tests.jobs.jobs_testing import dense

pytestmark = pytest.mark.slow


def test_sbatch_recipe_two_jobs_at_once_on_one_node(slurm, tmp_path):
    (tmp_path / "scratch").mkdir()
    jobs = {}
    for name in ("a", "b"):
        job = write_job(tmp_path / f"{name}.yaml", tmp_path / f"out-{name}")
        jobs[name] = slurm.sbatch(
            *SMALL, str(SBATCH_SCRIPT), str(job), cwd=tmp_path, env=submit_env(tmp_path)
        )
    started = time.monotonic()
    states = slurm.wait(*jobs.values())
    print(f"two sbatch jobs, submitted to both COMPLETED: {time.monotonic() - started:.1f} s")
    addresses, errors = set(), []
    for name, job in jobs.items():
        out = (tmp_path / f"dasknmf-{job}.out").read_text()
        assert states[job]["JobState"] == "COMPLETED", out
        assert states[job]["ExitCode"] == "0:0"
        summary = json.loads((tmp_path / f"out-{name}" / "summary.json").read_text())
        assert summary["status"] == "completed"
        errors.append(summary["result"]["final_error"])
        scheduler_log = (tmp_path / f"dask-{job}" / "scheduler.log").read_text()
        addresses.add(scheduler_log.split("Scheduler at:", 1)[1].split()[0])
        logs = out + scheduler_log + (tmp_path / f"dask-{job}" / "workers.log").read_text()
        for bad in ("forcing job termination", "Killed", "CANCELLED", "Address already in use"):
            assert bad not in logs
        assert not (tmp_path / f"dask-{job}" / "scheduler.json").exists()
    assert len(addresses) == 2  # each job's scheduler on a port of its own
    assert errors[0] == pytest.approx(errors[1], rel=1e-9)  # the same job, the same result
    assert not list((tmp_path / "scratch").glob("**/worker-*"))  # scratch cleaned up
    assert slurm.idle()
    no_dask_left(tmp_path)


def test_sbatch_recipe_refuses_a_bad_job_before_starting_the_cluster(slurm, tmp_path):
    job = write_job(tmp_path / "job.yaml", tmp_path / "out")
    job.write_text(job.read_text().replace("n_components: 4", "n_components: -4"))
    jid = slurm.sbatch(
        *SMALL, str(SBATCH_SCRIPT), str(job), cwd=tmp_path, env=submit_env(tmp_path)
    )
    state = slurm.wait(jid, timeout=60)[jid]
    out = (tmp_path / f"dasknmf-{jid}.out").read_text()
    assert state["JobState"] == "FAILED" and state["ExitCode"] == "2:0", out
    assert "n_components" in out and "nothing was started" in out
    assert not (tmp_path / f"dask-{jid}" / "workers.log").exists()
    no_dask_left(tmp_path)


def _lines(process: subprocess.Popen) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


@needs_jobqueue
def test_slurm_cluster_serves_a_job_keeps_a_running_clusters_file_and_stops(slurm, tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    command = [
        sys.executable, str(SLURM_CLUSTER), "--scheduler-file", str(scheduler_file),
        "--jobs", "1", "--cores", "1", "--memory", "1GiB", "--walltime", "00:10:00",
        "--local-directory", str(tmp_path / "scratch"), "--timeout", "120",
    ]  # fmt: skip
    started = time.monotonic()
    cluster = subprocess.Popen(
        command, cwd=tmp_path, env=slurm.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        lines, seen = _lines(cluster), []
        while not any("workers up" in line for line in seen):
            try:
                seen.append(lines.get(timeout=150))
            except queue.Empty:
                pytest.fail(f"no 'workers up' within 150s:\n{''.join(seen)}")
        print(f"slurm_cluster.py: worker connected {time.monotonic() - started:.1f} s after start")
        address = json.loads(scheduler_file.read_text())["address"]

        # A second cluster on the same scheduler file is refused, and the file kept.
        second = subprocess.run(
            command, cwd=tmp_path, env=slurm.env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 2
        assert "belongs to a running scheduler" in second.stderr
        assert json.loads(scheduler_file.read_text())["address"] == address

        job = write_job(tmp_path / "job.yaml", tmp_path / "out")
        submit = [str(VENV_BIN / "dasknmf"), "submit", str(job)]
        done = subprocess.run(
            [*submit, "--scheduler-file", str(scheduler_file)],
            capture_output=True, text=True, env=slurm.env, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert (tmp_path / "out" / "summary.json").exists()
        cluster.send_signal(signal.SIGTERM)
        assert cluster.wait(timeout=60) == 0
    finally:
        if cluster.poll() is None:
            cluster.kill()
    assert not scheduler_file.exists()
    deadline = time.monotonic() + 30
    while not slurm.idle() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert slurm.idle()
    assert list(tmp_path.glob("slurm-*.out"))  # the worker job's log, where it started
    no_dask_left(tmp_path)


@needs_jobqueue
def test_slurm_cluster_unknown_partition_is_an_error_at_once(slurm, tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    stale = json.dumps({"address": "tcp://127.0.0.1:9"})
    scheduler_file.write_text(stale)
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable, str(SLURM_CLUSTER), "--queue", "nosuch", "--jobs", "1",
            "--cores", "1", "--memory", "1GiB", "--scheduler-file", str(scheduler_file),
            "--timeout", "240",
        ],
        cwd=tmp_path, env=slurm.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert time.monotonic() - started < 60
    assert "Invalid partition name specified" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert scheduler_file.read_text() == stale  # a failed start keeps what it did not write
    assert slurm.idle()
    no_dask_left(tmp_path)


#: A job long enough to be stopped mid-fit, with a checkpoint every 5 iterations.
RESUMABLE_JOB = """\
version: 1
input: {{path: "example:term-document", rows: 3000, cols: 1000, chunks: [1500, 1000]}}
model: {{n_components: 6, solver: hals, max_iter: 150, tol: 0, random_state: 0}}
output: {{directory: "{output}"}}
checkpoint: {{every: 5}}
report: {{plot: false}}
"""


def _factors(directory: Path) -> list[np.ndarray]:
    import dasknmf

    return [dense(dasknmf.open_matrix(str(directory / n)).compute()) for n in ("W.zarr", "H.zarr")]


def test_sbatch_job_stopped_mid_fit_resumes_when_submitted_again(slurm, tmp_path):
    """A job cancelled after a checkpoint (as its time limit would end it), submitted
    again with the same command, continues from the checkpoint and ends with the
    factors of a run that was never stopped."""
    (tmp_path / "scratch").mkdir()
    job = tmp_path / "job.yaml"
    job.write_text(RESUMABLE_JOB.format(output=tmp_path / "out"))
    command = [*SMALL, str(SBATCH_SCRIPT), str(job)]
    first = slurm.sbatch(*command, cwd=tmp_path, env=submit_env(tmp_path))
    # The run never stopped: the same job through the same recipe (one worker, one
    # thread: the same sums in the same order), beside it on the node.
    unstopped = [*command, "--set", f"output.directory={tmp_path / 'ref'}"]
    reference = slurm.sbatch(*unstopped, cwd=tmp_path, env=submit_env(tmp_path))
    state = tmp_path / ".out.dasknmf-work" / "checkpoints" / "state.json"
    deadline = time.monotonic() + 180
    while not state.exists() and time.monotonic() < deadline:
        assert slurm.state(first).get("JobState") in ("PENDING", "RUNNING"), slurm.state(first)
        time.sleep(0.2)
    assert state.exists(), (tmp_path / f"dasknmf-{first}.out").read_text()
    slurm.run("scancel", first)
    assert slurm.wait(first, timeout=120)[first]["JobState"] == "CANCELLED"
    stopped_at = read_checkpoint(state.parent).state.iteration
    assert 5 <= stopped_at < 150 and not (tmp_path / "out").exists()

    second = slurm.sbatch(*command, cwd=tmp_path, env=submit_env(tmp_path))
    final = slurm.wait(second)[second]
    out = (tmp_path / f"dasknmf-{second}.out").read_text()
    assert final["JobState"] == "COMPLETED" and final["ExitCode"] == "0:0", out
    resumed_at = json.loads((tmp_path / "out" / "summary.json").read_text())["resumed"]
    assert f"resuming from the checkpoint at iteration {resumed_at['from_iteration']}" in out
    assert resumed_at["from_iteration"] >= stopped_at
    assert not (tmp_path / ".out.dasknmf-work").exists()  # gone with the job's success

    assert slurm.wait(reference)[reference]["JobState"] == "COMPLETED"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    expected = json.loads((tmp_path / "ref" / "summary.json").read_text())
    assert summary["result"]["iterations"] == expected["result"]["iterations"] == 150
    final, reference_final = summary["result"]["final_error"], expected["result"]["final_error"]
    print(f"stopped at {stopped_at}, resumed from {resumed_at['from_iteration']}: final "
          f"error {final!r}, uninterrupted {reference_final!r}")  # fmt: skip
    # To the bit, though the example is float32 and an uninterrupted fit and a resumed
    # one scatter their factors to the workers at different iterations: the Gram
    # kernels do not round a block that arrived unaligned differently (kernels.tiles).
    assert final == reference_final
    for got, want in zip(_factors(tmp_path / "out"), _factors(tmp_path / "ref"), strict=True):
        np.testing.assert_array_equal(got, want)
    assert slurm.idle()
    no_dask_left(tmp_path)
