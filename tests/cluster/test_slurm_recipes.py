"""The logic of ``deploy/slurm`` without SLURM: what the recipes check before calling
SLURM, and what they do with its answers, with stand-ins for ``sbatch`` and ``srun``.
What only a real SLURM shows is in ``test_slurm_real.py`` (slow)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.slurm_testing import (
    SBATCH_SCRIPT,
    SLURM_CLUSTER,
    calls,
    environment,
    fake_command,
    needs_jobqueue,
    write_job,
)

REFUSE = (
    'echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2\n'
    "exit 1"
)
ACCEPT_TEST_ONLY = (
    'if [ "$1" = --test-only ]; then echo "sbatch: Job 1 to start at now" >&2; exit 0; fi\n'
    + REFUSE
)
SETTINGS = ["--cores", "1", "--memory", "1GiB", "--jobs", "1", "--timeout", "240"]


def slurm_cluster(*args: str, fakes: Path, cwd: Path, timeout: int = 60):
    return subprocess.run(
        [sys.executable, str(SLURM_CLUSTER), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment(fakes),
        timeout=timeout,
    )


# -- slurm_cluster.py -------------------------------------------------------------------


@needs_jobqueue
def test_a_job_slurm_refuses_is_an_error_at_once_with_slurms_message(tmp_path):
    fakes = tmp_path / "bin"
    fake_command(fakes, "sbatch", REFUSE)
    done = slurm_cluster(
        "--queue", "nosuch", "--scheduler-file", str(tmp_path / "s.json"), *SETTINGS,
        fakes=fakes, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Invalid partition name specified" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "submitting" not in done.stdout  # refused before any job or scheduler
    assert [c.split()[0] for c in calls(fakes, "sbatch")] == ["--test-only"]


@needs_jobqueue
def test_a_submission_refused_after_the_test_is_an_error_too(tmp_path):
    # sbatch --test-only agrees, the submission itself fails: no wait for --timeout.
    fakes = tmp_path / "bin"
    fake_command(fakes, "sbatch", ACCEPT_TEST_ONLY)
    done = slurm_cluster(
        "--scheduler-file", str(tmp_path / "s.json"), *SETTINGS, fakes=fakes, cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert "SLURM refused a worker job" in done.stderr
    assert "Invalid partition name specified" in done.stderr
    assert "Traceback" not in done.stderr


@needs_jobqueue
def test_a_failed_start_keeps_a_scheduler_file_it_did_not_write(tmp_path):
    fakes = tmp_path / "bin"
    fake_command(fakes, "sbatch", ACCEPT_TEST_ONLY)
    scheduler_file = tmp_path / "scheduler.json"
    text = json.dumps({"address": "tcp://127.0.0.1:9", "type": "Scheduler"})
    scheduler_file.write_text(text)  # stale: nothing listens there
    done = slurm_cluster(
        "--scheduler-file", str(scheduler_file), *SETTINGS, fakes=fakes, cwd=tmp_path
    )
    assert done.returncode == 2
    assert scheduler_file.read_text() == text


def test_the_scheduler_file_of_a_running_scheduler_is_refused(tmp_path):
    fakes = tmp_path / "bin"
    fake_command(fakes, "sbatch", ACCEPT_TEST_ONLY)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        scheduler_file = tmp_path / "scheduler.json"
        scheduler_file.write_text(json.dumps({"address": address}))
        done = slurm_cluster(
            "--scheduler-file", str(scheduler_file), *SETTINGS, fakes=fakes, cwd=tmp_path
        )
    assert done.returncode == 2
    assert f"belongs to a running scheduler ({address})" in done.stderr
    assert json.loads(scheduler_file.read_text())["address"] == address
    assert calls(fakes, "sbatch") == []


@pytest.mark.parametrize("where", ["parent-is-a-file", "a-directory"])
def test_an_unusable_scheduler_file_is_refused_before_submitting(tmp_path, where):
    fakes = tmp_path / "bin"
    fake_command(fakes, "sbatch", ACCEPT_TEST_ONLY)
    (tmp_path / "afile").write_text("")
    (tmp_path / "adir").mkdir()
    path = tmp_path / ("afile/sub/s.json" if where == "parent-is-a-file" else "adir")
    done = slurm_cluster("--scheduler-file", str(path), *SETTINGS, fakes=fakes, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"slurm_cluster: error: scheduler_file {str(path)!r}")
    assert "Traceback" not in done.stderr
    assert calls(fakes, "sbatch") == []


@needs_jobqueue
def test_dry_run_asks_sbatch_test_only_and_starts_no_scheduler(tmp_path):
    fakes = tmp_path / "bin"
    fake_command(fakes, "sbatch", 'echo "sbatch: Job 3 to start at now" >&2')
    done = slurm_cluster(
        "--dry-run", "--job-extra-directives", "--qos=long", "--queue", "short",
        fakes=fakes, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "#SBATCH --qos=long" in done.stdout and "#SBATCH -p short" in done.stdout
    assert "tcp://SCHEDULER:PORT" in done.stdout  # no scheduler, no port taken
    assert "sbatch --test-only: sbatch: Job 3 to start at now" in done.stdout
    fake_command(fakes, "sbatch", REFUSE)
    done = slurm_cluster("--dry-run", fakes=fakes, cwd=tmp_path)
    assert done.returncode == 2
    assert "Invalid partition name specified" in done.stderr


def test_help_shows_real_defaults_only():
    done = subprocess.run(
        [sys.executable, str(SLURM_CLUSTER), "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "(default: None)" not in text
    assert text.count("(default:") == len(re.findall(r"\(default: [^)]*\)", text))
    assert "the one running this script) (default" not in text
    assert "slurm-<jobid>.out" in text


# -- dasknmf.sbatch, run outside SLURM with a stand-in srun ------------------------------

FAKE_SRUN = 'echo "srun: error: stand-in srun, no SLURM here" >&2\nexit 1'


def run_sbatch_script(
    tmp_path: Path, *args: str, cwd: Path, path: str | None = None, **env: str
) -> subprocess.CompletedProcess:
    fakes = tmp_path / "bin"
    fake_command(fakes, "srun", FAKE_SRUN)
    environ = environment(fakes, DASKNMF_RUN_DIR=str(tmp_path / "run"), **env)
    environ.pop("SLURM_JOB_ID", None)
    if path is not None:
        environ["PATH"] = f"{fakes}:{path}"
    return subprocess.run(
        ["bash", str(SBATCH_SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=120,
    )


def test_sbatch_script_outside_the_repository_says_to_set_dasknmf_repo(tmp_path):
    job = write_job(tmp_path / "job.yaml", tmp_path / "out")
    done = run_sbatch_script(tmp_path, str(job), cwd=tmp_path)
    assert done.returncode == 2
    assert "DASKNMF_REPO" in done.stderr and "wait_for_workers.py" in done.stderr
    assert calls(tmp_path / "bin", "srun") == []


def test_sbatch_script_without_dasknmf_on_path_says_to_set_dasknmf_venv(tmp_path):
    from tests.cluster.conftest import REPO

    job = write_job(tmp_path / "job.yaml", tmp_path / "out")
    done = run_sbatch_script(tmp_path, str(job), cwd=REPO, path="/usr/bin:/bin")
    assert done.returncode == 2
    assert "is not on PATH" in done.stderr and "DASKNMF_VENV" in done.stderr


def test_sbatch_script_with_a_missing_dask_config_says_so(tmp_path):
    from tests.cluster.conftest import REPO

    job = write_job(tmp_path / "job.yaml", tmp_path / "out")
    missing = str(tmp_path / "nope.yaml")
    done = run_sbatch_script(tmp_path, str(job), cwd=REPO, DASK_CONFIG=missing)
    assert done.returncode == 2
    assert f"DASK_CONFIG='{missing}' is not a file" in done.stderr


def test_sbatch_script_validates_the_job_before_starting_anything(tmp_path):
    from tests.cluster.conftest import REPO

    job = write_job(tmp_path / "job.yaml", tmp_path / "out")
    done = run_sbatch_script(tmp_path, str(job), "--set", "model.n_components=-3", cwd=REPO)
    assert done.returncode == 2
    assert "n_components" in done.stderr + done.stdout
    assert "nothing was started" in done.stderr
    assert calls(tmp_path / "bin", "srun") == []


def test_sbatch_script_free_ports_memory_headroom_interface_and_the_logs_on_failure(tmp_path):
    from tests.cluster.conftest import REPO

    job = write_job(tmp_path / "job.yaml", tmp_path / "out")
    done = run_sbatch_script(
        tmp_path, str(job), cwd=REPO,
        SLURM_MEM_PER_NODE="4096", SLURM_CPUS_PER_TASK="2", DASK_INTERFACE="lo",
    )  # fmt: skip
    assert done.returncode == 3  # the readiness check: a step exited
    steps = calls(tmp_path / "bin", "srun")  # started in the background: any order
    (scheduler,) = [s for s in steps if "dask scheduler" in s]
    (workers,) = [s for s in steps if "dask worker" in s]
    assert "--port 0 --dashboard-address :0" in scheduler
    assert "8786" not in scheduler and "8787" not in scheduler
    assert "--interface lo" in scheduler and "--interface lo" in workers
    # 4096 MiB per node, a quarter (at most 2 GiB) left to the scheduler and the client.
    assert "--memory-limit 3072MiB" in workers and "--nthreads 2" in workers
    run_dir = tmp_path / "run"
    assert f"see {run_dir}/scheduler.log and {run_dir}/workers.log" in done.stderr
    assert "stand-in srun, no SLURM here" in done.stderr  # the logs' last lines
