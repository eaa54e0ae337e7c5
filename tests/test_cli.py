"""The ``dasknmf`` command line, run in-process through :func:`dasknmf.cli.main`."""

from __future__ import annotations

import importlib.util
import itertools
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

import dasknmf
from dasknmf.cli import main
from dasknmf.storage import matrix_info, open_matrix, read_ids
from tests.test_package import loaded_after

SMALL_DEMO = ["demo", "--rows", "600", "--cols", "300", "--k", "4", "--max-iter", "15"]
ITER_LINE = re.compile(
    r"^iter\s+(\d+)\s+error\s+(\S+)\s+relative\s+(\S+)\s+(\S+) s\s+(\S+) s/iter$"
)


def _tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes, to check a store was left untouched."""
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def _dense(path: Path) -> np.ndarray:
    V = open_matrix(path).compute()
    return V.toarray() if sp.issparse(V) else np.asarray(V)


@pytest.fixture
def sparse_matrix() -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    X = sp.random(57, 23, density=0.2, format="csr", random_state=rng, dtype=np.float64)
    X.data = np.round(X.data * 10) + 1  # integral values survive MatrixMarket text exactly
    return X


# -- demo ------------------------------------------------------------------------------


def test_demo_prints_each_iteration_and_summary_and_removes_temp_store(
    capsys, monkeypatch, tmp_path
):
    # Temporary directories land in tmp_path so the test can see that they are removed.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main([*SMALL_DEMO, "--tol", "0"]) == 0
    out = capsys.readouterr().out

    iter_lines = [line for line in out.splitlines() if line.startswith("iter")]
    assert len(iter_lines) == 15
    iterations = [ITER_LINE.match(line) for line in iter_lines]
    assert [int(m.group(1)) for m in iterations] == list(range(1, 16))
    errors = [float(m.group(2)) for m in iterations]
    assert all(b <= a * (1 + 1e-6) for a, b in itertools.pairwise(errors))

    assert "600 x 300" in out
    assert "\nran all 15 iterations (max_iter)\n" in out
    relative = float(re.search(r"relative error\s+: (\S+)", out).group(1))
    assert 0 < relative < 1
    # One relative error: the last progress line's is the summary's.
    assert iterations[-1].group(3) == f"{relative:.4f}"
    assert "wall time" in out and "V persisted" in out
    assert len(re.findall(r"component \d: (?:\d+ ){4}\d+$", out, flags=re.M)) == 3
    assert list(tmp_path.iterdir()) == []


def _summary_number(out: str, label: str) -> float:
    return float(re.search(rf"^{label}\s+: (\S+)", out, flags=re.M).group(1))


def test_demo_relative_error_is_the_error_over_the_norm_of_V(capsys, tmp_path):
    """‖V − WH‖_F / ‖V‖_F, with ‖V‖_F of the stored matrix by dense NumPy; and every
    progress line's ``relative`` is its error over the same norm."""
    store = tmp_path / "demo.zarr"
    assert main([*SMALL_DEMO, "--tol", "0", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    norm = np.linalg.norm(_dense(store).astype(np.float64))
    error = _summary_number(out, "reconstruction error")
    assert _summary_number(out, "relative error") == pytest.approx(error / norm, abs=5e-5)
    for m in map(ITER_LINE.match, (line for line in out.splitlines() if line[:4] == "iter")):
        assert float(m.group(3)) == pytest.approx(float(m.group(2)) / norm, abs=5e-5)
    assert _summary_number(out, "initial error") > error


def test_demo_says_the_tol_rule_stopped_it_and_by_how_much(capsys):
    assert main([*SMALL_DEMO[:-1], "100"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    errors = {int(m.group(1)): float(m.group(2)) for m in map(ITER_LINE.match, lines) if m}
    n, initial = max(errors), _summary_number(out, "initial error")
    assert 10 < n < 100 and n % 10 == 0  # stopped at a check (every 10 iterations)
    # The rule compares the error with the previous check's, relative to the initial one.
    decrease = (errors[n - 10] - errors[n]) / initial
    before = errors[n - 20] if n > 20 else initial
    assert decrease < 1e-4 <= (before - errors[n - 10]) / initial
    stop = next(line for line in lines if line.startswith("stopped at"))
    printed = re.fullmatch(
        rf"stopped at iteration {n} of 100: relative decrease (\S+) < tol 0\.0001 "
        r"\(set --tol 0 to run every iteration\)",
        stop,
    )
    # Equal up to the rounding of the printed errors.
    assert float(printed.group(1)) == pytest.approx(decrease, rel=0.02)


def test_demo_on_the_gpu_equals_the_demo_on_the_cpu(capsys, fake_cupy):
    outputs = {}
    for device in ("cpu", "cuda"):
        assert main([*SMALL_DEMO, "--tol", "0", "--device", device]) == 0
        outputs[device] = capsys.readouterr().out
    pattern = r"reconstruction error : (\S+)"
    errors = {d: re.search(pattern, out).group(1) for d, out in outputs.items()}
    assert errors["cuda"] == errors["cpu"]
    assert "V persisted          : yes (in memory) on the GPU" in outputs["cuda"]


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_demo_on_a_gpu_without_cupy_says_how_to_install_it(capsys):
    assert main([*SMALL_DEMO, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "dasknmf: error: device='cuda' needs CuPy" in err
    assert "pip install 'dasknmf[gpu]'" in err


def test_demo_keep_and_info_describe_the_store(capsys, tmp_path):
    store = tmp_path / "demo.zarr"
    assert main([*SMALL_DEMO, "--store", str(store), "--keep", "--chunks", "200", "300"]) == 0
    capsys.readouterr()
    assert store.is_dir()

    assert main(["info", str(store)]) == 0
    out = capsys.readouterr().out
    assert str(store) in out
    assert "600 x 300" in out
    assert "3 x 1 of 200 x 300" in out


def test_demo_refuses_existing_store(capsys, tmp_path):
    existing = tmp_path / "taken"
    existing.mkdir()
    (existing / "mine.txt").write_text("precious")
    before = _tree(existing)

    assert main([*SMALL_DEMO, "--store", str(existing)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("dasknmf: error: ")
    assert str(existing) in captured.err
    assert "Traceback" not in captured.err
    assert "iter" not in captured.out
    assert _tree(existing) == before


@pytest.mark.parametrize(
    "args",
    [["--rows", "0"], ["--k", "-1"], ["--tol", "-1"], ["--tol", "nan"], ["--max-iter", "x"]],
)
def test_demo_rejects_bad_numbers(capsys, args):
    with pytest.raises(SystemExit) as exc:
        main(["demo", *args])
    assert exc.value.code == 2
    assert "dasknmf demo: error: argument" in capsys.readouterr().err


def test_demo_rank_too_large_is_a_clean_error(capsys, tmp_path):
    code = main([*SMALL_DEMO[:-4], "--k", "400", "--store", str(tmp_path / "v.zarr")])
    assert code == 2
    assert "n_components" in capsys.readouterr().err


# -- ingest ----------------------------------------------------------------------------


def _write_source(kind: str, X: sp.csr_matrix, tmp_path: Path) -> Path:
    if kind == "mtx":
        path = tmp_path / "v.mtx"
        scipy.io.mmwrite(path, X.tocoo())
    elif kind == "npz":
        path = tmp_path / "v.npz"
        sp.save_npz(path, X)
    else:
        path = tmp_path / "v.npy"
        np.save(path, X.toarray())
    return path


@pytest.mark.parametrize("kind", ["mtx", "npz", "npy"])
def test_ingest_round_trips_exactly(kind, sparse_matrix, capsys, tmp_path):
    src = _write_source(kind, sparse_matrix, tmp_path)
    dst = tmp_path / "v.zarr"
    assert main(["ingest", str(src), str(dst), "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert str(dst) in out and "57 x 23" in out
    np.testing.assert_array_equal(_dense(dst), sparse_matrix.toarray())


def test_ingest_chunks_format_dtype(sparse_matrix, capsys, tmp_path):
    src = _write_source("npz", sparse_matrix, tmp_path)
    dst = tmp_path / "v.zarr"
    args = ["ingest", str(src), str(dst), "--chunks", "10", "7", "--format", "dense"]
    assert main([*args, "--dtype", "float32"]) == 0
    capsys.readouterr()
    info = matrix_info(dst)
    assert info.tile_shape == (10, 7)
    assert info.n_tiles == (6, 4)
    assert info.format == "dense"
    assert info.dtype == np.float32
    np.testing.assert_array_equal(_dense(dst), sparse_matrix.toarray().astype(np.float32))


def test_ingest_existing_store_needs_overwrite(sparse_matrix, capsys, tmp_path):
    src = _write_source("npz", sparse_matrix, tmp_path)
    dst = tmp_path / "v.zarr"
    assert main(["ingest", str(src), str(dst)]) == 0
    before = _tree(dst)

    other = _write_source("npy", 2 * sparse_matrix, tmp_path)
    capsys.readouterr()
    assert main(["ingest", str(other), str(dst)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dasknmf: error: ")
    assert str(dst) in err and "--overwrite" in err
    assert _tree(dst) == before

    assert main(["ingest", str(other), str(dst), "--overwrite"]) == 0
    np.testing.assert_array_equal(_dense(dst), 2 * sparse_matrix.toarray())


def test_ingest_unknown_extension(capsys, tmp_path):
    src = tmp_path / "v.xls"
    src.write_text("1,2\n3,4\n")
    assert main(["ingest", str(src), str(tmp_path / "v.zarr")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dasknmf: error: ") and str(src) in err
    assert not (tmp_path / "v.zarr").exists()


def test_ingest_missing_source(capsys, tmp_path):
    src = tmp_path / "absent.mtx"
    assert main(["ingest", str(src), str(tmp_path / "v.zarr")]) == 2
    assert str(src) in capsys.readouterr().err


def test_ingest_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ingest", "only-one-arg"])
    assert exc.value.code == 2


# -- info ------------------------------------------------------------------------------


def test_info_missing_path(capsys, tmp_path):
    path = tmp_path / "nowhere.zarr"
    assert main(["info", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("dasknmf: error: ") and str(path) in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_info_plain_directory(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("not a store")
    assert main(["info", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_traceback_flag_reraises(tmp_path):
    with pytest.raises(dasknmf.StoreNotFoundError):
        main(["--traceback", "info", str(tmp_path / "nowhere.zarr")])


def test_keyboard_interrupt_exits_130(capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("dasknmf.storage.matrix_info", interrupted)
    assert main(["info", "anything"]) == 130
    assert "interrupted" in capsys.readouterr().err


# -- entry points ----------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_load_no_array_library(flag):
    # `dasknmf --version` and `--help` in well under a second: each command imports what
    # it needs when it runs (docs/startup.md).
    code = (
        f"from dasknmf.cli import main\ntry:\n    main([{flag!r}])\nexcept SystemExit:\n    pass"
    )
    assert loaded_after(code) == []


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"dasknmf {dasknmf.__version__}"


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_python_dash_m_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "dasknmf", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"dasknmf {dasknmf.__version__}"


# -- ingest: triplet files -------------------------------------------------------------


def _ratings(n: int = 200) -> list[tuple[str, str, float]]:
    """Distinct (user, item) pairs with ratings 0..5 (zeros are observations)."""
    rng = np.random.default_rng(5)
    flat = rng.choice(30 * 20, size=n, replace=False)
    return [(f"u{f // 20}", f"i{f % 20}", float(f % 6)) for f in flat]


def _write_ratings(path: Path, entries, sep: str = ",", header: str | None = "user,item,rating"):
    lines = [header.replace(",", sep)] if header else []
    lines += [sep.join((u, i, f"{v:g}")) for u, i, v in entries]
    path.write_text("\n".join(lines) + "\n")


def _entries_by_id(path: Path) -> dict[tuple[str, str], float]:
    """Stored entries (explicit zeros included) keyed by the stored row and column ids."""
    rows, cols = read_ids(path, "rows"), read_ids(path, "columns")
    V = open_matrix(path).compute().tocoo()
    return {
        (str(rows[r]), str(cols[c])): float(v)
        for r, c, v in zip(V.row, V.col, V.data, strict=True)
    }


def test_ingest_triplets_with_holdout(capsys, tmp_path):
    entries = _ratings()
    _write_ratings(tmp_path / "r.csv", entries)
    dst, held = tmp_path / "train.zarr", tmp_path / "test.zarr"
    args = ["ingest", str(tmp_path / "r.csv"), str(dst), "--holdout", "0.25", "--seed", "3"]
    assert main([*args, "--holdout-output", str(held)]) == 0
    out = capsys.readouterr().out

    train, test = _entries_by_id(dst), _entries_by_id(held)
    assert train.keys().isdisjoint(test.keys())
    assert train | test == {(u, i): v for u, i, v in entries}
    assert 0 < len(test) < len(entries) / 2
    n_users = len({u for u, _, _ in entries})
    assert f"{n_users} x 20" in out
    assert f"{len(train)} train, {len(test)} hold-out" in out
    assert f"{dst}/row_ids" in out and f"{dst}/col_ids" in out
    assert matrix_info(dst).shape == matrix_info(held).shape

    # info says the ids are there.
    assert main(["info", str(dst)]) == 0
    assert "ids" in capsys.readouterr().out


def test_ingest_triplet_parsing_flags(capsys, tmp_path):
    entries = _ratings(50)
    # Value first, then item, then user; ';' separated; no header; a .txt file.
    lines = [f"{v:g};{i};{u}" for u, i, v in entries]
    (tmp_path / "r.txt").write_text("\n".join(lines) + "\n")
    dst = tmp_path / "r.zarr"
    args = ["ingest", str(tmp_path / "r.txt"), str(dst), "--delimiter", ";", "--no-header"]
    assert main([*args, "--columns", "2", "1", "0"]) == 0
    assert _entries_by_id(dst) == {(u, i): v for u, i, v in entries}

    # A tab typed as '\t'; columns by header name; two columns: values are 1.
    _write_ratings(tmp_path / "t.txt", entries, sep="\t")
    args = ["ingest", str(tmp_path / "t.txt"), str(tmp_path / "t.zarr"), "--delimiter", r"\t"]
    assert main([*args, "--header", "--columns", "item", "user"]) == 0
    assert _entries_by_id(tmp_path / "t.zarr") == {(i, u): 1.0 for u, i, _ in entries}
    assert "hold-out store : none" in capsys.readouterr().out


def test_ingest_triplet_errors_are_one_line(capsys, tmp_path):
    (tmp_path / "r.csv").write_text("user,item,rating\nann,x,4\nbob,x,lots\n")
    dst = tmp_path / "r.zarr"
    assert main(["ingest", str(tmp_path / "r.csv"), str(dst), "--holdout", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dasknmf: error: ")
    assert "r.csv" in err and "line 3" in err and "'lots'" in err
    assert not dst.exists() and not (tmp_path / "r.holdout.zarr").exists()

    # Triplet flags on a matrix file, and a hold-out path without a fraction.
    scipy.io.mmwrite(tmp_path / "m.mtx", sp.eye(3, format="coo"))
    assert main(["ingest", str(tmp_path / "m.mtx"), str(dst), "--holdout", "0.1"]) == 2
    assert "--holdout" in capsys.readouterr().err
    _write_ratings(tmp_path / "ok.csv", _ratings(10))
    assert main(["ingest", str(tmp_path / "ok.csv"), str(dst), "--holdout-output", "h"]) == 2
    assert "--holdout" in capsys.readouterr().err
    assert not dst.exists()


def test_ingest_triplets_existing_holdout_store_needs_overwrite(capsys, tmp_path):
    _write_ratings(tmp_path / "r.csv", _ratings())
    args = ["ingest", str(tmp_path / "r.csv"), str(tmp_path / "r.zarr"), "--holdout", "0.2"]
    assert main(args) == 0
    before = _tree(tmp_path / "r.holdout.zarr")
    (tmp_path / "r.zarr").rename(tmp_path / "moved.zarr")  # only the hold-out store is left
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "r.holdout.zarr" in err and "--overwrite" in err
    assert _tree(tmp_path / "r.holdout.zarr") == before and not (tmp_path / "r.zarr").exists()
    assert main([*args, "--overwrite", "--seed", "9"]) == 0


@pytest.mark.parametrize("value", ["1", "1.5", "-0.1", "nan", "x"])
def test_ingest_holdout_must_be_a_fraction(capsys, value):
    with pytest.raises(SystemExit) as exc:
        main(["ingest", "r.csv", "r.zarr", "--holdout", value])
    assert exc.value.code == 2
    assert "--holdout" in capsys.readouterr().err


# -- ingest: AnnData files and text corpora --------------------------------------------

DOCS = [
    "The quick brown fox jumps over the lazy dog",
    "the lazy dog sleeps; The Dog dreams",
    "",
    "Quick brown foxes and quick brown dogs",
    "a fox, a dog and the quick brown fox",
]


def test_ingest_anndata_layer(capsys, sparse_matrix, tmp_path):
    ad = pytest.importorskip("anndata")
    pd = pytest.importorskip("pandas")
    m, n = sparse_matrix.shape
    adata = ad.AnnData(
        X=sparse_matrix.toarray(),
        obs=pd.DataFrame(index=[f"cell{i}" for i in range(m)]),
        var=pd.DataFrame(index=[f"gene{j}" for j in range(n)]),
        layers={"counts": (2 * sparse_matrix).tocsc()},
    )
    adata.write_h5ad(tmp_path / "cells.h5ad")
    dst = tmp_path / "cells.zarr"
    args = ["ingest", str(tmp_path / "cells.h5ad"), str(dst), "--layer", "counts"]
    assert main([*args, "--chunks", "10", "7"]) == 0
    out = capsys.readouterr().out
    assert "57 x 23" in out and "layers/counts" in out and "csc" in out
    assert f"{dst}/row_ids" in out and "var_names" in out
    np.testing.assert_array_equal(_dense(dst), 2 * sparse_matrix.toarray())
    assert read_ids(dst, "rows").tolist() == list(adata.obs_names)
    assert read_ids(dst, "columns").tolist() == list(adata.var_names)

    # A missing layer: one line naming the file and the layers there are.
    assert main([*args[:2], str(tmp_path / "other.zarr"), "--layer", "raw"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cells.h5ad" in err and "'raw'" in err and "counts" in err
    assert not (tmp_path / "other.zarr").exists()


def test_ingest_corpus_file_with_vectorizer_flags(capsys, tmp_path):
    from sklearn.feature_extraction.text import CountVectorizer

    src = tmp_path / "docs.txt"
    src.write_text("\n".join(DOCS) + "\n")
    dst = tmp_path / "docs.zarr"
    args = ["ingest", str(src), str(dst), "--corpus", "--no-lowercase", "--stop-words", "english"]
    assert main([*args, "--ngram-range", "1", "2", "--min-df", "2", "--max-df", "0.9"]) == 0
    out = capsys.readouterr().out

    reference = CountVectorizer(
        lowercase=False, stop_words="english", ngram_range=(1, 2), min_df=2, max_df=0.9
    )
    expected = reference.fit_transform(DOCS).toarray()
    np.testing.assert_array_equal(_dense(dst), expected)
    terms = reference.get_feature_names_out().tolist()
    assert read_ids(dst, "columns").tolist() == terms
    assert f"{len(DOCS)} documents x {len(terms)} terms" in out
    assert "vocabulary" in out and f"{dst}/col_ids" in out


def test_ingest_corpus_directory(capsys, tmp_path):
    from sklearn.feature_extraction.text import CountVectorizer

    (tmp_path / "docs").mkdir()
    names = [f"d{i}.txt" for i in range(len(DOCS))]
    for name, doc in zip(names, DOCS, strict=True):
        (tmp_path / "docs" / name).write_text(doc)
    dst = tmp_path / "docs.zarr"
    assert main(["ingest", str(tmp_path / "docs"), str(dst), "--max-features", "4"]) == 0
    assert "file names" in capsys.readouterr().out
    reference = CountVectorizer(max_features=4)
    np.testing.assert_array_equal(_dense(dst), reference.fit_transform(DOCS).toarray())
    assert read_ids(dst, "columns").tolist() == reference.get_feature_names_out().tolist()
    assert read_ids(dst, "rows").tolist() == names


@pytest.mark.parametrize(
    ("source", "flags", "message"),
    [
        ("m.mtx", ["--layer", "counts"], "--layer: only for AnnData"),
        ("r.csv", ["--min-df", "2"], "--min-df: only for text corpora"),
        ("r.txt", ["--no-lowercase"], "--lowercase/--no-lowercase: only for text corpora"),
        ("r.txt", ["--corpus", "--holdout", "0.1"], "--holdout: only for triplet files"),
        ("r.txt", ["--corpus", "--format", "dense"], "--format dense"),
        ("r.txt", ["--corpus", "--min-df", "5", "--max-df", "2"], "max_df=2"),
        ("empty.txt", ["--corpus"], "holds no documents"),
    ],
)
def test_ingest_flags_for_another_kind_are_errors(capsys, tmp_path, source, flags, message):
    scipy.io.mmwrite(tmp_path / "m.mtx", sp.eye(3, format="coo"))
    _write_ratings(tmp_path / "r.csv", _ratings(10))
    (tmp_path / "r.txt").write_text("u1 i1 4\nu2 i1 3\n")
    (tmp_path / "empty.txt").write_text("")
    dst = tmp_path / "out.zarr"
    assert main(["ingest", str(tmp_path / source), str(dst), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dasknmf: error: ") and err.count("\n") == 1
    assert message in err
    assert not dst.exists()


@pytest.mark.parametrize(
    ("flag", "value"), [("--min-df", "0"), ("--max-df", "1.5"), ("--min-df", "x")]
)
def test_ingest_document_frequencies_are_checked(capsys, flag, value):
    with pytest.raises(SystemExit) as exc:
        main(["ingest", "docs.txt", "d.zarr", "--corpus", flag, value])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err
