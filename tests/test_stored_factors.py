"""W and H kept in stores between iterations (``NMF(factors='store')``): the same fit
as with the factors in memory, for every solver and path; where they are chosen; what
is refused."""

from __future__ import annotations

import gc
import os

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster

import dasknmf
from dasknmf import products
from dasknmf.errors import InvalidParameterError
from dasknmf.estimator import placement
from dasknmf.storage.factors import stored_source
from tests.helpers import make_matrix, run_readme_block

M, N, K = 240, 180, 4
ROWS = 60

#: Every solver family: the Frobenius rules (one pass and two), the divergences, and
#: the two solvers of observed entries.
SOLVERS = {
    "mu": dict(solver="mu"),
    "hals": dict(solver="hals"),
    "kl": dict(solver="mu", beta_loss="kullback-leibler"),
    "beta-0.5": dict(solver="mu", beta_loss=0.5),
    "als-masked": dict(missing="ignore", solver="als", alpha_weighted=0.03),
    "mu-masked": dict(missing="ignore", solver="mu"),
}

#: One column tile (one pass out of core), a few (one pass per row of tiles), and more
#: than products.SPLIT_EVERY (the W update as a graph of its own: FactorStore.hold).
COLUMNS = {"1": N, "3": N // 3, "many": N // (products.SPLIT_EVERY + 2)}


@pytest.fixture(scope="module")
def X():
    return make_matrix(M, N, density=0.2, seed=3)


def fit_pair(X, dtype=np.float64, cols=N, **params):
    """``W`` and ``H`` fitted with W in memory and with W in a store."""
    params = dict(n_components=K, init="random", random_state=0, max_iter=8, tol=0) | params
    Xd = da.from_array(X.astype(dtype), chunks=(ROWS, cols))
    memory = dasknmf.NMF(**params, factors="memory")
    stored = dasknmf.NMF(**params, factors="store")
    W_memory, W_stored = memory.fit_transform(Xd), stored.fit_transform(Xd)
    assert memory.factors_stored_ == () and stored.factors_stored_ == ("W", "H")
    assert isinstance(stored.components_, da.Array)
    H_stored = stored.components_.compute()
    return (W_memory.compute(), memory.components_), (W_stored.compute(), H_stored)


def assert_same(a, b, rtol):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(y, x, rtol=rtol, atol=rtol * np.abs(x).max())


# Slow: V in memory and three column tiles (out of core, one and many stay).
@pytest.mark.parametrize(
    "persist",
    [pytest.param(True, marks=pytest.mark.slow), False],
    ids=["in-memory-V", "out-of-core"],
)
@pytest.mark.parametrize(
    "cols",
    [pytest.param(c, marks=pytest.mark.slow) if key == "3" else c for key, c in COLUMNS.items()],
    ids=list(COLUMNS),
)
@pytest.mark.parametrize("name", list(SOLVERS))
def test_every_solver_fits_the_same_with_w_stored(X, name, cols, persist):
    memory, stored = fit_pair(X, cols=cols, persist=persist, **SOLVERS[name])
    assert_same(memory, stored, 1e-9)


@pytest.mark.parametrize("name", ["mu", "als-masked"])
def test_float32_fits_the_same_with_w_stored(X, name):
    memory, stored = fit_pair(X, dtype=np.float32, persist=False, **SOLVERS[name])
    assert stored[0].dtype == np.float32
    assert_same(memory, stored, 1e-5)


def test_the_fit_returns_a_dask_array_reading_the_store(X, tmp_path):
    model = dasknmf.NMF(K, random_state=0, max_iter=5, factors="store", factor_store=tmp_path)
    W = model.fit_transform(X)  # an in-memory X too: W is where it was kept
    assert isinstance(W, da.Array) and model.W_ is W
    assert sorted(os.listdir(tmp_path)) == ["H", "W"]
    files = sorted(os.listdir(tmp_path / "W"))
    assert files[0] == "current.json" and files[1:] == [f for f in files[1:] if "zarr" in f]
    stored = dasknmf.NMF(K, random_state=0, max_iter=5, factors="memory").fit_transform(X)
    np.testing.assert_allclose(W.compute(), stored, rtol=1e-9)
    # A W the user still holds survives the next fit into the same directory.
    before = W.compute()
    model.set_params(max_iter=7).fit(X)
    np.testing.assert_array_equal(W.compute(), before)


def test_a_temporary_store_goes_with_the_last_array_reading_it(X):
    W = dasknmf.NMF(K, random_state=0, max_iter=3, factors="store").fit_transform(X)
    directory = stored_source(W)
    assert directory is not None and os.path.isdir(directory)
    del W
    gc.collect()
    assert not os.path.exists(directory)
    assert not os.path.exists(directory.parent.parent)  # the temporary directory too


def test_resume_with_w_stored_ends_where_the_uninterrupted_fit_does(X):
    states = []
    params = dict(n_components=K, init="random", random_state=0, max_iter=12, tol=0)
    keep = [lambda info: states.append(info.state())]
    W = dasknmf.NMF(**params, factors="memory", callbacks=keep).fit_transform(X)
    resumed = dasknmf.NMF(**params, factors="store").fit_transform(X, resume=states[4])
    np.testing.assert_allclose(resumed.compute(), W, rtol=1e-9)


def test_early_stopping_keeps_the_best_stored_factors(X):
    ratings = X.copy()
    ratings.data = np.ceil(ratings.data)
    params = dict(
        n_components=K, random_state=0, max_iter=25, tol=1e-2, missing="ignore", validation=0.2
    )
    memory = dasknmf.NMF(**params, factors="memory")
    stored = dasknmf.NMF(**params, factors="store")
    W_memory, W_stored = memory.fit_transform(ratings), stored.fit_transform(ratings)
    gc.collect()  # the generations of later iterations go; the best one must not
    assert stored.best_iteration_ == memory.best_iteration_ < stored.n_iter_
    np.testing.assert_allclose(W_stored.compute(), W_memory, rtol=1e-9)
    assert stored.validation_rmse_ == pytest.approx(memory.validation_rmse_, rel=1e-9)


def test_transform_writes_w_to_the_store(X, tmp_path):
    params = dict(n_components=K, random_state=0, max_iter=10)
    model = dasknmf.NMF(**params, factors="store", factor_store=tmp_path).fit(X)
    W = model.transform(X)
    assert isinstance(W, da.Array) and (tmp_path / "transform" / "current.json").is_file()
    expected = dasknmf.NMF(**params, factors="memory").fit(X).transform(X)
    np.testing.assert_allclose(W.compute(), expected, rtol=1e-9)


@pytest.mark.parametrize(
    ("memory", "stored"),
    [
        # Three copies of W (M · K · 8 bytes) and of H (K · N · 8) against 3/4 of it.
        (100 * M * K * 8, ()),
        (4 * (M + N) * K * 8, ()),
        (3.8 * (M + N) * K * 8, ("W",)),  # the larger goes first
        (4 * N * K * 8, ("W",)),
        (3.9 * N * K * 8, ("W", "H")),
    ],
)
def test_auto_stores_the_largest_factor_first_until_the_rest_fit(X, monkeypatch, memory, stored):
    monkeypatch.setattr(placement, "available_memory", lambda: memory)
    model = dasknmf.NMF(K, max_iter=2, persist=False, random_state=0).fit(X)
    assert model.factors_stored_ == stored
    assert isinstance(model.components_, da.Array) == ("H" in stored)


def test_a_store_the_workers_cannot_see_is_refused(tmp_path, monkeypatch):
    class Client:
        def run(self, fn, path):
            return {"tcp://10.0.0.1:1": True, "tcp://10.0.0.2:1": False}

    monkeypatch.setattr(placement, "active_client", lambda: Client())
    with pytest.raises(InvalidParameterError, match=r"1 of 2 workers cannot see.*10\.0\.0\.2"):
        placement.factor_stores(
            "store", tmp_path, {"W": (10, 2)}, dtype=np.float64, v_bytes=0, device="cpu"
        )


def test_stored_factors_with_a_gpu_are_refused(tmp_path):
    with pytest.raises(InvalidParameterError, match="factors='memory'"):
        placement.factor_stores(
            "store", tmp_path, {"W": (10, 2)}, dtype=np.float64, v_bytes=0, device="cuda"
        )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (dict(factors="disk"), "'factors' parameter must be one of"),
        (dict(factor_store=3), "'factor_store' parameter must be None or the path"),
    ],
)
def test_bad_factor_parameters_are_named(X, params, message):
    with pytest.raises(InvalidParameterError, match=message):
        dasknmf.NMF(K, **params).fit(X)


