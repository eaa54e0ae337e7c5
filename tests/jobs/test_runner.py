"""``run_job`` end to end: results equal an in-process fit, outputs are complete and atomic."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

import dasknmf
from dasknmf.jobs import outputs, report, runner
from dasknmf.jobs.loading import parse_config
from dasknmf.jobs.outputs import OutputExistsError, is_job_output
from dasknmf.jobs.runner import run_job
from tests.jobs.jobs_testing import TILES, base_job, dense, hidden, tree


def reference_fit(matrix, tmp_path: Path, **params):
    """The same fit in this process, on a store with the job's tiles."""
    store = tmp_path / "reference.zarr"
    dasknmf.write_matrix(matrix, store, chunks=TILES)
    model = dasknmf.NMF(**params)
    W = np.asarray(model.fit_transform(str(store)))
    return W, model


def read_back(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    return tuple(
        dense(dasknmf.open_matrix(directory / name).compute()) for name in ("W.zarr", "H.zarr")
    )


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


class Recorder:
    """A progress observer that keeps what it is told."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.iterations: list[int] = []

    def event(self, message: str) -> None:
        self.events.append(message)

    def iteration(self, info) -> None:
        self.iterations.append(info.iteration)


# -- results ---------------------------------------------------------------------------


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
def test_job_results_equal_an_in_process_fit(cluster, matrix, matrix_file, tmp_path):
    job = base_job(matrix_file, tmp_path / "out", solver="hals", check_every=5)
    job["cluster"] = cluster
    progress = Recorder()
    result = run_job(parse_config(job), progress=progress)

    params = dict(n_components=3, max_iter=15, tol=0, random_state=0, solver="hals")
    W_ref, ref = reference_fit(matrix, tmp_path, check_every=5, **params)
    W, H = read_back(tmp_path / "out")
    np.testing.assert_allclose(H, ref.components_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(W, W_ref, rtol=1e-6, atol=1e-9)
    assert result.model.reconstruction_err_ == pytest.approx(ref.reconstruction_err_, rel=1e-9)

    assert progress.iterations == list(range(1, 16))
    scheduler = progress.events[0]
    assert scheduler.startswith(
        "scheduler: " + ("threads" if cluster["type"] == "threads" else "local")
    )
    assert progress.events[-1].startswith(f"outputs: {tmp_path / 'out'}")
    assert hidden(tmp_path) == []  # no temporary or work directory left


def test_summary_records_config_input_result_scheduler_timings_versions(matrix_file, tmp_path):
    job = parse_config(base_job(matrix_file, tmp_path / "out"), "job.yaml", ["checkpoint.every=5"])
    result = run_job(job)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary == result.summary | {"timings": summary["timings"]}

    assert summary["schema_version"] == outputs.SUMMARY_VERSION
    assert summary["config_file"] == "job.yaml"
    assert summary["config"] == job.to_dict()
    assert summary["config"]["model"]["max_iter"] == 15
    assert summary["config"]["cluster"] == {"type": "threads", "threads": 2}
    assert summary["input"] | {"path": None} == {
        "kind": "file",
        "path": None,
        "shape": [90, 40],
        "nnz": 1080,
        "dtype": "float64",
        "format": "sparse",
        "tile_shape": list(TILES),
    }
    res = summary["result"]
    assert (res["n_components"], res["iterations"], res["converged"]) == (3, 15, False)
    assert res["final_error"] == pytest.approx(result.model.reconstruction_err_)
    # Every iteration's error, even without a progress observer.
    assert [i for i, _ in res["error_curve"]] == list(range(1, 16))
    assert summary["scheduler"] | {"threads": 2} == {
        "type": "threads",
        "address": None,
        "dashboard_link": None,
        "workers": 1,
        "threads": 2,
        "note": None,
    }
    assert summary["checkpoint"] == {"every": 5, "written": 3}  # iterations 5, 10, 15
    assert summary["resumed"] is None and len(summary["run_id"]) == 32
    assert set(summary["timings"]) == {"setup", "input", "fit", "write", "total"}
    assert all(t >= 0 for t in summary["timings"].values())
    assert summary["timings"]["total"] >= summary["timings"]["fit"]
    assert set(summary["versions"]) == {
        "python",
        "dasknmf",
        "dask",
        "distributed",
        "numpy",
        "scipy",
        "zarr",
        "scikit-learn",
    }
    assert summary["versions"]["dasknmf"] == dasknmf.__version__
    assert summary["outputs"] == ["H.zarr", "W.zarr", "convergence.png", "summary.json"]
    assert sorted(os.listdir(tmp_path / "out")) == sorted([*summary["outputs"], "zarr.json"])


class Errors(Recorder):
    """A progress that also keeps each iteration's error and initial error, and the
    norm the fit tells it."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[tuple[float, float]] = []
        self.norm: float | None = None

    def iteration(self, info) -> None:
        super().iteration(info)
        self.errors.append((info.error, info.error_at_init))

    def on_norm(self, norm: float | None) -> None:
        self.norm = norm


def test_summary_has_the_initial_final_and_relative_errors(matrix, matrix_file, tmp_path):
    progress = Errors()
    run_job(parse_config(base_job(matrix_file, tmp_path / "out")), progress=progress)
    result = json.loads((tmp_path / "out" / "summary.json").read_text())["result"]
    W, H = read_back(tmp_path / "out")
    V = dense(matrix)
    # ‖V − WH‖_F / ‖V‖_F from the written factors, by dense NumPy.
    expected = np.linalg.norm(V - W @ H) / np.linalg.norm(V)
    assert result["relative_error"] == pytest.approx(expected, rel=1e-6)
    assert result["final_error"] == pytest.approx(np.linalg.norm(V - W @ H), rel=1e-6)
    assert result["initial_error"] == progress.errors[0][1] > result["final_error"]
    assert progress.norm == pytest.approx(np.linalg.norm(V), rel=1e-12)
    assert result["stop"] == {
        "rule": "max_iter",
        "iteration": 15,
        "max_iter": 15,
        "tol": 0.0,
        "relative_decrease": None,
        "best_iteration": None,
        "text": "ran all 15 iterations (max_iter)",
    }


def test_converged_flag_and_plot(matrix_file, tmp_path):
    job = base_job(matrix_file, tmp_path / "out", tol=0.5, max_iter=200)
    summary = run_job(parse_config(job), progress=Recorder()).summary
    assert summary["result"]["converged"] is True
    assert summary["result"]["iterations"] < 200
    curve = summary["result"]["error_curve"]
    assert [i for i, _ in curve] == list(range(1, summary["result"]["iterations"] + 1))
    width, height = png_size((tmp_path / "out" / "convergence.png").read_bytes())
    assert width > 100 and height > 100


def test_example_input_without_w_and_plot(tmp_path):
    job = {
        "input": {"path": "example:term-document", "rows": 300, "cols": 80},
        "model": {"n_components": 4, "max_iter": 5, "random_state": 1},
        "output": {"directory": str(tmp_path / "out"), "save_w": False},
        "report": {"plot": False},
    }
    result = run_job(parse_config(job))
    assert result.outputs == ["H.zarr", "summary.json"]
    assert result.summary["input"] == {
        "kind": "example",
        "path": "example:term-document",
        "shape": [300, 80],
        "nnz": result.summary["input"]["nnz"],
        "dtype": "float32",
    }
    assert not (tmp_path / "out" / "W.zarr").exists()


def test_store_input_with_storage_options_url(matrix, tmp_path):
    dasknmf.write_matrix(matrix, "memory://jobs/V.zarr", chunks=TILES)
    job = base_job("memory://jobs/V.zarr", tmp_path / "out")
    del job["input"]["chunks"]
    job["input"]["storage_options"] = {"skip_instance_cache": True}
    result = run_job(parse_config(job))
    assert result.summary["input"]["kind"] == "store"
    assert result.summary["input"]["tile_shape"] == list(TILES)
    _, ref = reference_fit(matrix, tmp_path, n_components=3, max_iter=15, tol=0, random_state=0)
    np.testing.assert_allclose(read_back(tmp_path / "out")[1], ref.components_, rtol=1e-6)


# -- top features ----------------------------------------------------------------------


def test_top_features_of_a_fake_vocabulary():
    H = np.array([[0.1, 3.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0], [5.0, 5.0, 1.0, 0.0]])
    table = report.top_features(H, ["apple", "bus", "cat", "dog"], 2)
    assert [[f["feature"] for f in c] for c in table] == [["bus", "dog"], [], ["apple", "bus"]]
    assert table[0][0] == {"feature": "bus", "index": 1, "weight": 3.0}
    assert report.format_top_features(table).splitlines() == [
        "component 0: bus (3), dog (2)",
        "component 1: (no feature of positive weight)",
        "component 2: apple (5), bus (5)",
    ]
    with pytest.raises(ValueError, match="3 column ids for 4 columns"):
        report.top_features(H, ["a", "b", "c"], 2)


def test_job_writes_top_features_when_the_input_has_column_ids(matrix_file, tmp_path, monkeypatch):
    vocabulary = [f"term{j:02d}" for j in range(40)]
    monkeypatch.setattr(report, "column_ids", lambda path, options=None: vocabulary)
    job = base_job(matrix_file, tmp_path / "out")
    job["report"] = {"top_features": 4, "plot": False}
    result = run_job(parse_config(job))
    out = tmp_path / "out"
    assert "top_features.json" in result.outputs and "top_features.txt" in result.outputs
    table = json.loads((out / "top_features.json").read_text())["components"]
    H = result.model.components_
    assert len(table) == 3
    for c, features in enumerate(table):
        assert [f["index"] for f in features] == list(np.argsort(-H[c], kind="stable")[:4])
        assert [f["feature"] for f in features] == [vocabulary[f["index"]] for f in features]
    assert (out / "top_features.txt").read_text().startswith("component 0: term")


def test_top_features_of_a_triplet_file_with_named_columns(tmp_path):
    """The whole path: a triplet file with named columns is ingested, its column ids
    are read back from the store and name the top features."""
    if not hasattr(dasknmf.storage, "read_ids"):
        pytest.skip("this dasknmf has no dasknmf.storage.read_ids")
    rng = np.random.default_rng(0)
    words = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "kiwi"]
    lines = [
        f"doc{d},{words[w]},{rng.integers(1, 5)}"
        for d in range(30)
        for w in rng.choice(len(words), 4, replace=False)
    ]
    (tmp_path / "docs.csv").write_text("\n".join(lines) + "\n")
    job = base_job(tmp_path / "docs.csv", tmp_path / "out")
    del job["input"]["chunks"]
    job["report"] = {"top_features": 3, "plot": False}
    result = run_job(parse_config(job))
    table = json.loads((tmp_path / "out" / "top_features.json").read_text())["components"]
    assert all(f["feature"] in words for component in table for f in component)
    assert "top_features.txt" in result.outputs


