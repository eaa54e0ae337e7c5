"""Resuming a job on another cluster than the one it started on (a new allocation has a
new scheduler), and running the same job file again with ``--resume``.

The job record in a checkpoint must read back as the job it is for every kind of
``cluster`` section; ``dasknmf resume OUTPUT_DIR --scheduler-file/--address/--set``
changes where the job runs, never what it fits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from distributed import LocalCluster

from dasknmf.cli import EXIT_OK, EXIT_USAGE, main
from dasknmf.jobs.checkpoints import read_checkpoint
from dasknmf.jobs.loading import parse_config
from dasknmf.jobs.resume import changed_keys
from dasknmf.jobs.runner import run_job
from dasknmf.jobs.workarea import WorkArea
from tests.jobs.jobs_testing import hidden, tree
from tests.jobs.test_resume import assert_same_outputs, checkpointed, crash

CLUSTERS = {
    "threads-default": {"type": "threads"},
    "threads-2": {"type": "threads", "threads": 2},
    "local": {"type": "local", "n_workers": 2, "memory_limit": None, "processes": False},
    "local-sized": {"type": "local", "threads_per_worker": 1, "memory_limit": "1GiB"},
    "cuda": {"type": "cuda", "n_workers": 1},
    "existing-address": {"type": "existing", "address": "tcp://10.0.0.5:8786"},
    "existing-file": {"type": "existing", "scheduler_file": "/shared/dask/scheduler.json"},
    "existing-tls": {
        "type": "existing",
        "address": "tls://10.0.0.5:8786",
        "tls": {"ca_file": "/certs/ca.pem", "cert": "/certs/client.pem"},
    },
}


@pytest.mark.parametrize("cluster", CLUSTERS.values(), ids=CLUSTERS)
def test_the_recorded_job_reads_back_as_the_job(cluster, tmp_path):
    job = checkpointed("example:term-document", tmp_path / "out")
    job["cluster"] = cluster
    config = parse_config(job, check_paths=False)
    record = json.loads(json.dumps(config.to_dict()))  # as a checkpoint stores it
    assert None not in (record["cluster"].get(k, 0) for k in ("address", "scheduler_file"))
    again = parse_config(record, "checkpoint", check_paths=False)
    assert again == config
    assert again.to_dict() == record


@contextmanager
def scheduler(folder: Path) -> Iterator[tuple[str, Path]]:
    """A cluster of its own, its address in a scheduler file: one allocation."""
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False) as cluster:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "scheduler.json"
        path.write_text(json.dumps({"address": cluster.scheduler_address}))
        yield cluster.scheduler_address, path


def submitted_job(matrix_file: Path, tmp_path: Path, scheduler_file: Path) -> dict:
    job = checkpointed(matrix_file, tmp_path / "out", every=3, solver="hals")
    job["model"]["max_iter"] = 20
    job["cluster"] = {"type": "existing", "scheduler_file": str(scheduler_file)}
    return job


def reference(job: dict, tmp_path: Path) -> Path:
    ref = {**job, "cluster": {"type": "threads", "threads": 2}}
    run_job(parse_config({**ref, "output": {"directory": str(tmp_path / "ref")}}))
    return tmp_path / "ref"


def test_a_submitted_job_resumes_on_a_new_scheduler(matrix_file, tmp_path, capsys):
    with scheduler(tmp_path / "first") as (_, first):
        job = submitted_job(matrix_file, tmp_path, first)
        crash(job, at=8)  # the allocation ended: its scheduler is gone with it
    record = read_checkpoint(WorkArea(tmp_path / "out").checkpoints).job["config"]
    assert record["cluster"] == {"type": "existing", "scheduler_file": str(first)}
    first.unlink()

    # The recorded scheduler is gone: the error says how to name the new one.
    assert main(["resume", str(tmp_path / "out")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"cluster.scheduler_file '{first}' does not exist" in err
    assert "--scheduler-file" in err

    with scheduler(tmp_path / "second") as (address, second):
        args = ["resume", str(tmp_path / "out"), "--scheduler-file", str(second)]
        assert main(args) == EXIT_OK
    out = capsys.readouterr().out
    assert f"scheduler: cluster at {address}" in out
    assert "resuming from the checkpoint at iteration 6" in out
    summary = assert_same_outputs(tmp_path / "out", reference(job, tmp_path))
    assert summary["config"]["cluster"] == {"type": "existing", "scheduler_file": str(second)}
    assert summary["scheduler"]["address"] == address
    assert summary["resumed"]["from_iteration"] == 6
    assert hidden(tmp_path) == []


@pytest.mark.slow
def test_resume_by_address_tls_options_and_set(matrix_file, tmp_path, capsys):
    with scheduler(tmp_path / "first") as (_, first):
        job = submitted_job(matrix_file, tmp_path, first)
        crash(job, at=8)
    # --tls-* alone change the recorded cluster's tls, validated as the file's keys.
    (tmp_path / "ca.pem").write_text("")
    tls = ["--tls-ca-file", str(tmp_path / "ca.pem"), "--tls-cert", str(tmp_path / "c.pem")]
    assert main(["resume", str(tmp_path / "out"), *tls]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "of 'cluster.tls.cert' does not exist" in err

    with scheduler(tmp_path / "second") as (address, _):
        args = ["resume", str(tmp_path / "out"), "--address", address, "--quiet"]
        assert main([*args, "--set", "checkpoint.every=5", "--set", "report.top_features=0"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["config"]["cluster"] == {"type": "existing", "address": address}
    assert summary["config"]["checkpoint"] == {"every": 5}
    assert summary["checkpoint"]["written"] == 2 + 3  # 3, 6 before; 10, 15, 20 after
    assert_same_outputs(tmp_path / "out", reference(job, tmp_path))


@pytest.mark.slow
def test_resume_on_another_kind_of_cluster_replaces_the_section(matrix_file, tmp_path, capsys):
    with scheduler(tmp_path / "first") as (_, first):
        job = submitted_job(matrix_file, tmp_path, first)
        crash(job, at=8)
    args = ["resume", str(tmp_path / "out"), "--quiet", "--set", "cluster.type=threads"]
    assert main([*args, "--set", "cluster.threads=3"]) == EXIT_OK
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["config"]["cluster"] == {"type": "threads", "threads": 3}
    assert summary["scheduler"]["threads"] == 3
    assert_same_outputs(tmp_path / "out", reference(job, tmp_path))


@pytest.mark.parametrize(
    "item",
    ["model.max_iter=40", "input.path=other.npz", "output.directory=elsewhere", "version=1"],
)
def test_resume_refuses_to_change_what_was_fitted(item, matrix_file, tmp_path, capsys):
    job = checkpointed(matrix_file, tmp_path / "out", every=3)
    crash(job, at=8)
    before = tree(tmp_path)
    capsys.readouterr()
    assert main(["resume", str(tmp_path / "out"), "--set", item]) == EXIT_USAGE
    err = capsys.readouterr().err
    key = item.split("=")[0]
    assert f"--set {item}: {key!r} cannot change when a job is resumed" in err
    assert "only cluster.*, checkpoint.*, report.* may change" in err
    assert tree(tmp_path) == before


@pytest.mark.slow
def test_a_checkpoint_recording_address_null_resumes(matrix_file, tmp_path):
    """Checkpoints written before the record left unset keys out hold
    ``address: null`` beside ``scheduler_file``; they resume all the same."""
    with scheduler(tmp_path / "first") as (_, first):
        job = submitted_job(matrix_file, tmp_path, first)
        crash(job, at=8)
    state = WorkArea(tmp_path / "out").checkpoints / "state.json"
    record = json.loads(state.read_text())
    record["job"]["config"]["cluster"].update(address=None, tls=None)
    state.write_text(json.dumps(record))
    with scheduler(tmp_path / "second") as (_, second):
        args = ["resume", str(tmp_path / "out"), "--scheduler-file", str(second), "--quiet"]
        assert main(args) == EXIT_OK
    assert_same_outputs(tmp_path / "out", reference(job, tmp_path))


# -- the same job file again, with --resume ---------------------------------------------


@pytest.mark.slow
def test_run_resume_continues_the_same_job_on_its_new_cluster(
    write_job, matrix_file, tmp_path, capsys
):
    with scheduler(tmp_path / "first") as (_, first):
        job = submitted_job(matrix_file, tmp_path, first)
        crash(job, at=8)
    path = write_job(job)
    with scheduler(tmp_path / "second") as (address, second):
        args = ["submit", str(path), "--scheduler-file", str(second), "--resume"]
        assert main(args) == EXIT_OK
    out = capsys.readouterr().out
    assert "resuming from the checkpoint at iteration 6" in out
    summary = assert_same_outputs(tmp_path / "out", reference(job, tmp_path))
    assert summary["resumed"]["from_iteration"] == 6
    assert summary["scheduler"]["address"] == address
    assert hidden(tmp_path) == []


def test_run_resume_refuses_another_jobs_checkpoints(write_job, matrix_file, tmp_path, capsys):
    job = checkpointed(matrix_file, tmp_path / "out", every=3)
    crash(job, at=8)
    path = write_job(job)
    before = tree(tmp_path)
    capsys.readouterr()
    args = ["run", str(path), "--resume", "--set", "model.n_components=4"]
    assert main(args) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "holds checkpoints of another job (changed: model.n_components: 3 -> 4)" in err
    assert "--overwrite" in err
    assert tree(tmp_path) == before

    # --overwrite with --resume: another job's checkpoints are discarded, it starts over.
    assert main([*args, "--overwrite", "--quiet"]) == EXIT_OK
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["resumed"] is None and summary["result"]["n_components"] == 4


def test_run_resume_without_checkpoints_starts(write_job, matrix_file, tmp_path, capsys):
    path = write_job(checkpointed(matrix_file, tmp_path / "out", every=3))
    assert main(["run", str(path), "--resume", "--quiet"]) == EXIT_OK
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["resumed"] is None


def test_changed_keys_ignores_where_the_job_runs(matrix_file, tmp_path):
    job = checkpointed(matrix_file, tmp_path / "out", every=3)
    crash(job, at=8)
    checkpoint = read_checkpoint(WorkArea(tmp_path / "out").checkpoints)
    moved = {
        **job,
        "cluster": {"type": "local", "n_workers": 1},
        "checkpoint": {"every": 7},
        "report": {"plot": True},
    }
    moved["output"] = {**job["output"], "overwrite": True}
    assert changed_keys(parse_config(moved), checkpoint) == []
    other = {**job, "input": {**job["input"], "chunks": [45, 40]}}
    assert changed_keys(parse_config(other), checkpoint) == ["input.chunks: [30, 40] -> [45, 40]"]
