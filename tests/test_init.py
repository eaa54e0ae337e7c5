from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pytest
from sklearn.decomposition._nmf import _initialize_nmf

from dasknmf import NMF
from dasknmf.datasets import term_document
from dasknmf.errors import InvalidParameterError
from dasknmf.init import OUT_OF_CORE_POWER_ITERATIONS, custom_init, initialize, random_init
from dasknmf.random import standard_normal
from tests.helpers import make_matrix


def low_rank(m, n, r, seed=0):
    """A non-negative matrix of rank exactly r with well separated singular values."""
    rng = np.random.default_rng(seed)
    return rng.random((m, r)) @ np.diag(np.linspace(3, 1, r)) @ rng.random((r, n))


@pytest.mark.parametrize("chunks", [(40, 30), (9, 30), (11, 7)])
def test_random_init_is_independent_of_tiling_and_scaled_like_sklearn(chunks):
    X = make_matrix(40, 30, density=0.5)
    V = da.from_array(X, chunks=chunks, asarray=False)
    mean = X.sum() / X.size
    W, H = random_init(V, 4, mean=mean, seed=5, dtype=np.float64)
    W_ref, H_ref = random_init(
        da.from_array(X, chunks=(40, 30), asarray=False), 4, mean=mean, seed=5, dtype=np.float64
    )
    np.testing.assert_array_equal(W.compute(), W_ref.compute())
    np.testing.assert_array_equal(H.compute(), H_ref.compute())
    assert W.chunks == (V.chunks[0], (4,)) and H.chunks == ((4,), V.chunks[1])
    assert (W.compute() >= 0).all()


def test_random_init_distribution():
    V = da.zeros((20_000, 50), chunks=(5_000, 50))
    W, _H = random_init(V, 10, mean=0.4, seed=0, dtype=np.float32)
    W = W.compute()
    # |N(0, 1)| · sqrt(mean / k) has mean sqrt(2/π) · sqrt(mean / k)
    np.testing.assert_allclose(W.mean(), np.sqrt(2 / np.pi) * np.sqrt(0.4 / 10), rtol=0.01)
    assert W.dtype == np.float32


def test_seeds_and_streams_differ():
    a = standard_normal((100, 3), (50, 3), seed=1, stream=0).compute()
    b = standard_normal((100, 3), (50, 3), seed=2, stream=0).compute()
    c = standard_normal((100, 3), (50, 3), seed=1, stream=1).compute()
    assert not np.allclose(a, b) and not np.allclose(a, c)