@pytest.mark.slow
def test_w_stored_on_a_local_cluster_fits_the_same(X, tmp_path):
    Xd = da.from_array(X, chunks=(ROWS, N))
    params = dict(n_components=K, init="random", random_state=0, max_iter=6, tol=0)
    expected = dasknmf.NMF(**params, factors="memory").fit_transform(Xd).compute()
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        Client(cluster),
    ):
        for persist in (True, False):
            model = dasknmf.NMF(**params, persist=persist, factors="store", factor_store=tmp_path)
            W = model.fit_transform(Xd)
            np.testing.assert_allclose(dask.compute(W)[0], expected, rtol=1e-9)


def test_the_readme_example_keeps_w_in_the_named_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dasknmf.write_matrix(make_matrix(2_000, 300, density=0.05), "big.zarr", chunks=(500, 300))
    namespace = run_readme_block("### Factors larger than memory", tmp_path)
    model, W = namespace["model"], namespace["W"]
    assert model.factors_stored_ and not model.persisted_
    assert isinstance(W, da.Array) and W.shape == (2_000, 10)
    assert (tmp_path / "factors" / "W" / "current.json").is_file()
    expected = dasknmf.NMF(**(model.get_params() | {"factors": "memory"})).fit_transform(
        "big.zarr"
    )
    np.testing.assert_allclose(W.compute(), expected.compute(), rtol=1e-6)


