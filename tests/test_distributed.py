"""Fits on a real dask.distributed cluster: workers in other processes, V in zarr."""

from __future__ import annotations

import importlib.util

import dask
import numpy as np
import pytest
from distributed import Client, LocalCluster

import dasknmf
from dasknmf import resources
from dasknmf.errors import DeviceUnavailableError
from dasknmf.resources import reusing_worker_heap
from tests.helpers import make_factors, make_matrix
from tests.reference import masked_mu

# A nominal per-worker memory limit far below V's size. The workers' own memory
# manager is switched off so that the limit is only the figure the scheduler reports
# (a real process needs more than this just to start); the heavy test below keeps it on.
M, N = 1200, 800
SMALL_LIMIT = 250_000
UNMANAGED = {
    "distributed.worker.memory.target": False,
    "distributed.worker.memory.spill": False,
    "distributed.worker.memory.pause": False,
    "distributed.worker.memory.terminate": False,
}


def fit(X, **kwargs):
    # W stays in memory: these tests are about V; W in a store: test_factor_store.py.
    params = dict(n_components=5, init="custom", max_iter=25, tol=0, factors="memory")
    params.update(kwargs)
    W0, H0 = make_factors(M, N, 5, seed=2)
    model = dasknmf.NMF(**params)
    W = model.fit_transform(X, W=W0, H=H0)
    return model, np.asarray(W)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """V in a store, and reference fits made in this process before any cluster exists."""
    X = make_matrix(M, N, density=0.1, seed=11)  # ≈ 96,000 non-zeros: ≈ 1.2 MB in CSR
    path = str(tmp_path_factory.mktemp("dist") / "V.zarr")
    dasknmf.write_matrix(X, path, chunks=(256, 300))
    in_memory = fit(X.astype(np.float32), chunks=(256, 300))
    from_store = fit(path)
    return X, path, in_memory, from_store