def test_no_top_features_without_column_ids(matrix_file, tmp_path):
    # Stores written from a matrix have no ids (read_ids gives the indices, or this
    # dasknmf has no read_ids yet): the job simply writes no top features.
    result = run_job(parse_config(base_job(matrix_file, tmp_path / "out")))
    assert not any(name.startswith("top_features") for name in result.outputs)


# -- existing outputs and atomicity ----------------------------------------------------


@pytest.fixture
def previous_output(matrix_file, tmp_path) -> Path:
    """The output of a first job, to be refused, replaced or protected."""
    run_job(parse_config(base_job(matrix_file, tmp_path / "out", max_iter=3)))
    return tmp_path / "out"


def test_existing_output_is_refused_before_any_work(previous_output, matrix_file, monkeypatch):
    before = tree(previous_output)
    monkeypatch.setattr(runner, "connect", lambda *a: pytest.fail("no scheduler expected"))
    job = parse_config(base_job(matrix_file, previous_output))
    with pytest.raises(OutputExistsError, match=r"output\.overwrite: true"):
        run_job(job)
    assert tree(previous_output) == before
    assert hidden(previous_output.parent) == []


def test_overwrite_replaces_the_whole_previous_output(previous_output, matrix_file):
    (previous_output / "stale.txt").write_text("from an older run")
    job = base_job(matrix_file, previous_output, max_iter=4)
    job["output"]["overwrite"] = True
    job["report"] = {"plot": False}
    run_job(parse_config(job))
    names = sorted(os.listdir(previous_output))
    assert names == ["H.zarr", "W.zarr", "summary.json", "zarr.json"]
    summary = json.loads((previous_output / "summary.json").read_text())
    assert summary["result"]["iterations"] == 4
    assert hidden(previous_output.parent) == []