def test_only_h_stored_for_a_wide_matrix(monkeypatch):
    """A wide V (n ≫ m): auto stores H alone, W comes back to this process after every
    iteration, and the fit is the in-memory one."""
    X = make_matrix(60, 3_000, density=0.05, seed=4)
    Xd = da.from_array(X, chunks=(30, 300))
    params = dict(n_components=K, init="random", random_state=0, max_iter=6, tol=0)
    expected = dasknmf.NMF(**params, factors="memory").fit(Xd)
    monkeypatch.setattr(placement, "available_memory", lambda: 3.5 * 3_000 * K * 8)
    model = dasknmf.NMF(**params).fit(Xd)
    assert model.factors_stored_ == ("H",)
    np.testing.assert_allclose(model.components_.compute(), expected.components_, rtol=1e-9)
    np.testing.assert_allclose(model.W_.compute(), expected.W_.compute(), rtol=1e-9)


def test_the_ratings_methods_read_a_stored_h():
    X = make_matrix(200, 300, density=0.1, seed=5)
    X.data = np.ceil(X.data)
    params = dict(n_components=K, random_state=0, max_iter=6, missing="ignore")
    memory = dasknmf.NMF(**params, factors="memory").fit(X)
    stored = dasknmf.NMF(**params, factors="store").fit(X)
    rows, cols = [0, 1, 2], [3, 4, 5]
    np.testing.assert_allclose(stored.predict(rows, cols), memory.predict(rows, cols), rtol=1e-9)
    assert stored.rmse(X) == pytest.approx(memory.rmse(X), rel=1e-9)
    np.testing.assert_array_equal(stored.recommend(3, n=5)[0], memory.recommend(3, n=5)[0])
    np.testing.assert_array_equal(stored.recommend_all(n=3)[0], memory.recommend_all(n=3)[0])
    np.testing.assert_allclose(
        np.asarray(stored.transform(X)), memory.transform(X), rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize("persist", [True, False], ids=["in-memory-V", "out-of-core"])
@pytest.mark.parametrize("cols", [N, N // (products.SPLIT_EVERY + 2)], ids=["1", "many"])
@pytest.mark.parametrize("init", ["nndsvd", "nndsvda", "nndsvdar"])
@pytest.mark.filterwarnings("ignore")  # nndsvd's zeros with MU; max_iter=0
def test_an_nndsvd_start_written_to_the_store_is_the_one_in_memory(X, init, cols, persist):
    """With W stored, the SVD's sketch goes to a scratch store inside W's and W₀ is
    written block by block: the same start, and the scratch is gone afterwards."""
    memory, stored = fit_pair(X, cols=cols, persist=persist, init=init, max_iter=0)
    assert_same(memory, stored, 1e-9)


def test_the_sketch_is_kept_in_a_scratch_store_and_never_in_memory(tmp_path, monkeypatch):
    """A tall, narrow V whose sketch (m × 16) is 4 W's. Out of core, the sketch goes to
    a scratch store (inside W's when W is stored, else a temporary one) and the
    fit's traced peak stays below one sketch; with V in memory it is held there."""
    import tracemalloc

    from dasknmf.storage import FactorStore

    X = make_matrix(80_000, 40, density=0.1, seed=1)
    made = []
    scratch, temporary = FactorStore.scratch, FactorStore.temporary.__func__
    monkeypatch.setattr(
        FactorStore, "scratch", lambda self, name: made.append(scratch(self, name)) or made[-1]
    )
    monkeypatch.setattr(
        FactorStore,
        "temporary",
        classmethod(lambda cls, name: made.append(temporary(cls, name)) or made[-1]),
    )
    sketch_bytes = X.shape[0] * 16 * 8
    peaks, used = {}, {}
    for factors, persist in (("store", False), ("memory", False), ("memory", True)):
        model = dasknmf.NMF(
            K, init="nndsvda", max_iter=0, chunks=(5_000, 40), persist=persist,
            factors=factors, factor_store=tmp_path / factors if factors == "store" else None,
        )  # fmt: skip
        model.fit(X)  # imports (zarr's codecs) and caches outside the trace
        made.clear()
        tracemalloc.start()
        try:
            model.fit(X)
            peaks[factors, persist] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        used[factors, persist] = list(made)
    assert peaks["store", False] < sketch_bytes and peaks["memory", False] < sketch_bytes
    assert peaks["memory", True] > sketch_bytes and used["memory", True] == []
    (inside,) = used["store", False]
    assert inside.path.parent == tmp_path / "store" / "W" and not inside.path.exists()
    (temporary_store,) = used["memory", False]
    assert not temporary_store.path.exists()


def test_a_scratch_left_by_a_crash_is_removed_when_the_store_is_next_opened(tmp_path):
    from dasknmf.storage import FactorStore

    store = FactorStore(tmp_path / "W")
    store.put(np.ones((4, 2)), chunks=(2, 2))
    left = store.scratch("nndsvd-sketch")
    left.put(np.ones((4, 3)), chunks=(2, 3))
    left._closer.detach()  # as if the process had died before closing it
    path = left.path
    del store, left
    gc.collect()
    assert path.exists()
    FactorStore(tmp_path / "W")
    assert not path.exists() and (tmp_path / "W" / "current.json").exists()