@pytest.mark.parametrize("variant", ["nndsvd", "nndsvda", "nndsvdar"])
@pytest.mark.parametrize("chunks", [(60, 45), (13, 10)])
def test_nndsvd_matches_sklearn_on_exactly_low_rank_data(variant, chunks):
    X = low_rank(60, 45, 6)
    k = 4
    V = da.from_array(X, chunks=chunks)
    W, H = initialize(V, k, variant, mean=X.mean(), seed=0, dtype=np.float64)
    W, H = W.compute(), H.compute()
    W_sk, H_sk = _initialize_nmf(X, k, init=variant, random_state=0)
    if variant == "nndsvdar":
        # The zero-filling values are random; compare where scikit-learn's are not filled.
        W_base, H_base = _initialize_nmf(X, k, init="nndsvd", random_state=0)
        mask_w, mask_h = W_base > 0, H_base > 0
        np.testing.assert_allclose(W[mask_w], W_sk[mask_w], rtol=1e-6)
        np.testing.assert_allclose(H[mask_h], H_sk[mask_h], rtol=1e-6)
        assert (W[~mask_w] > 0).all() and (W[~mask_w] < X.mean()).all()
    else:
        np.testing.assert_allclose(W, W_sk, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(H, H_sk, rtol=1e-6, atol=1e-9)


def test_custom_init_checks_shapes_and_values():
    V = da.from_array(make_matrix(10, 8), chunks=(5, 4), asarray=False)
    W, H = np.ones((10, 3)), np.ones((3, 8))
    Wd, Hd = custom_init(V, 3, W, H, dtype=np.float32)
    assert Wd.chunks == ((5, 5), (3,)) and Hd.chunks == ((3,), (4, 4))
    assert Wd.dtype == np.float32
    with pytest.raises(
        InvalidParameterError, match=r"input W\): expected \(10, 3\), got \(10, 2\)"
    ):
        custom_init(V, 3, np.ones((10, 2)), H, dtype=np.float64)
    with pytest.raises(InvalidParameterError, match=r"Negative values .*input H"):
        custom_init(V, 3, W, -H, dtype=np.float64)
    with pytest.raises(InvalidParameterError, match=r"input H.* full of zeros"):
        custom_init(V, 3, W, 0 * H, dtype=np.float64)
    with pytest.raises(InvalidParameterError, match=r"input W.*NaN"):
        custom_init(V, 3, np.full((10, 3), np.nan), H, dtype=np.float64)
    with pytest.raises(InvalidParameterError, match="needs both W and H"):
        custom_init(V, 3, W, None, dtype=np.float64)


def test_unknown_init_is_rejected():
    V = da.ones((4, 4), chunks=2)
    with pytest.raises(InvalidParameterError, match="init must be one of"):
        initialize(V, 2, "svd", mean=1.0, seed=0, dtype=np.float64)


def _error(X, W, H) -> float:
    W, H = W.astype(np.float64), H.astype(np.float64)
    norm2 = float((X.data.astype(np.float64) ** 2).sum())
    cross = float(((X.T @ W).T * H).sum())
    return math.sqrt(max(norm2 - 2 * cross + float(((W.T @ W) * (H @ H.T)).sum()), 0.0))


@pytest.mark.parametrize("in_memory", [True, False])
def test_nndsvda_on_a_corpus_is_as_good_as_sklearns(in_memory):
    # In memory: scikit-learn's subspace (its power iterations); out of core: fewer
    # reads of V, within a few per cent after one MU iteration, as docs/benchmarks.md
    # measured on the full-size matrix.
    X = term_document(6_000, 1_500, seed=1)
    k = 10
    V = da.from_array(X, chunks=(1_500, 1_500), asarray=False)
    passes = []
    W, H = initialize(
        V, k, "nndsvda", mean=X.sum() / (X.shape[0] * X.shape[1]), seed=0,
        dtype=np.float32, in_memory=in_memory, on_pass=lambda *p: passes.append(p),
    )  # fmt: skip
    W, H = W.compute(), H.compute()
    assert W.dtype == H.dtype == np.float32
    assert len(passes) == (8 if in_memory else OUT_OF_CORE_POWER_ITERATIONS + 1)
    W_sk, H_sk = _initialize_nmf(X, k, init="nndsvda", random_state=0)
    np.testing.assert_allclose(_error(X, W, H), _error(X, W_sk, H_sk), rtol=1e-3)
    ours = NMF(k, init="custom", max_iter=1, tol=0).fit(X, W=W, H=H).reconstruction_err_
    theirs = NMF(k, init="custom", max_iter=1, tol=0).fit(X, W=W_sk, H=H_sk).reconstruction_err_
    assert ours <= theirs * (1.001 if in_memory else 1.03)


@pytest.mark.parametrize("persist", [False, True])
def test_a_fit_reads_v_once_more_for_nndsvda_than_for_random(persist):
    # Out of core: the statistics pass also makes the SVD's first read, and the SVD
    # reads V once per power iteration (OUT_OF_CORE_POWER_ITERATIONS), so nndsvda
    # costs that many reads of V more than init='random' (docs/benchmarks.md). In
    # memory, V is read twice whatever the init (statistics, then persisted).
    X = make_matrix(400, 120, density=0.3)
    reads = {}
    for init in ("random", "nndsvda"):
        calls = []

        def read(tile, calls=calls):
            if tile.size:  # not dask's call on an empty tile for the meta
                calls.append(1)
            return tile

        V = da.from_array(X, chunks=(100, 60), asarray=False).map_blocks(read, dtype=X.dtype)
        NMF(5, init=init, max_iter=0, persist=persist).fit(V)
        reads[init] = len(calls) / 8
    expected = 0 if persist else OUT_OF_CORE_POWER_ITERATIONS
    assert reads == {"random": 2, "nndsvda": 2 + expected}


def test_the_statistics_pass_hands_each_tile_to_the_svd_as_it_reads_it(tmp_path):
    """The statistics pass makes the SVD's first read: each tile read must go to its
    row pass before the next tiles are read. When the pass waited for the sketch's
    draw or a placeholder's task, dask read every tile first and held them all
    (≈ 560 MB on a 2M-row store)."""
    import dask
    from dask.callbacks import Callback

    from dasknmf import inputs, open_matrix, write_matrix
    from dasknmf.init import first_read

    write_matrix(make_matrix(600, 50, density=0.2, seed=1), tmp_path / "V.zarr", chunks=(50, 50))
    V = open_matrix(tmp_path / "V.zarr")
    first = first_read(V, 4, "nndsvda", seed=0)
    held, most = set(), [0]

    class Tiles(Callback):
        def _posttask(self, key, result, dsk, state, id):
            if isinstance(key, tuple) and key[0] == V.name:
                held.add(key[1])
            elif isinstance(key, tuple) and str(key[0]).startswith("row-pass") and len(key) >= 2:
                held.discard(key[1])
            most[0] = max(most[0], len(held))

    with dask.config.set(scheduler="sync"), Tiles():
        inputs.compute_stats(V, alongside=[(first.lazy, first.receive)])
    assert first.value is not None and V.numblocks[0] == 12
    assert most[0] <= 2