@pytest.mark.parametrize("content", ["file", "directory"])
def test_something_else_is_never_replaced_even_with_overwrite(content, matrix_file, tmp_path):
    target = tmp_path / "mine"
    if content == "file":
        target.write_text("precious")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("precious")
    job = base_job(matrix_file, target)
    job["output"]["overwrite"] = True
    with pytest.raises(OutputExistsError, match="not the output of a dasknmf job"):
        run_job(parse_config(job))
    assert (target.read_text() if content == "file" else (target / "notes.txt").read_text()) == (
        "precious"
    )


def test_an_empty_directory_is_taken_over(matrix_file, tmp_path):
    (tmp_path / "out").mkdir()
    run_job(parse_config(base_job(matrix_file, tmp_path / "out")))
    assert is_job_output(tmp_path / "out")


@pytest.mark.parametrize("after", ["H.zarr", "W.zarr", "convergence.png", "summary.json"])
def test_crash_while_writing_leaves_the_previous_output_intact(
    after, previous_output, matrix_file, monkeypatch
):
    """A crash just after each file is written (the last one: just before the rename)."""
    before = tree(previous_output)
    seen: dict[str, object] = {}

    def crash_after(method: str):
        real = getattr(outputs.OutputWriter, method)

        def write(self, name, data):
            real(self, name, data)
            if name == after:
                seen["place"], seen["names"] = self.path, sorted(os.listdir(self.path))
                raise RuntimeError("simulated crash while writing")

        return write

    for method in ("write_matrix", "write_bytes", "write_text"):
        monkeypatch.setattr(outputs.OutputWriter, method, crash_after(method))
    job = base_job(matrix_file, previous_output, max_iter=5)
    job["output"]["overwrite"] = True
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_job(parse_config(job))
    # The new files went to a hidden sibling, which is gone; the old output is intact.
    assert after in seen["names"]
    assert seen["place"].parent == previous_output.parent
    assert seen["place"].name.startswith(".out")
    assert tree(previous_output) == before
    assert hidden(previous_output.parent) == []
    assert sorted(os.listdir(previous_output.parent)) == ["data", "out"]


