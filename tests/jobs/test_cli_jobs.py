"""``dasknmf run`` and ``dasknmf validate``, in-process through :func:`dasknmf.cli.main`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dask.config
import numpy as np
import pytest
import yaml

import dasknmf
from dasknmf.cli import EXIT_OK, EXIT_USAGE, main
from dasknmf.datasets import term_document
from tests.helpers import make_matrix
from tests.jobs.jobs_testing import CONFIGS, base_job, dense, hidden, steps, tree

ITER_LINE = re.compile(
    r"^iter\s+(\d+)\s+error\s+(\S+)\s+relative\s+(\S+)\s+(\S+) s\s+(\S+) s/iter"
    r"  \[\d\d:\d\d:\d\d\]$"
)


# -- validate --------------------------------------------------------------------------


def test_validate_prints_ok_and_the_resolved_job(write_job, matrix_file, tmp_path, capsys):
    path = write_job(base_job(matrix_file, tmp_path / "out"))
    assert main(["validate", str(path), "--set", "model.max_iter=40"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(f"OK: {path}\n")
    assert "max_iter=40" in out
    assert f"{tmp_path / 'out'} (new)" in out
    assert not (tmp_path / "out").exists()
    # base_job: tol 0.
    assert "\n  stopping   : runs all 40 iterations (tol 0: no early stop)\n" in out


def test_validate_says_the_stopping_rule_in_words(write_job, matrix_file, tmp_path, capsys):
    job = base_job(matrix_file, tmp_path / "out", max_iter=30, tol=1e-4)
    assert main(["validate", str(write_job(job))]) == EXIT_OK
    assert (
        "\n  stopping   : stops at a check (every 10 iterations) where the error fell by less "
        "than 0.0001 times the initial error since the previous check (the first: since the "
        "initial factors), or after 30 iterations\n"
    ) in capsys.readouterr().out
    ratings = base_job("example:ratings", tmp_path / "out", missing="ignore", validation=0.1)
    ratings["model"].update(tol=1e-3, check_every=5)
    assert main(["validate", str(write_job(ratings, "ratings.yaml"))]) == EXIT_OK
    assert (
        "\n  stopping   : stops at a check (every 5 iterations) where the error fell by less "
        "than 0.001 times the initial error since the previous check (the first: since the "
        "initial factors), or after 15 iterations; also stops once the validation RMSE has "
        "not improved by a relative 0.001 for 3 iterations in a row, keeping the factors of "
        "the best iteration\n"
    ) in capsys.readouterr().out


def test_validate_reports_every_problem_with_exit_2_and_writes_nothing(
    write_job, matrix_file, tmp_path, capsys
):
    job = base_job(matrix_file, tmp_path / "out", n_components=-1, solver="hal")
    job["output"]["overwirte"] = True
    path = write_job(job)
    before = sorted(p.name for p in tmp_path.iterdir())
    for command in ("validate", "run"):
        assert main([command, str(path), "--set", "model.tol=-1"]) == EXIT_USAGE
        err = capsys.readouterr().err
        lines = err.splitlines()
        assert lines[0] == f"dasknmf: error: invalid job configuration {path} (4 problems):"
        assert "'model.n_components' parameter must be an int in [1, inf]; got -1" in lines[1]
        assert "got 'hal'. Did you mean 'hals'?" in lines[2]
        assert "unknown key 'output.overwirte'; did you mean 'output.overwrite'?" in lines[3]
        assert lines[4].startswith("  --set model.tol=-1: The 'model.tol' parameter")
        assert all(line.startswith(f"  {path}:") for line in lines[1:4])
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("k", [41, 10**20])
@pytest.mark.parametrize("kind", ["file", "store", "example"])
def test_validate_checks_the_rank_against_the_input_shape(
    write_job, matrix_file, matrix, tmp_path, capsys, k, kind
):
    """The shape comes from metadata alone (the .npz's stored shape, the store's
    record, the example's rows and cols): n_components above min(m, n) is refused
    at validation, with exit 2 and nothing written."""
    if kind == "store":
        source = tmp_path / "V.zarr"
        dasknmf.write_matrix(matrix, source)
        job = base_job(source, tmp_path / "out", n_components=k)
        del job["input"]["chunks"]
        shape = matrix.shape
    elif kind == "example":
        job = base_job("example:term-document", tmp_path / "out", n_components=k)
        job["input"].update(rows=200, cols=40)
        shape = (200, 40)
    else:
        job = base_job(matrix_file, tmp_path / "out", n_components=k)
        shape = matrix.shape
    path = write_job(job)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["validate", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"[1, {min(shape)}] for the input" in err and f"of shape {shape}; got {k}." in err
    assert f"{path}:" in err  # the line of the key
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    # The largest rank the shape allows validates.
    job["model"]["n_components"] = min(shape)
    assert main(["validate", str(write_job(job))]) == EXIT_OK


def _anndata_file(path: Path, X: np.ndarray) -> Path:
    """An .h5ad holding a dense X, as anndata lays it out."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f["X"] = X
        for axis, n in (("obs", X.shape[0]), ("var", X.shape[1])):
            f[f"{axis}/_index"] = np.array([f"{axis}{i}".encode() for i in range(n)])
            f[axis].attrs["_index"] = "_index"
    return path


@pytest.mark.parametrize("kind", ["anndata", "url"])
def test_validate_reads_the_rank_from_anndata_and_store_url_metadata(
    write_job, matrix, tmp_path, capsys, kind
):
    """Issue: the rank was checked against local stores and matrix files only. An
    AnnData file's X attributes and a store URL's metadata record tell the shape; no
    value of X and no tile is read (the URL store has none left)."""
    if kind == "anndata":
        source = str(_anndata_file(tmp_path / "cells.h5ad", matrix.toarray()))
    else:
        import fsspec

        source = f"memory://dasknmf-rank-{tmp_path.name}/V.zarr"
        dasknmf.write_matrix(matrix, source)
        fs = fsspec.filesystem("memory")
        root = source.removeprefix("memory://")
        for key in fs.find(root):
            if "/c/" in key:  # every chunk: only the metadata records are left
                fs.rm(key)
    job = base_job(source, tmp_path / "out", n_components=min(matrix.shape) + 1)
    if kind == "url":
        del job["input"]["chunks"]
    path = write_job(job)
    try:
        assert main(["validate", str(path)]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert f"{path}:" in err and "model.n_components" in err
        assert f"[1, {min(matrix.shape)}] for the input" in err
        assert f"of shape {matrix.shape}; got {min(matrix.shape) + 1}." in err
        assert not (tmp_path / "out").exists()
        job["model"]["n_components"] = min(matrix.shape)
        assert main(["validate", str(write_job(job))]) == EXIT_OK
    finally:
        if kind == "url":
            fsspec.filesystem("memory").rm(source.removeprefix("memory://"), recursive=True)


def test_validate_bounds_the_rank_of_an_input_of_unknown_shape(write_job, tmp_path, capsys):
    """A triplet file's shape is known only once it is read: a rank that no input
    can take is refused all the same, a plausible one is left to the run."""
    (tmp_path / "r.csv").write_text("user,item,rating\nann,x,4\nbob,y,2\n")
    job = base_job(tmp_path / "r.csv", tmp_path / "out", n_components=10**20)
    path = write_job(job)
    assert main(["validate", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"{path}:" in err
    assert "'model.n_components' parameter must be an int in [1, 1048576] (2**20)" in err
    assert "known only once it is read" in err and "got 100000000000000000000." in err
    job["model"]["n_components"] = 101
    assert main(["validate", str(write_job(job))]) == EXIT_OK


def test_keep_invalid_is_an_input_option_of_every_file_kind(write_job, tmp_path, capsys):
    """Issue: a file with a negative value is refused when the job ingests it,
    naming its line (exit 2, no output); input.options.keep_invalid keeps it."""
    (tmp_path / "r.csv").write_text("user,item,rating\nann,x,4\nbob,y,-2\n")
    np.save(tmp_path / "v.npy", np.eye(4))
    for source in (tmp_path / "r.csv", tmp_path / "v.npy"):
        job = base_job(source, tmp_path / "out", n_components=1)
        job["input"]["options"] = {"keep_invalid": True}
        assert main(["validate", str(write_job(job))]) == EXIT_OK
    job = base_job(tmp_path / "r.csv", tmp_path / "out", n_components=1)
    del job["input"]["chunks"]
    assert main(["run", str(write_job(job))]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "r.csv', line 3, entry 2: the value -2.0 is negative (1 such value(s)" in err
    assert not (tmp_path / "out").exists() and hidden(tmp_path) == []


def test_missing_job_file_is_a_usage_error(capsys, tmp_path):
    assert main(["run", str(tmp_path / "none.yaml")]) == EXIT_USAGE
    assert "job file" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["example.yaml", "cluster.yaml"])
def test_shipped_configs_pass_validate(name, capsys):
    assert main(["validate", str(CONFIGS / name)]) == EXIT_OK
    assert capsys.readouterr().out.startswith("OK: ")


def test_dask_config_keys_are_distributeds(monkeypatch):
    import distributed  # noqa: F401  (registers distributed's defaults)

    data = yaml.safe_load((CONFIGS / "dask.yaml").read_text())

    def leaves(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    found = dict(leaves(data))
    assert found["distributed.worker.memory.target"] == 0.6
    for key in found:
        dask.config.get(key)  # raises KeyError for a key distributed does not know
    # And dask reads the file the way `dask worker` does with DASK_CONFIG.
    collected = dask.config.collect(paths=[str(CONFIGS / "dask.yaml")], env={})
    assert collected["distributed"]["comm"]["timeouts"]["connect"] == "60s"


# -- run -------------------------------------------------------------------------------


def test_run_prints_progress_and_where_the_outputs_are(write_job, matrix_file, tmp_path, capsys):
    path = write_job(base_job(matrix_file, tmp_path / "out"))
    assert main(["run", str(path)]) == EXIT_OK
    out = steps(capsys.readouterr().out)
    assert out[0] == "scheduler: threads in this process (2 threads)"
    assert out[1].startswith("input: 90 x 40, 1,080 non-zeros (ingested from ")
    iterations = [ITER_LINE.match(line) for line in out if line.startswith("iter")]
    # The first 10 one by one, then one every 10 s (none here), and the last.
    assert [int(m.group(1)) for m in iterations] == [*range(1, 11), 15]
    assert all(float(m.group(5)) >= 0 for m in iterations)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["result"]
    assert out[-3] == (
        f"fit: 15 iterations, error {summary['final_error']:.6e} (relative error "
        f"{summary['relative_error']:.4f}, initial error {summary['initial_error']:.6e}) in "
        f"{out[-3].split(' in ')[-1]}"
    )
    # One relative error: the progress lines' is the summary's.
    assert iterations[-1].group(3) == f"{summary['relative_error']:.4f}"
    assert out[-2] == "ran all 15 iterations (max_iter)"
    assert out[-1].startswith(f"outputs: {tmp_path / 'out'} (H.zarr, W.zarr,")


def test_run_says_when_the_tol_rule_stopped_it(write_job, matrix_file, tmp_path, capsys):
    path = write_job(base_job(matrix_file, tmp_path / "out", max_iter=200, tol=1e-3))
    assert main(["run", str(path)]) == EXIT_OK
    out = steps(capsys.readouterr().out)
    result = json.loads((tmp_path / "out" / "summary.json").read_text())["result"]
    n = result["iterations"]
    assert n < 200 and n % 10 == 0
    errors = dict(result["error_curve"])
    decrease = (errors[n - 10] - errors[n]) / result["initial_error"]
    assert decrease < 1e-3
    assert out[-2] == (
        f"stopped at iteration {n} of 200: relative decrease {decrease:.2e} < tol 0.001 "
        "(set model.tol: 0 to run every iteration)"
    )
    assert result["stop"] == {
        "rule": "tol",
        "iteration": n,
        "max_iter": 200,
        "tol": 1e-3,
        "relative_decrease": pytest.approx(decrease, rel=1e-9),
        "best_iteration": None,
        "text": out[-2],
    }


def test_run_quiet_prints_the_result_and_the_outputs(write_job, matrix_file, tmp_path, capsys):
    # Quiet drops the progress and the steps, never the result.
    path = write_job(base_job(matrix_file, tmp_path / "out"))
    assert main(["run", str(path), "--quiet"]) == EXIT_OK
    out = steps(capsys.readouterr().out)
    assert len(out) == 3 and out[0].startswith("fit: 15 iterations, error ")
    assert out[1] == "ran all 15 iterations (max_iter)"
    assert out[2] == f"outputs: {tmp_path / 'out'}"


def test_a_ratings_job_reports_every_rmse_even_quiet(write_job, tmp_path, capsys):
    job = base_job(
        "example:ratings", tmp_path / "out", missing="ignore", validation=0.1, alpha_weighted=0.03
    )
    job["model"].update(max_iter=40, tol=1e-3)
    job["input"] = {"path": "example:ratings", "rows": 300, "cols": 100, "holdout": 0.2}
    assert main(["run", str(write_job(job)), "--quiet"]) == EXIT_OK
    out = steps(capsys.readouterr().out)
    rmse = [line for line in out if line.startswith("RMSE")]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    evaluation = summary["evaluation"]
    best = evaluation["best_iteration"]
    # The last line before the outputs: why the fit stopped.
    assert out[-2] == summary["result"]["stop"]["text"]
    assert out[-2].startswith(("ran all 40 iterations (max_iter)", "stopped at iteration "))
    assert summary["result"]["relative_error"] is None  # validation: not ‖X‖_F's share
    assert 1 <= best <= 40 and evaluation["validation_entries"] > 0
    assert rmse == [
        f"RMSE: train {evaluation['train_rmse']:.4f} ({evaluation['train_entries']:,} entries), "
        f"held out {evaluation['holdout_rmse']:.4f} ({evaluation['holdout_entries']:,} entries), "
        f"validation {evaluation['validation_rmse']:.4f} "
        f"({evaluation['validation_entries']:,} entries, best at iteration {best})"
    ]


def test_run_refuses_an_existing_output_unless_overwrite(write_job, matrix_file, tmp_path, capsys):
    path = write_job(base_job(matrix_file, tmp_path / "out"))
    assert main(["run", str(path), "--quiet", "--set", "model.max_iter=2"]) == EXIT_OK
    before = tree(tmp_path / "out")
    capsys.readouterr()

    assert main(["run", str(path), "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "already holds a job's output" in err and "--overwrite" in err
    assert tree(tmp_path / "out") == before
    assert hidden(tmp_path) == []

    assert main(["run", str(path), "--quiet", "--overwrite"]) == EXIT_OK
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["result"]["iterations"] == 15
    assert summary["config"]["output"]["overwrite"] is True


def test_example_config_runs_as_shipped(tmp_path, monkeypatch, capsys):
    # Run from an empty directory so that runs/example lands there, not in the repo.
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(CONFIGS / "example.yaml"), "--quiet"]) == EXIT_OK
    out = tmp_path / "runs" / "example"
    assert capsys.readouterr().out.endswith(f"\noutputs: {out}\n")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input"]["kind"] == "example"
    assert summary["result"]["final_error"] > 0
    assert (out / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    W = dense(dasknmf.open_matrix(out / "W.zarr").compute())
    assert W.shape == (summary["input"]["shape"][0], summary["result"]["n_components"])


@pytest.mark.slow
def test_laptop_config_runs_on_worker_processes(tmp_path, monkeypatch, capsys):
    """The shipped laptop job (2 worker processes, out of core) on a small store, with
    the results of the same fit in this process."""
    monkeypatch.chdir(tmp_path)
    V = make_matrix(120, 60, density=0.2, seed=3)
    dasknmf.write_matrix(V, "data/term_document.zarr", chunks=(40, 60))
    overrides = ["model.n_components=4", "model.max_iter=8", "model.tol=0"]
    overrides += ["cluster.memory_limit=1GiB", "cluster.dashboard=false", "report.plot=false"]
    args = ["run", str(CONFIGS / "laptop.yaml"), "--quiet"]
    assert main([*args, *(a for o in overrides for a in ("--set", o))]) == EXIT_OK
    out = tmp_path / "runs" / "laptop-k20"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scheduler"]["type"] == "local"
    assert summary["scheduler"]["workers"] == 2
    assert summary["result"]["persisted"] is False

    ref = dasknmf.NMF(4, solver="hals", max_iter=8, tol=0, random_state=0, persist=False)
    W_ref = np.asarray(ref.fit_transform("data/term_document.zarr"))
    H = dense(dasknmf.open_matrix(out / "H.zarr").compute())
    W = dense(dasknmf.open_matrix(out / "W.zarr").compute())
    np.testing.assert_allclose(H, ref.components_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(W, W_ref, rtol=1e-6, atol=1e-9)


def test_laptop_config_validates_where_its_input_exists(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    dasknmf.write_matrix(term_document(50, 20), Path("data/term_document.zarr"))
    assert main(["validate", str(CONFIGS / "laptop.yaml")]) == EXIT_OK
    out = capsys.readouterr().out
    assert "local cluster: 2 workers (processes) x 1 threads, memory_limit 2GiB" in out
