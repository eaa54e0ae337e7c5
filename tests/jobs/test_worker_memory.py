"""Workers too small for a job: refused before the fit with the figures and what to
change, and a worker lost to memory during the fit reported in one message.

Real worker processes with real memory limits (``LocalCluster(processes=True)``):
the check reads the limits and the workers' memory from the scheduler, and a worker
that outgrows its limit is restarted by its nanny as on a cluster.
"""

from __future__ import annotations

import json
import re
import tracemalloc
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dask
import numpy as np
import pytest
import scipy.sparse as sp
from dask.utils import format_bytes, parse_bytes
from distributed import LocalCluster

import dasknmf
from dasknmf.cli import EXIT_OK, EXIT_USAGE, main
from dasknmf.jobs.worker_memory import task_need
from tests.jobs.jobs_testing import hidden


@contextmanager
def workers(limit: str, n: int = 1, threads: int = 1, **config) -> Iterator[Path]:
    """Worker processes with ``limit`` each; their scheduler file."""
    with (
        dask.config.set(config),
        LocalCluster(
            n_workers=n,
            threads_per_worker=threads,
            memory_limit=limit,
            processes=True,
            dashboard_address=":0",
        ) as cluster,
    ):
        folder = Path(cluster.scheduler.local_directory)
        path = folder / "scheduler-test.json"
        path.write_text(json.dumps({"address": cluster.scheduler_address}))
        yield path


def job_file(tmp_path: Path, store: Path, **model) -> Path:
    job = {
        "input": {"path": str(store)},
        "model": {"n_components": 4, "max_iter": 3, "tol": 0, "random_state": 0, **model},
        "output": {"directory": str(tmp_path / "out")},
        "report": {"plot": False},
    }
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(job))
    return path


@pytest.fixture(scope="module")
def dense_store(tmp_path_factory) -> Path:
    """A 3,000 x 3,000 dense float32 store in one tile: 34 MiB a tile."""
    path = tmp_path_factory.mktemp("mem") / "V.zarr"
    X = np.random.default_rng(0).random((3000, 3000), dtype=np.float32)
    dasknmf.write_matrix(X, path, chunks=(3000, 3000))
    return path


def peak_of_a_fit(store: Path) -> int:
    """Bytes allocated at the peak of the statistics pass and two iterations on
    ``store`` (one tile, dask's synchronous scheduler, V read from the store).

    A first fit, not traced, imports what the fit imports: a worker has imported it
    before it runs a task (what ``check_worker_memory`` counts as its baseline), and
    the modules' own memory is no part of a task's."""
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = dasknmf.NMF(4, max_iter=2, init="random", random_state=0, persist=False)
        model.fit(str(store))
        tracemalloc.start()
        try:
            model.fit(str(store))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


@pytest.mark.parametrize(
    ("kind", "dtype"),
    [("dense", np.float32), ("sparse", np.float32), ("sparse", np.float64), ("sparse", np.int64)],
)
def test_the_estimate_bounds_a_tasks_measured_peak(kind, dtype, tmp_path):
    rng = np.random.default_rng(0)
    if kind == "dense":
        X = rng.random((1500, 1500)).astype(dtype)
    else:
        X = sp.random(3000, 2000, density=0.2, format="csr", random_state=0, dtype=np.float64)
        X.data = (X.data * 10 + 1).astype(dtype)
        X = X.astype(dtype)
    dasknmf.write_matrix(X, tmp_path / "V.zarr", chunks=X.shape)
    info = dasknmf.matrix_info(tmp_path / "V.zarr")
    need = task_need(
        info.shape,
        info.tile_shape,
        nnz=None if kind == "dense" else info.nnz,
        dtype=info.dtype,
        n_components=4,
    )
    peak = peak_of_a_fit(tmp_path / "V.zarr")
    print(
        f"{kind} {info.dtype}: tile {need.tile / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB, "
        f"{peak / need.tile:.2f} tiles; estimate {need.task / 2**20:.1f} MiB"
    )
    assert peak <= need.task
    assert need.task < 1.6 * peak  # not so far above that it refuses workers that suffice


def test_workers_too_small_are_refused_before_the_fit(dense_store, tmp_path, capsys):
    path = job_file(tmp_path, dense_store)
    with workers("160MiB", n=2, threads=2) as scheduler_file:
        code = main(["submit", str(path), "--scheduler-file", str(scheduler_file)])
    captured = capsys.readouterr()
    assert code == EXIT_USAGE, captured.out + captured.err
    err = captured.err
    assert err.startswith("dasknmf: error: the workers are too small for this job: ")
    assert "2 of the 2 workers" in err and "have a memory limit of 160.00 MiB" in err
    assert "(80%, distributed.worker.memory.pause)" in err
    need = task_need((3000, 3000), (3000, 3000), nnz=None, dtype="float32", n_components=4)
    assert f"would run 2 task(s) at once of about {format_bytes(need.task)} each" in err
    assert "a tile of 3,000 x 3,000: 34.33 MiB decoded, held up to 4 times over" in err
    for change in ("cluster.memory_limit", "fewer threads per worker", "ingest it again"):
        assert change in err
    assert "Traceback" not in err and "fit:" not in captured.out
    assert "iter " not in captured.out  # nothing was computed
    assert not (tmp_path / "out").exists() and hidden(tmp_path) == []