def test_crash_while_writing_a_new_output_leaves_nothing(matrix_file, tmp_path, monkeypatch):
    real_write = outputs.OutputWriter.write_matrix
    written = []

    def write_then_crash(self, name, X):
        real_write(self, name, X)
        written.append(name)
        raise KeyboardInterrupt  # an interrupt midway, after H.zarr is on disk

    monkeypatch.setattr(outputs.OutputWriter, "write_matrix", write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        run_job(parse_config(base_job(matrix_file, tmp_path / "out")))
    assert written == ["H.zarr"]
    assert sorted(os.listdir(tmp_path)) == ["data"]


# -- missing-entry models: RMSE ------------------------------------------------------


def test_ratings_example_reports_train_and_held_out_rmse(tmp_path):
    """The in-memory example split by input.holdout: the job's RMSEs are those of the
    same fit made here on the same split."""
    from dasknmf.datasets import ratings
    from dasknmf.ingest.split import split_matrix

    job = base_job("example:ratings", tmp_path / "out", missing="ignore", max_iter=30)
    job["input"] = {"path": "example:ratings", "rows": 300, "cols": 100, "holdout": 0.25}
    result = run_job(parse_config(job), progress=(recorder := Recorder()))
    X, _, _ = ratings(300, 100, int(0.02 * 300 * 100), seed=0)
    train, test = split_matrix(X, 0.25, seed=0)
    model = dasknmf.NMF(3, missing="ignore", max_iter=30, tol=0, random_state=0).fit(train)
    evaluation = json.loads((tmp_path / "out" / "summary.json").read_text())["evaluation"]
    assert evaluation == result.summary["evaluation"]
    assert evaluation["train_entries"] == train.nnz
    assert evaluation["holdout_entries"] == test.nnz > 0
    np.testing.assert_allclose(evaluation["train_rmse"], model.rmse(train), rtol=1e-5)
    np.testing.assert_allclose(evaluation["holdout_rmse"], model.rmse(test), rtol=1e-5)
    assert any(e.startswith("RMSE: train ") and "held out" in e for e in recorder.events)


def test_triplet_file_split_and_held_out_store(tmp_path):
    """A triplet file split by the job equals `ingest --holdout` followed by a job on
    the two stores; both score the held-out ratings the same way."""
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 60, 900), rng.integers(0, 30, 900)
    pairs = np.unique(np.c_[users, items], axis=0)
    lines = [f"u{u},i{i},{1 + (u * i) % 5}" for u, i in pairs]
    src = tmp_path / "ratings.csv"
    src.write_text("user,item,rating\n" + "\n".join(lines) + "\n")

    split_job = base_job(src, tmp_path / "a", missing="ignore")
    split_job["input"] = {"path": str(src), "holdout": 0.2, "seed": 4}
    a = run_job(parse_config(split_job)).summary["evaluation"]

    dasknmf.ingest_triplets(src, tmp_path / "r.zarr", holdout=0.2, seed=4)
    store_job = base_job(tmp_path / "r.zarr", tmp_path / "b", missing="ignore")
    store_job["input"] = {
        "path": str(tmp_path / "r.zarr"),
        "holdout": str(tmp_path / "r.holdout.zarr"),
    }
    b = run_job(parse_config(store_job)).summary["evaluation"]
    assert a["holdout_entries"] == b["holdout_entries"] > 0
    assert a["train_entries"] + a["holdout_entries"] == len(lines)
    np.testing.assert_allclose(a["holdout_rmse"], b["holdout_rmse"], rtol=1e-6)
    np.testing.assert_allclose(a["train_rmse"], b["train_rmse"], rtol=1e-6)


