"""Jobs and fits on a cluster of real ``dask scheduler`` / ``dask worker`` processes
started by ``deploy/processes/start-cluster.sh``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml
from distributed import Client

import dasknmf
from dasknmf.jobs.cluster import connect
from dasknmf.jobs.config import ClusterConfig
from tests.cluster.conftest import (
    PARAMS,
    REPO,
    START,
    STOP,
    dask_command,
    start_cluster,
    stop_cluster,
)


def submit(job: Path, *options: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """``dasknmf submit JOB OPTIONS...`` in a new process."""
    command = [sys.executable, "-m", "dasknmf", "submit", str(job), *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def write_job(path: Path, store: str, output: Path, **model) -> Path:
    """A job whose cluster section (a local cluster) ``submit`` must replace."""
    job = {
        "input": {"path": store},
        "model": {**PARAMS, **model},
        "cluster": {"type": "local", "n_workers": 1},
        "output": {"directory": str(output)},
        "report": {"plot": False},
    }
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def check_outputs(output: Path, reference) -> dict:
    """W.zarr and H.zarr of a job against the in-process fit; returns summary.json."""
    W_ref, H_ref = reference
    W = np.asarray(dasknmf.open_matrix(str(output / "W.zarr")).compute())
    H = np.asarray(dasknmf.open_matrix(str(output / "H.zarr")).compute())
    np.testing.assert_allclose(W, W_ref, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(H, H_ref, rtol=1e-5, atol=1e-9)
    return json.loads((output / "summary.json").read_text())


@pytest.mark.slow
def test_submit_runs_the_job_on_the_cluster(cluster, store, reference, tmp_path):
    """Out of core: the workers re-read the store's tiles every iteration."""
    assert f"dasknmf submit JOB.yaml --scheduler-file {cluster.scheduler_file}" in cluster.output
    output = tmp_path / "out"
    job = write_job(tmp_path / "job.yaml", store, output, persist=False)
    done = submit(job, "--scheduler-file", str(cluster.scheduler_file), "--quiet")
    assert done.returncode == 0, done.stderr
    # --quiet: the result, why it stopped and the outputs, no progress.
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("fit: ") and "iterations" in lines[0]
    assert lines[1].startswith(("ran all", "stopped at iteration"))
    assert lines[2] == f"outputs: {output}"
    summary = check_outputs(output, reference)
    assert summary["scheduler"]["type"] == "existing"
    assert summary["scheduler"]["address"] == cluster.address
    assert summary["scheduler"]["workers"] == 2
    assert summary["config"]["cluster"]["scheduler_file"] == str(cluster.scheduler_file)
    assert summary["result"]["persisted"] is False


