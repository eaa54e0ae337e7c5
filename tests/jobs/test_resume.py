"""Checkpoints and resume: a stopped fit or job continues to the results of one that
never stopped.

- the fit state through the estimator (``NMF.fit_transform(X, resume=state)``), for
  each kind of solver, on tiled dask and single-tile in-memory input (the fit loop
  itself: ``tests/test_fit.py``);
- checkpoint files: every N iterations, latest only, atomic under a crash in the
  middle of a write;
- ``dasknmf resume``: equal outputs, on threads and on a distributed cluster; its
  refusals; and a real ``kill -9`` of ``dasknmf run`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import dasknmf
from dasknmf.cli import EXIT_OK, EXIT_USAGE, main
from dasknmf.jobs import checkpoints, runner
from dasknmf.jobs.checkpoints import read_checkpoint
from dasknmf.jobs.loading import parse_config
from dasknmf.jobs.runner import run_job
from dasknmf.jobs.workarea import WorkArea
from tests.helpers import make_matrix
from tests.jobs.jobs_testing import (
    StopAt,
    base_job,
    dense,
    hidden,
    run_killed_at_first_checkpoint,
    tree,
)

# -- the fit state, through the estimator ----------------------------------------------

MODELS = {
    "mu": dict(solver="mu"),
    "hals": dict(solver="hals"),
    "beta-1.5-missing": dict(solver="mu", beta_loss=1.5, missing="ignore"),
}


def fitted(X, chunks, states=None, resume=None, **params):
    """A fit whose callback keeps every state (and makes every error computed)."""
    keep = (lambda info: states.append(info.state())) if states is not None else (lambda i: 0)
    model = dasknmf.NMF(**params, chunks=chunks, callbacks=[keep])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        W = model.fit_transform(X, resume=resume)
    return model, np.asarray(W)


@pytest.mark.parametrize("layout", ["tiled-dask", "single-tile"])
@pytest.mark.parametrize("name", MODELS)
def test_stopping_then_resuming_equals_one_fit(name, layout, matrix):
    X = matrix.astype(np.float32)
    if layout == "tiled-dask":
        X, chunks = da.from_array(X, chunks=(30, 20), asarray=False), None
    else:
        chunks = X.shape  # one tile: iterated eagerly on in-memory arrays
    params = dict(
        n_components=3,
        init="random",
        random_state=0,
        tol=2e-3,
        check_every=3,
        max_iter=80,
        **MODELS[name],
    )
    full, W_full = fitted(X, chunks, **params)
    assert 8 < full.n_iter_ < 80  # stopped by tol: the rule's state matters
    stopped_states: list = []
    fitted(X, chunks, stopped_states, **{**params, "max_iter": 7})
    state = stopped_states[-1]
    assert state.iteration == 7 and not state.converged

    resumed, W = fitted(X, chunks, resume=state, **params)
    np.testing.assert_allclose(W, W_full, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(resumed.components_, full.components_, rtol=1e-6, atol=1e-12)
    assert resumed.n_iter_ == full.n_iter_
    assert [i for i, _ in resumed.error_curve_] == [i for i, _ in full.error_curve_]
    np.testing.assert_allclose(
        [e for _, e in resumed.error_curve_], [e for _, e in full.error_curve_], rtol=1e-6
    )
    # A fresh fit from the same factors (init='custom') is not the same: it measures its
    # error at init anew, so its tol rule stops elsewhere or its curve differs.
    naive = dasknmf.NMF(**{**params, "init": "custom", "max_iter": 80 - 7}, chunks=chunks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        naive.fit(X, W=np.asarray(state.W), H=np.asarray(state.H))
    assert naive.n_iter_ + 7 != full.n_iter_ or len(naive.error_curve_) != len(full.error_curve_)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"resume": "state"}, "must be a dasknmf.FitState"),
        ({"W": True}, "do not pass W or H too"),
        ({"max_iter": 3}, "'max_iter' parameter 3 is below the iteration 4"),
        ({"n_components": 2}, "'n_components' parameter 2 differs from the 3 components"),
        ({"X": "transposed"}, r"needs \(40, k\) and \(k, 90\)"),
    ],
)
def test_resume_refuses_a_state_that_does_not_fit(change, message, matrix):
    states: list = []
    fitted(matrix, None, states, n_components=3, init="random", random_state=0, max_iter=4)
    params = dict(n_components=change.get("n_components", 3), max_iter=change.get("max_iter", 9))
    X = matrix.T.tocsr() if "X" in change else matrix
    W = np.ones((90, 3)) if "W" in change else None
    resume = change.get("resume", states[-1])
    with pytest.raises(dasknmf.InvalidParameterError, match=message):
        dasknmf.NMF(**params).fit_transform(X, W=W, resume=resume)


# -- checkpoint files ------------------------------------------------------------------


def checkpointed(input_path, output: Path, every: int = 4, **model) -> dict:
    job = base_job(input_path, output, **model)
    if str(input_path).endswith(".zarr"):
        del job["input"]["chunks"]  # a store keeps its tiles
    job["checkpoint"] = {"every": every}
    job["report"] = {"plot": False}
    return job


def crash(job: dict, at: int) -> None:
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_job(parse_config(job), progress=StopAt(at))


def read_back(directory: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    W, H = (dense(dasknmf.open_matrix(directory / n).compute()) for n in ("W.zarr", "H.zarr"))
    return W, H, json.loads((directory / "summary.json").read_text())


def assert_same_outputs(resumed: Path, reference: Path, rtol: float = 1e-6) -> dict:
    W, H, summary = read_back(resumed)
    W_ref, H_ref, ref = read_back(reference)
    np.testing.assert_allclose(W, W_ref, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(H, H_ref, rtol=rtol, atol=1e-12)
    result, expected = summary["result"], ref["result"]
    assert (result["iterations"], result["converged"]) == (
        expected["iterations"],
        expected["converged"],
    )
    curve, curve_ref = np.array(result["error_curve"]), np.array(expected["error_curve"])
    np.testing.assert_array_equal(curve[:, 0], curve_ref[:, 0])
    np.testing.assert_allclose(curve[:, 1], curve_ref[:, 1], rtol=rtol)
    # The initial error and why the fit stopped survive the interruption.
    for key in ("initial_error", "final_error", "relative_error"):
        assert result[key] == pytest.approx(expected[key], rel=rtol)
    assert result["stop"]["text"] == expected["stop"]["text"]
    return summary


def test_a_checkpoint_every_n_iterations_only_the_latest_kept(matrix_file, tmp_path, monkeypatch):
    work = WorkArea(tmp_path / "out")
    seen = []
    real = checkpoints.write_checkpoint

    def spy(directory, state, job):
        path = real(directory, state, job)
        names = sorted(os.listdir(directory))
        seen.append((state.iteration, names))
        assert read_checkpoint(directory).state.iteration == state.iteration
        return path

    monkeypatch.setattr(checkpoints, "write_checkpoint", spy)
    summary = run_job(parse_config(checkpointed(matrix_file, tmp_path / "out"))).summary
    assert [i for i, _ in seen] == [4, 8, 12]
    for iteration, names in seen:
        assert names[1] == "state.json" and names[0].startswith(f"iter-{iteration:06d}-")
        assert len(names) == 2  # the previous checkpoint is gone
    assert summary["checkpoint"] == {"every": 4, "written": 3}
    assert not work.exists()  # removed with the job's success
    assert hidden(tmp_path) == []


def test_a_failed_job_keeps_its_checkpoint_and_ingested_input(matrix_file, tmp_path):
    crash(checkpointed(matrix_file, tmp_path / "out"), at=10)
    work = WorkArea(tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert sorted(os.listdir(work.path)) == ["checkpoints", "input.zarr"]
    cp = read_checkpoint(work.checkpoints)
    state = cp.state
    assert (state.iteration, len(state.errors), state.converged) == (8, 8, False)
    assert state.W.shape == (90, 3) and state.H.shape == (3, 40)
    assert cp.job["config"]["model"]["max_iter"] == 15
    assert cp.job["input"]["shape"] == [90, 40] and len(cp.job["input"]["uuid"]) == 32


def test_no_work_area_is_kept_without_checkpoints(matrix_file, tmp_path):
    crash(checkpointed(matrix_file, tmp_path / "out", every=0), at=10)
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("where", ["factors", "commit"])
def test_a_crash_while_writing_a_checkpoint_leaves_the_previous_one(
    where, matrix_file, tmp_path, monkeypatch
):
    """The second checkpoint (iteration 8) fails while H is written (after W), or once
    its factors are in place but before state.json names them."""
    calls = []

    def failing(real, fail_at):
        def call(*args, **kwargs):
            calls.append(1)
            if len(calls) == fail_at:
                raise OSError("simulated crash while writing a checkpoint")
            return real(*args, **kwargs)

        return call

    if where == "factors":  # W4, H4, W8, then H8 fails
        monkeypatch.setattr(checkpoints, "write_matrix", failing(checkpoints.write_matrix, 4))
    else:
        monkeypatch.setattr(checkpoints, "_replace_file", failing(checkpoints._replace_file, 2))
    job = checkpointed(matrix_file, tmp_path / "out")
    with pytest.raises(OSError, match="simulated crash"):
        run_job(parse_config(job))
    work = WorkArea(tmp_path / "out")
    cp = read_checkpoint(work.checkpoints)
    assert cp.state.iteration == 4
    assert cp.state.W.compute().shape == (90, 3)  # its factors are complete
    names = sorted(os.listdir(work.checkpoints))
    assert names[0].startswith("iter-000004-") and names[-1] == "state.json"
    # The new factors: removed when their write failed; left unnamed after the rename.
    assert len(names) == (2 if where == "factors" else 3)

    monkeypatch.undo()
    run_job(parse_config(checkpointed(matrix_file, tmp_path / "ref")))
    assert main(["resume", str(tmp_path / "out"), "--quiet"]) == EXIT_OK
    assert_same_outputs(tmp_path / "out", tmp_path / "ref")
    assert hidden(tmp_path) == []


# -- dasknmf resume --------------------------------------------------------------------


@pytest.mark.parametrize(
    "cluster",
    [
        {"type": "threads", "threads": 2},
        pytest.param(
            {"type": "local", "n_workers": 2, "threads_per_worker": 1, "processes": False},
            marks=pytest.mark.slow,
        ),
    ],
    ids=["threads", "local-cluster"],
)
def test_resume_writes_the_outputs_of_an_uninterrupted_run(cluster, matrix_file, tmp_path, capsys):
    job = checkpointed(matrix_file, tmp_path / "out", every=3, solver="hals", tol=1e-3)
    job["model"].update(max_iter=60, check_every=2)
    job["cluster"] = cluster
    # The reference runs on threads: the cluster gives the same results (test_runner).
    reference = {**job, "cluster": {"type": "threads", "threads": 2}}
    run_job(parse_config({**reference, "output": {"directory": str(tmp_path / "ref")}}))
    crash(job, at=8)

    assert main(["resume", str(tmp_path / "out")]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"resuming from the checkpoint at iteration 6 ({tmp_path}" in out
    assert "\niter     7  error" in out and "\niter     6  error" not in out
    summary = assert_same_outputs(tmp_path / "out", tmp_path / "ref")
    assert 6 < summary["result"]["iterations"] < 60 and summary["result"]["converged"]
    assert summary["resumed"]["from_iteration"] == 6
    assert summary["config"] == parse_config(job).to_dict()  # as the job was resolved
    assert summary["checkpoint"]["written"] == summary["result"]["iterations"] // 3
    assert hidden(tmp_path) == []  # the work area went with the job's success


def test_a_resumed_job_that_stops_again_resumes_again(matrix_file, tmp_path):
    job = checkpointed(matrix_file, tmp_path / "out", every=3)
    run_job(parse_config({**job, "output": {"directory": str(tmp_path / "ref")}}))
    crash(job, at=5)
    work = WorkArea(tmp_path / "out")
    run_id = read_checkpoint(work.checkpoints).job["run_id"]
    with pytest.raises(RuntimeError, match="simulated crash at iteration 11"):
        runner.resume_job(tmp_path / "out", progress=StopAt(11))
    assert read_checkpoint(work.checkpoints).state.iteration == 9
    assert main(["resume", str(tmp_path / "out"), "--quiet"]) == EXIT_OK
    summary = assert_same_outputs(tmp_path / "out", tmp_path / "ref")
    assert summary["resumed"]["from_iteration"] == 9
    assert summary["checkpoint"]["written"] == 5  # 3, (crash) 6, 9, (crash) 12, 15
    assert summary["run_id"] == run_id  # one job, however many times resumed


def test_run_starts_afresh_over_the_work_area_of_a_stopped_run(matrix_file, tmp_path, capsys):
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(checkpointed(matrix_file, tmp_path / "out")))
    crash(checkpointed(matrix_file, tmp_path / "out"), at=10)
    work = WorkArea(tmp_path / "out")
    before = tree(work.path)
    # Without --overwrite the checkpoints are kept and the user told how to go on.
    assert main(["run", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "dasknmf resume" in err and "--overwrite" in err
    assert tree(work.path) == before
    assert main(["run", str(path), "--overwrite"]) == EXIT_OK
    assert "note: removing" in capsys.readouterr().out
    summary = read_back(tmp_path / "out")[2]
    assert summary["resumed"] is None and summary["checkpoint"]["written"] == 3
    assert hidden(tmp_path) == []


def corrupt_json(work: WorkArea) -> str:
    state = work.checkpoints / "state.json"
    state.write_text(state.read_text()[:100])
    return f"checkpoint '{state}' is not valid JSON"


def partial_factors(work: WorkArea) -> str:
    folder = next(p for p in work.checkpoints.iterdir() if p.name.startswith("iter-"))
    shutil.rmtree(folder / "H.zarr")
    return f"checkpoint '{work.checkpoints / 'state.json'}': its factors cannot be read"


def no_checkpoint(work: WorkArea) -> str:
    shutil.rmtree(work.checkpoints)
    return "holds no checkpoint (the job stopped before its first one)"


def no_work_area(work: WorkArea) -> str:
    work.remove()
    return "no work area"


def changed_store(work: WorkArea) -> str:
    store = work.path.parent / "V.zarr"
    dasknmf.write_matrix(dasknmf.open_matrix(store).compute(), store, overwrite=True)
    return "is not the matrix the checkpoint was fitted on (uuid '"


def completed_output(work: WorkArea) -> str:
    kept = work.path.parent / "kept"
    shutil.copytree(work.path, kept)
    assert main(["resume", str(work.path.parent / "out"), "--quiet"]) == EXIT_OK
    kept.rename(work.path)  # as if killed between the outputs' rename and the cleanup
    return "already holds the completed output of this job"


@pytest.mark.parametrize(
    "damage",
    [no_work_area, no_checkpoint, corrupt_json, partial_factors, changed_store, completed_output],
)
def test_resume_refuses_with_exit_2_and_writes_nothing(damage, matrix, tmp_path, capsys):
    store = tmp_path / "V.zarr"
    dasknmf.write_matrix(matrix, store, chunks=(30, 40))
    crash(checkpointed(store, tmp_path / "out"), at=10)
    message = damage(WorkArea(tmp_path / "out"))
    before = tree(tmp_path)
    capsys.readouterr()
    assert main(["resume", str(tmp_path / "out")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("dasknmf: error: ") and message in err, err
    assert tree(tmp_path) == before


def test_the_example_job_resumes(tmp_path):
    job = checkpointed("example:term-document", tmp_path / "out", every=2)
    job["input"] = {"path": "example:term-document", "rows": 300, "cols": 80}
    run_job(parse_config({**job, "output": {"directory": str(tmp_path / "ref")}}))
    crash(job, at=5)
    assert main(["resume", str(tmp_path / "out"), "--quiet"]) == EXIT_OK
    assert_same_outputs(tmp_path / "out", tmp_path / "ref")


# -- a real kill -9 --------------------------------------------------------------------


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    """``dasknmf run`` in a subprocess, killed with SIGKILL after its first checkpoint
    (most of its time goes into checkpoint writes, so the kill usually lands in one);
    ``dasknmf resume`` then ends with the outputs of a run that was never killed."""
    X = make_matrix(6000, 3000, density=0.02, seed=3, dtype=np.float32)
    dasknmf.write_matrix(X, tmp_path / "V.zarr", chunks=(1500, 3000))
    job = checkpointed(tmp_path / "V.zarr", tmp_path / "out", every=2, n_components=8)
    job["model"].update(max_iter=60, persist=True)
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(job))
    state = WorkArea(tmp_path / "out").checkpoints / "state.json"

    run_killed_at_first_checkpoint(path, state)
    assert not (tmp_path / "out").exists()
    killed_at = read_checkpoint(state.parent).state.iteration
    assert 2 <= killed_at < 60

    assert main(["resume", str(tmp_path / "out"), "--quiet"]) == EXIT_OK
    job["output"]["directory"] = str(tmp_path / "ref")
    run_job(parse_config(job))
    summary = assert_same_outputs(tmp_path / "out", tmp_path / "ref", rtol=1e-5)
    assert summary["resumed"]["from_iteration"] == killed_at
    assert summary["result"]["iterations"] == 60
    assert sorted(os.listdir(tmp_path)) == ["V.zarr", "job.yaml", "out", "ref"]
