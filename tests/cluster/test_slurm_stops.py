"""Jobs of ``deploy/slurm/dasknmf.sbatch`` stopped before their end on a real SLURM,
and submitted again: one ended by its time limit, one by ``sbatch
--signal=B:USR1@30`` (a last checkpoint, exit 75). Each continues from its
checkpoints by itself and ends with the factors of a run never stopped.

A job of seconds cannot outlast SLURM's shortest time limit (a minute, enforced every
30 s), and how far a longer one gets before it depends on the machine. So each job's
``dasknmf submit`` is frozen (SIGSTOP) right after its first checkpoint: what follows
is what a job longer than its allocation meets, the time limit (SIGTERM to every
process of the job, SIGKILL 5 s later: ``local-slurm.sh``'s KillWait) or the signal
before it, at an iteration the test knows. The first jobs run at once on the node,
beside the uninterrupted run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import dasknmf
from dasknmf.datasets import term_document
from dasknmf.jobs.checkpoints import read_checkpoint
from tests.cluster.slurm_testing import (
    SBATCH_SCRIPT,
    SMALL,
    VENV_BIN,
    LocalSlurm,
    no_dask_left,
    submit_env,
)
from tests.jobs.jobs_testing import dense

# One worker process for the whole scenario: its two tests share one SLURM run.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm-stops")]

MAX_ITER, EVERY = 40, 5
#: float64, so that the comparison below with the uninterrupted fit on threads may
#: allow for the last bits (float32 on the cluster gives the same bits whatever
#: iteration it resumed from: test_slurm_real.py).
JOB = f"""\
version: 1
input: {{{{path: "{{store}}"}}}}
model: {{{{n_components: 4, solver: hals, max_iter: {MAX_ITER}, tol: 0, random_state: 0}}}}
output: {{{{directory: "{{output}}"}}}}
checkpoint: {{{{every: {EVERY}}}}}
report: {{{{plot: false}}}}
"""
#: SLURM's shortest limit; and the signal 30 s before a limit of two minutes, which
#: slurmctld's checks (every 30 s) send when the job is within about 60 s of it: 60
#: to 90 s after the start, past the first checkpoint, as the other job's limit.
TIME_LIMIT, SIGNALLED = "--time=1", ["--time=2", "--signal=B:USR1@30"]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:.0f}s")
        time.sleep(0.05)
    return found


def submit_process(job_file: Path) -> int | None:
    """The PID of the ``dasknmf submit`` of ``job_file``, if it runs."""
    done = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True)
    for line in done.stdout.splitlines():
        pid, _, args = line.strip().partition(" ")
        if f"dasknmf submit {job_file} " in args:
            return int(pid)
    return None


def factors(directory: Path) -> list[np.ndarray]:
    return [dense(dasknmf.open_matrix(directory / n).compute()) for n in ("W.zarr", "H.zarr")]


@dataclass
class Stopped:
    """A job stopped mid-fit, and its submission again."""

    job: Path
    first: str
    again: str = ""
    client: int = 0
    stopped_at: int = 0
    out: str = ""
    outputs_when_stopped: bool = False

    @property
    def output(self) -> Path:
        return self.job.with_suffix("")

    @property
    def state(self) -> Path:
        return self.job.parent / f".{self.output.name}.dasknmf-work" / "checkpoints" / "state.json"


@dataclass
class Scenario:
    slurm: LocalSlurm
    directory: Path
    time_limit: Stopped
    signalled: Stopped
    reference: Path
    seconds: float


@pytest.fixture(scope="module")
def scenario(slurm, tmp_path_factory) -> Scenario:
    """Both jobs stopped and submitted again; the reference run beside them."""
    tmp = tmp_path_factory.mktemp("stops")
    (tmp / "scratch").mkdir()
    store = tmp / "V.zarr"
    V = term_document(1200, 400, seed=0).astype(np.float64)
    dasknmf.write_matrix(V, store, chunks=(600, 400))
    jobs = {}
    for name in ("limit", "signal"):
        jobs[name] = tmp / f"{name}.yaml"
        jobs[name].write_text(JOB.format(store=store, output=tmp / name))
    env = submit_env(tmp)
    started = time.monotonic()
    # A run never stopped: `dasknmf run` of the same job here, on dask's threads.
    reference = subprocess.Popen(
        [str(VENV_BIN / "dasknmf"), "run", str(jobs["limit"]), "--quiet",
         "--set", f"output.directory={tmp / 'reference'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    small = [o for o in SMALL if not o.startswith("--time")]

    def submit(job: Path, *limits: str) -> str:
        return slurm.sbatch(*small, *limits, str(SBATCH_SCRIPT), str(job), cwd=tmp, env=env)

    limit = Stopped(jobs["limit"], submit(jobs["limit"], TIME_LIMIT))
    signalled = Stopped(jobs["signal"], submit(jobs["signal"], *SIGNALLED))
    freeze_at_first_checkpoint(slurm, limit, signalled)

    # The signal: dasknmf.sbatch passes it on; the client, let go, ends its iteration.
    out = tmp / f"dasknmf-{signalled.first}.out"
    wait_for(lambda: "SIGUSR1" in out.read_text(), 150, "SIGUSR1 in the job's output")
    os.kill(signalled.client, signal.SIGCONT)
    for stopped in (signalled, limit):  # the signalled one ends first
        slurm.wait(stopped.first, timeout=150)
        stopped.out = (tmp / f"dasknmf-{stopped.first}.out").read_text()
        stopped.stopped_at = read_checkpoint(stopped.state.parent).state.iteration
        stopped.outputs_when_stopped = stopped.output.exists()
        # The same command, with time enough (and the signal then never comes).
        stopped.again = submit(stopped.job, "--time=00:10:00", *SIGNALLED[1:])
    slurm.wait(limit.again, signalled.again, timeout=180)
    assert reference.wait(timeout=60) == 0, reference.stdout.read()
    return Scenario(slurm, tmp, limit, signalled, tmp / "reference", time.monotonic() - started)


def freeze_at_first_checkpoint(slurm: LocalSlurm, *jobs: Stopped) -> None:
    """SIGSTOP each job's ``dasknmf submit`` as soon as its first checkpoint is there
    (the process found first, so that the checkpoint is then looked for every 10 ms:
    an iteration takes a tenth of a second)."""
    deadline, pending = time.monotonic() + 180, list(jobs)
    while pending:
        for stopped in list(pending):
            if not stopped.client:
                stopped.client = submit_process(stopped.job) or 0
            elif stopped.state.exists():
                os.kill(stopped.client, signal.SIGSTOP)
                pending.remove(stopped)
                assert slurm.state(stopped.first)["JobState"] == "RUNNING"
        if time.monotonic() > deadline:
            pytest.fail(f"no first checkpoint within 180s: {[s.job.name for s in pending]}")
        time.sleep(0.01)


def check_resumed(scenario: Scenario, stopped: Stopped) -> None:
    """The job submitted again: continued by itself from the checkpoint, completed, with
    the outputs of the run never stopped; nothing left behind."""
    slurm = scenario.slurm
    state = slurm.state(stopped.again)
    out = (scenario.directory / f"dasknmf-{stopped.again}.out").read_text()
    assert state["JobState"] == "COMPLETED" and state["ExitCode"] == "0:0", out
    assert f"resuming from the checkpoint at iteration {stopped.stopped_at} (" in out
    summary = json.loads((stopped.output / "summary.json").read_text())
    expected = json.loads((scenario.reference / "summary.json").read_text())
    assert summary["resumed"]["from_iteration"] == stopped.stopped_at
    assert summary["result"]["iterations"] == expected["result"]["iterations"] == MAX_ITER
    curve, reference = (np.array(s["result"]["error_curve"]) for s in (summary, expected))
    np.testing.assert_array_equal(curve[:, 0], reference[:, 0])
    np.testing.assert_allclose(curve[:, 1], reference[:, 1], rtol=1e-12, atol=0)
    for got, want in zip(factors(stopped.output), factors(scenario.reference), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    assert not stopped.state.parent.parent.exists()  # the work area, gone with the success
    assert slurm.idle()
    no_dask_left(scenario.directory)
    print(f"{stopped.job.stem}: stopped at {stopped.stopped_at}, the whole scenario took "
          f"{scenario.seconds:.0f} s")  # fmt: skip


def test_a_job_ended_by_its_time_limit_resumes_when_submitted_again(scenario):
    stopped = scenario.time_limit
    state = scenario.slurm.state(stopped.first)
    assert state["JobState"] == "TIMEOUT", stopped.out
    assert "DUE TO TIME LIMIT" in stopped.out
    # Frozen after its first checkpoint: the time limit finds it there.
    assert stopped.stopped_at % EVERY == 0 and stopped.stopped_at < MAX_ITER
    assert not stopped.outputs_when_stopped
    check_resumed(scenario, stopped)


def test_sbatch_signal_usr1_stops_a_job_after_a_last_checkpoint_and_it_resumes(scenario):
    stopped = scenario.signalled
    state = scenario.slurm.state(stopped.first)
    assert state["JobState"] == "FAILED" and state["ExitCode"] == "75:0", stopped.out
    found = re.search(r"stopped on request after iteration (\d+), with a checkpoint", stopped.out)
    assert found is not None, stopped.out
    # The iteration it was in when the signal came, later than the periodic checkpoint.
    assert int(found.group(1)) == stopped.stopped_at > EVERY
    assert f"checkpoint: iteration {stopped.stopped_at} (stop requested)" in stopped.out
    assert "submit the same command again" in stopped.out
    assert "DUE TO TIME LIMIT" not in stopped.out and "Traceback" not in stopped.out
    assert not stopped.outputs_when_stopped
    check_resumed(scenario, stopped)