# Slow, with the other tests on worker processes: the replay of lost blocks is in the
# default suite in one process (tests/test_lineage.py).
@pytest.mark.slow
def test_fit_survives_a_killed_worker(cluster, store, reference, tmp_path):
    """A third worker joins (``--workers-only``) and is SIGKILLed after iteration 3,
    holding some of the persisted V tiles and W/H blocks: the scheduler recomputes
    them and the fit ends with the same factors.

    Lost V tiles are re-read by the scheduler; lost factor blocks (data scattered at
    the loop's last re-root, see dasknmf.lineage) are restored by the loop, which
    replays the iterations since (see deploy/README.md, "Lost workers")."""
    extra = start_cluster(
        tmp_path / "extra",
        "--workers-only",
        "--scheduler-file",
        str(cluster.scheduler_file),
        "--n-workers",
        "1",
        "--nthreads",
        "2",
        "--no-nanny",
        "--name-prefix",
        "doomed",
    )
    try:
        with Client(scheduler_file=str(cluster.scheduler_file), timeout=30) as client:
            victim = next(
                address
                for address, worker in client.scheduler_info(n_workers=-1)["workers"].items()
                if worker["name"] == "doomed-0"
            )
            held: list[int] = []

            def kill_at_iteration_3(info: dasknmf.IterationInfo) -> None:
                # Once: after a lost factor block the loop replays from its last
                # re-root, and this callback sees iteration 3 again.
                if info.iteration == 3 and not held:
                    held.append(len(client.has_what().get(victim, ())))
                    os.kill(extra.pid("worker-0"), signal.SIGKILL)

            model = dasknmf.NMF(persist=True, callbacks=[kill_at_iteration_3], **PARAMS)
            W = np.asarray(model.fit_transform(store))
            assert held and held[0] > 0  # the worker died holding results
            deadline = time.monotonic() + 30
            while victim in client.scheduler_info(n_workers=-1)["workers"]:
                assert time.monotonic() < deadline, "the scheduler still lists the worker"
                time.sleep(0.1)
            prefixes = client.run_on_scheduler(
                lambda dask_scheduler: [*dask_scheduler.task_prefixes]
            )
            assert "dasknmf-sparse" in prefixes  # the workers read the tiles from the store
    finally:
        stop_cluster(tmp_path / "extra")
    assert model.persisted_ is True
    np.testing.assert_allclose(W, reference[0], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(model.components_, reference[1], rtol=1e-5, atol=1e-9)


def test_start_cluster_fails_clearly_when_workers_cannot_connect(tmp_path):
    run_dir = tmp_path / "run"
    command = [
        str(START),
        "--run-dir",
        str(run_dir),
        "--workers-only",
        "--n-workers",
        "1",
        "--scheduler-address",
        "tcp://127.0.0.1:9",
        "--timeout",
        "2",
        "--python",
        sys.executable,
        "--dask",
        dask_command(),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        stop_cluster(run_dir)
    assert done.returncode == 1
    assert "were not up within 2s (--timeout)" in done.stderr
    assert "stopping what was started" in done.stderr
    assert not list(run_dir.glob("*.pid"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--n-workers", "x"], "--n-workers must be a whole number; got 'x'"),
        (["--workers-only"], "--workers-only needs --scheduler-file or --scheduler-address"),
        (["--tls-dir", "/nonexistent"], "'/nonexistent/ca.pem' is missing"),
        (["--frobnicate"], "unknown option '--frobnicate'"),
    ],
)
def test_start_cluster_rejects_bad_options_before_starting_anything(options, message, tmp_path):
    command = [str(START), "--run-dir", str(tmp_path / "run"), "--dask", dask_command(), *options]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "run").exists() or not list((tmp_path / "run").iterdir())


def test_stop_cluster_stops_a_worker_that_leads_no_process_group(tmp_path):
    """A PID file's process that shares its caller's process group (its start did not make
    it a group leader), with a child of its own that ignores SIGTERM: both are stopped.
    Its command line names dask only past column 80, where ``ps`` cuts ``args`` when
    COLUMNS says so (as under pytest in CI, whose long virtual-environment path left a
    cluster running)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    far = "x" * 80  # pushes the word dask past column 80 of ps's output
    child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
    parent = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {child!r}, {far!r}, 'spawn_main']); "
        "time.sleep(120)"
    )
    worker = subprocess.Popen([sys.executable, "-c", parent, far, "dask-worker"])
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 10
        while not (children := psutil.Process(worker.pid).children()):
            assert time.monotonic() < deadline, "the child did not start"
            time.sleep(0.05)
        assert os.getpgid(worker.pid) == os.getpgid(0) != worker.pid
        (run_dir / "worker-0.pid").write_text(f"{worker.pid}\n")
        done = subprocess.run(
            [str(STOP), "--run-dir", str(run_dir), "--grace", "1"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "80"},
        )
        assert done.returncode == 0, done.stderr
        assert "still running after 1s: SIGKILL" in done.stderr  # the child ignored SIGTERM
        assert worker.wait(timeout=5) == -signal.SIGTERM
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive
        assert not list(run_dir.glob("*.pid"))
    finally:
        worker.kill()
        for process in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


def fetch(url: str) -> str:
    """The page at ``url`` (the dashboard's first page takes a moment to render)."""
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return response.read().decode(errors="replace")


def assert_is_the_dashboard(url: str) -> None:
    page = fetch(url)
    assert "Dask needs bokeh" not in page
    assert "Bokeh" in page and "Dask" in page  # the status page of the bokeh app


@pytest.mark.slow
def test_start_cluster_prints_a_dashboard_link_that_works(tmp_path):
    run_dir = tmp_path / "run"
    try:
        cluster = start_cluster(run_dir, "--n-workers", "0", "--dashboard-address", "127.0.0.1:0")
        printed = {
            key.strip(): value.strip()
            for key, _, value in (line.partition(" : ") for line in cluster.output.splitlines())
            if value
        }
        assert printed["scheduler file"] == str(cluster.scheduler_file)
        assert printed["dashboard"].startswith("http://127.0.0.1:"), cluster.output
        assert_is_the_dashboard(printed["dashboard"])
        # The link dasknmf submit prints (scheduler: ... / dashboard: ...) is the same.
        config = ClusterConfig(type="existing", scheduler_file=str(cluster.scheduler_file))
        with connect(config) as info:
            assert info.dashboard_link == printed["dashboard"] and info.note is None
    finally:
        stop_cluster(run_dir)