# Slow: every job submitted to a cluster in the default suite passes the same check
# (tests/jobs/test_submit.py); the refusal above is the branch of its own.
@pytest.mark.slow
def test_workers_large_enough_run_the_job(dense_store, tmp_path, capsys):
    path = job_file(tmp_path, dense_store)
    with workers("1GiB", n=1, threads=1) as scheduler_file:
        args = ["submit", str(path), "--scheduler-file", str(scheduler_file), "--quiet"]
        assert main(args) == EXIT_OK
    assert (tmp_path / "out" / "summary.json").exists()


@pytest.fixture(scope="module")
def many_tiles(tmp_path_factory) -> Path:
    """8,000 x 4,000 at density 0.5 in tiles of 500 rows: 122 MiB in memory, a tile
    a sixteenth of that."""
    path = tmp_path_factory.mktemp("tiles") / "V.zarr"
    m, n = 8000, 4000
    indices = np.tile(np.arange(0, n, 2, dtype=np.int32), m)  # every other column
    data = np.random.default_rng(1).random(indices.size, dtype=np.float32) + 0.5
    X = sp.csr_matrix((data, indices, np.arange(0, indices.size + 1, n // 2)), shape=(m, n))
    dasknmf.write_matrix(X, path, chunks=(500, 4000))
    return path


# Slow: the refusal branch is tested above with its figures; this adds V's share.
@pytest.mark.slow
def test_a_persisted_v_counts_its_share(many_tiles, tmp_path, capsys):
    """One task fits; V kept in memory beside it does not: persist: false is named,
    and runs."""
    path = job_file(tmp_path, many_tiles, persist=True)
    # A worker uses ≈ 125 MiB once it has imported what the tasks import; the task
    # needs ≈ 30 MiB and V's share 122 MiB: 300 MiB (240 usable) fits the task alone.
    with workers("300MiB", n=1, threads=1) as scheduler_file:
        assert main(["submit", str(path), "--scheduler-file", str(scheduler_file)]) == 2
        err = capsys.readouterr().err
        assert "its share of V kept in memory (122.1" in err and "model.persist: false" in err
        path = job_file(tmp_path, many_tiles, persist=False)
        args = ["submit", str(path), "--scheduler-file", str(scheduler_file), "--quiet"]
        assert main(args) == EXIT_OK


@pytest.fixture(scope="module")
def skewed_store(tmp_path_factory) -> Path:
    """16 tiles, one of them full (6,000 x 6,000: 288 MiB as CSR), the others empty:
    the average tile (the store's metadata) is a sixteenth of the one that is read, and
    that one alone is more than half the worker's limit, so reading it kills the worker
    whenever the nanny looks (a tile at a quarter of the limit sometimes slipped
    between two of its looks)."""
    path = tmp_path_factory.mktemp("skew") / "V.zarr"
    side, m = 6000, 24000
    indices = np.tile(np.arange(side, dtype=np.int32), side)
    indptr = np.concatenate(
        [np.arange(0, indices.size + 1, side), np.full(m - side, indices.size)]
    ).astype(np.int64)
    data = np.ones(indices.size, dtype=np.float32)
    X = sp.csr_matrix((data, indices, indptr), shape=(m, m))
    dasknmf.write_matrix(X, path, chunks=(side, side))
    return path


# Slow, as the other tests of worker processes that die (docs/testing.md).
@pytest.mark.slow
def test_a_worker_lost_to_memory_during_the_fit_is_one_message(skewed_store, tmp_path, capsys):
    path = job_file(tmp_path, skewed_store, persist=False)
    config = {"distributed.scheduler.allowed-failures": 1}
    with workers("400MiB", n=1, threads=1, **config) as scheduler_file:
        code = main(["submit", str(path), "--scheduler-file", str(scheduler_file)])
    captured = capsys.readouterr()
    assert code == EXIT_USAGE, captured.out + captured.err
    err = captured.err
    assert err.startswith("dasknmf: error: the fit lost 2 workers: each died while running a ")
    # The task's kind (which task dies first varies: reading a tile, its statistics),
    # then its key; the kind without dask's token.
    kind = re.search(r"running a '([\w-]+)' task \(\('\1-[0-9a-f]{32}'", err)
    assert kind is not None, err
    assert f"with a memory limit of {dasknmf_limit('400MiB')}" in err
    assert "one task of this fit was estimated at" in err
    assert "give each worker more memory" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def dasknmf_limit(text: str) -> str:
    return format_bytes(parse_bytes(text))