@pytest.fixture(scope="module")
def client(case):
    with (
        dask.config.set(UNMANAGED),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit=SMALL_LIMIT,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def test_out_of_core_on_cluster_with_memory_below_v(case, client):
    _X, path, (reference, W_ref), _ = case
    info = dasknmf.matrix_info(path)
    v_bytes = info.nnz * (info.dtype.itemsize + 4)
    limits = [w["memory_limit"] for w in client.scheduler_info(n_workers=-1)["workers"].values()]
    assert len(limits) == 2 and sum(limits) < v_bytes
    model, W = fit(path)
    assert model.persisted_ is False  # chosen automatically: V does not fit
    assert reference.persisted_ is True
    np.testing.assert_allclose(W, W_ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.components_, reference.components_, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.reconstruction_err_, reference.reconstruction_err_, rtol=1e-6)


@pytest.mark.slow
def test_cluster_result_does_not_depend_on_workers(case, client):
    *_, (local, W_local) = case
    model, W = fit(case[1], persist=True)
    assert model.persisted_ is True
    np.testing.assert_allclose(W, W_local, rtol=1e-12)
    np.testing.assert_allclose(model.components_, local.components_, rtol=1e-12)


# Slow: masked updates on worker processes are in the default suite with ALS
# (tests/solvers/test_als.py), masked MU out of core in this process (tests/solvers).
@pytest.mark.slow
def test_missing_entry_fit_on_cluster(case, client):
    """The ratings path on workers, out of core, against the dense masked reference."""
    X, path, *_ = case
    model, W = fit(path, missing="ignore", solver="mu", persist=False)
    W0, H0 = make_factors(M, N, 5, seed=2)
    mask = X.toarray() != 0
    W_ref, H_ref, errors = masked_mu(X, mask, W0, H0, 25)
    np.testing.assert_allclose(W, W_ref, rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(model.components_, H_ref, rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(model.reconstruction_err_, errors[-1], rtol=1e-4)
    rows, cols = np.array([0, 5, M - 1]), np.array([1, N - 1, 7])
    np.testing.assert_allclose(model.predict(rows, cols), (W_ref @ H_ref)[rows, cols], rtol=2e-3)
    rmse = np.sqrt(np.mean(((W_ref @ H_ref)[mask] - X.toarray()[mask]) ** 2))
    np.testing.assert_allclose(model.rmse(path), rmse, rtol=1e-3)


def _heap_holders(dask_worker) -> int:
    return getattr(dask_worker, "_dasknmf_heap_holders", 0)


def _page_faults_per_block() -> float:
    """Minor page faults of allocating, filling and freeing a 4 MB float32 array,
    the size of a k × c partial: about 1,000 when every such block is a fresh mmap,
    none when the heap reuses it."""
    import resource

    def block() -> None:
        np.ones(1_000_000, dtype=np.float32).sum()

    block()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        block()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20


def test_workers_reuse_freed_blocks_during_a_fit(case, client):
    """distributed's MALLOC_TRIM_THRESHOLD_ makes each large block a fresh mmap; a
    fit lets the workers' heap reuse them, and gives the settings back afterwards."""
    during: list[dict] = []

    def count(_info) -> None:
        during.append(client.run(_heap_holders))

    fit(case[1], persist=True, max_iter=3, callbacks=[count])
    assert during and all(set(holders.values()) == {1} for holders in during)
    assert set(client.run(_heap_holders).values()) == {0}
    with reusing_worker_heap(client), reusing_worker_heap(client):  # two fits at once
        assert set(client.run(_heap_holders).values()) == {2}
        assert max(client.run(_page_faults_per_block).values()) < 50
    assert set(client.run(_heap_holders).values()) == {0}


def test_an_out_of_core_fit_leaves_the_workers_heap_alone(case, client):
    during: list[dict] = []
    fit(
        case[1],
        persist=False,
        max_iter=2,
        callbacks=[lambda _info: during.append(client.run(_heap_holders))],
    )
    assert during and all(set(holders.values()) == {0} for holders in during)


def _worker(limit, used, **fractions):
    from types import SimpleNamespace

    defaults = dict(target=0.6, spill=0.7, pause=0.8)
    defaults.update(fractions)
    manager = SimpleNamespace(
        memory_limit=limit, **{f"memory_{k}_fraction": v for k, v in defaults.items()}
    )
    return SimpleNamespace(
        memory_manager=manager, monitor=SimpleNamespace(get_process_memory=lambda: used)
    )


@pytest.mark.parametrize(
    ("worker", "expected"),
    [
        (_worker(None, 10 * 2**30), True),  # no limit
        (_worker(2**30, 2**29, target=False, spill=False, pause=False), True),  # unenforced
        (_worker(4 * 2**30, 2**30), True),  # 0.6 · 4 GiB − 1 GiB = 1.4 GiB left
        (_worker(450e6, 100e6), False),  # the slow test's worker: a paused worker stalls
        (_worker(2 * 2**30, 2**30), False),  # 0.6 · 2 GiB − 1 GiB = 0.2 GiB left
    ],
)
def test_a_worker_near_its_memory_threshold_keeps_its_heap_settings(worker, expected, monkeypatch):
    calls = []
    libc = type("Libc", (), {"mallopt": lambda self, *a: calls.append(a)})()
    monkeypatch.setattr(resources, "_glibc", lambda: libc)
    assert resources._has_headroom(worker) is expected
    assert resources._hold_heap(worker) == 1
    assert bool(calls) is expected


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_cuda_on_workers_without_a_gpu_names_each_worker_and_why(case, client):
    with pytest.raises(DeviceUnavailableError, match=r"2 of 2 workers cannot use a GPU") as err:
        dasknmf.NMF(3, device="cuda").fit(case[1])
    for worker in client.scheduler_info(n_workers=-1)["workers"]:
        assert f"{worker}: device='cuda' needs CuPy" in str(err.value)


def _random_csr_tile(density, block_info=None):
    import scipy.sparse as sp

    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    rng = np.random.default_rng([r0, c0])
    tile = sp.random(r1 - r0, c1 - c0, density=density, format="csr", random_state=rng)
    return tile.astype(np.float32)


@pytest.mark.slow
def test_out_of_core_with_enforced_worker_memory_limit(tmp_path):
    """V takes ≈ 580 MB in memory; one worker may use 450 MB, managed as usual
    (spilling, pausing, terminating): the fit re-reads tiles and completes."""
    import dask.array as da
    import scipy.sparse as sp

    m, n, density = 600_000, 20_000, 0.006
    lazy = da.map_blocks(
        _random_csr_tile,
        density,
        chunks=((25_000,) * 24, (n,)),
        dtype=np.float32,
        meta=sp.csr_matrix((0, 0), dtype=np.float32),
    )
    path = str(tmp_path / "V.zarr")
    dasknmf.write_matrix(lazy, path, chunks=(25_000, n))
    info = dasknmf.matrix_info(path)
    v_bytes = info.nnz * (info.dtype.itemsize + 4)
    assert v_bytes > 500e6
    rng = np.random.default_rng(0)
    W0, H0 = rng.random((m, 4)) + 0.1, rng.random((4, n)) + 0.1
    params = dict(n_components=4, init="custom", max_iter=3, tol=0)

    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            memory_limit=450e6,
            dashboard_address=None,
        ) as cluster,
        Client(cluster),
    ):
        model = dasknmf.NMF(**params)
        W = np.asarray(model.fit_transform(path, W=W0, H=H0))
    assert model.persisted_ is False

    reference = dasknmf.NMF(persist=True, **params)
    W_ref = np.asarray(reference.fit_transform(path, W=W0, H=H0))
    np.testing.assert_allclose(W, W_ref, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(model.components_, reference.components_, rtol=1e-5, atol=1e-8)


# Slow: the stacked solvers run in worker processes in tests/sweep (stored, out of core);
# this adds the cluster's scheduling only (docs/testing.md).
@pytest.mark.slow
def test_a_rank_sweep_on_the_cluster_is_the_sweep_run_locally(case, client):
    """Stacked replicates out of core on two worker processes, with a holdout: the
    same replicates, errors and held-out errors as the sweep run without the cluster
    (made in this process with the workers' scheduler out of the way)."""
    _X, path, *_ = case
    params = dict(n_replicates=2, holdout=0.1, random_state=3, max_iter=20, tol=1e-3)
    on_cluster = dasknmf.RankSweep([2, 3], persist=False, **params).fit(path)
    with dask.config.set(scheduler="threads"):
        local = dasknmf.RankSweep([2, 3], persist=False, **params).fit(path)
    cols = ["k", "replicate", "seed", "n_iter", "converged"]
    assert on_cluster.results_[cols].equals(local.results_[cols])
    for column in ("train_error", "test_error"):
        np.testing.assert_allclose(on_cluster.results_[column], local.results_[column], rtol=1e-5)
    for k in (2, 3):
        np.testing.assert_allclose(
            on_cluster.components_[k], local.components_[k], rtol=1e-4, atol=1e-6
        )