def test_held_out_store_of_another_shape_is_refused(tmp_path, matrix):
    dasknmf.write_matrix(matrix, tmp_path / "v.zarr")
    dasknmf.write_matrix(matrix[:10], tmp_path / "other.zarr")
    job = base_job(tmp_path / "v.zarr", tmp_path / "out", missing="ignore")
    job["input"] = {"path": str(tmp_path / "v.zarr"), "holdout": str(tmp_path / "other.zarr")}
    with pytest.raises(dasknmf.InvalidParameterError, match="must index the same matrix"):
        run_job(parse_config(job))
    assert not (tmp_path / "out").exists()


# -- other files to ingest: corpora and AnnData --------------------------------------


def test_corpus_directory_with_ingest_options_gives_vocabulary_top_features(tmp_path):
    """A directory of .txt documents is ingested with the job's options (scikit-learn's
    CountVectorizer semantics) and its vocabulary names the top features."""
    from sklearn.feature_extraction.text import CountVectorizer

    docs = [
        "the cat sat on the mat",
        "dogs and cats are pets",
        "the stock market fell",
        "markets rally as stocks rise",
        "a cat and a dog",
        "investors sold stocks",
    ] * 3
    corpus = tmp_path / "docs"
    corpus.mkdir()
    for i, doc in enumerate(docs):
        (corpus / f"{i:03d}.txt").write_text(doc)
    job = base_job(corpus, tmp_path / "out", max_iter=20)
    job["input"] = {"path": str(corpus), "options": {"stop_words": "english", "min_df": 2}}
    job["report"] = {"plot": False, "top_features": 3}
    result = run_job(parse_config(job))
    vectorizer = CountVectorizer(stop_words="english", min_df=2)
    X = vectorizer.fit_transform(docs)
    assert result.summary["input"]["shape"] == list(X.shape)
    top = json.loads((tmp_path / "out" / "top_features.json").read_text())
    vocabulary = set(vectorizer.get_feature_names_out())
    terms = [f["feature"] for comp in top["components"] for f in comp]
    assert terms and set(terms) <= vocabulary


def test_anndata_file_input(tmp_path, matrix):
    anndata = pytest.importorskip("anndata")
    path = tmp_path / "cells.h5ad"
    anndata.AnnData(matrix.astype(np.float32)).write_h5ad(path)
    result = run_job(parse_config(base_job(path, tmp_path / "out")))
    _, model = reference_fit(
        matrix.astype(np.float32), tmp_path, n_components=3, max_iter=15, tol=0, random_state=0
    )
    H_job = read_back(tmp_path / "out")[1]
    assert result.summary["input"]["shape"] == list(matrix.shape)
    np.testing.assert_allclose(H_job, model.components_, rtol=1e-5, atol=1e-7)
