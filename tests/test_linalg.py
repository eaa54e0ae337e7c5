from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf.linalg import first_pass, randomized_svd
from tests.helpers import make_matrix


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_randomized_svd_matches_lapack(kind):
    # Rank 8 < sketch width 15: the range finder captures the range exactly.
    rng = np.random.default_rng(0)
    A = rng.random((80, 8)) * (rng.random((80, 8)) < 0.3)
    B = rng.random((8, 50)) * (rng.random((8, 50)) < 0.3)
    dense = A @ np.diag(2.0 ** -np.arange(8)) @ B
    X = sp.csr_matrix(dense) if kind == "sparse" else dense
    V = da.from_array(X, chunks=(17, 12), asarray=False)
    U, s, Vt = randomized_svd(V, 5, seed=0)
    U_ref, s_ref, Vt_ref = np.linalg.svd(dense, full_matrices=False)
    np.testing.assert_allclose(s, s_ref[:5], rtol=1e-6)
    # Singular vectors agree up to sign.
    U, Vt = U.compute(), Vt.compute()
    for j in range(5):
        sign = np.sign(U[:, j] @ U_ref[:, j])
        np.testing.assert_allclose(sign * U[:, j], U_ref[:, j], atol=1e-5)
        np.testing.assert_allclose(sign * Vt[j], Vt_ref[j], atol=1e-5)
    assert U.shape == (80, 5) and Vt.shape == (5, 50)


def _counting(X, chunks, calls):
    """``X`` tiled, counting every read of a tile in ``calls``."""

    def read(tile):
        if tile.size:  # not dask's call on an empty tile for the meta
            calls.append(1)
        return tile

    return da.from_array(X, chunks=chunks, asarray=False).map_blocks(read, dtype=X.dtype)


def _aligned(U, Vt, U_ref, Vt_ref):
    """``U`` and ``Vt`` with each pair's sign made that of the reference."""
    signs = np.sign(np.sum(U * U_ref, axis=0))
    return U * signs, Vt * signs[:, None]


# (80, 50): one tile, computed without a scheduler; (40, 5): ten column tiles, more than
# a row-block task takes, so each pass is two graphs.
@pytest.mark.parametrize("chunks", [(80, 50), (17, 12), (40, 5)])
def test_randomized_svd_is_independent_of_the_tiling(chunks):
    X = make_matrix(80, 50, density=0.4)
    U_ref, s_ref, Vt_ref = (np.asarray(a) for a in dask.compute(*randomized_svd(
        da.from_array(X, chunks=(30, 25), asarray=False), 6, seed=3)))  # fmt: skip
    U, s, Vt = randomized_svd(da.from_array(X, chunks=chunks, asarray=False), 6, seed=3)
    assert U.chunks[0] == da.from_array(X, chunks=chunks).chunks[0] and Vt.shape == (6, 50)
    U, Vt = _aligned(np.asarray(U.compute()), np.asarray(Vt.compute()), U_ref, Vt_ref)
    np.testing.assert_allclose(s, s_ref, rtol=1e-10)
    np.testing.assert_allclose(U, U_ref, atol=1e-8)
    np.testing.assert_allclose(Vt, Vt_ref, atol=1e-8)


@pytest.mark.parametrize(("chunks", "reads_per_pass"), [((20, 25), 1), ((40, 5), 2)])
@pytest.mark.parametrize("power", [0, 2])
def test_each_power_iteration_reads_v_once(chunks, reads_per_pass, power):
    X = make_matrix(80, 50, density=0.4)
    calls, passes = [], []
    V = _counting(X, chunks, calls)
    randomized_svd(V, 4, seed=0, n_power_iter=power, on_pass=lambda *p: passes.append(p))
    tiles = V.numblocks[0] * V.numblocks[1]
    assert len(calls) == (power + 1) * reads_per_pass * tiles
    assert passes == [(i, power + 1) for i in range(1, power + 2)]


def test_float32_input_stays_float32_and_matches_lapack():
    rng = np.random.default_rng(0)
    X = rng.random((300, 8)) @ np.diag(2.0 ** -np.arange(8)) @ rng.random((8, 120))
    X = (X + 1e-3 * rng.random(X.shape)).astype(np.float32)
    U, s, _ = randomized_svd(da.from_array(X, chunks=(100, 60)), 5, seed=0)
    assert U.dtype == np.float32
    s_ref = np.linalg.svd(X.astype(np.float64), compute_uv=False)[:5]
    np.testing.assert_allclose(s, s_ref, rtol=1e-4)


def test_rank_beyond_the_matrix_rank_gives_zero_singular_values():
    rng = np.random.default_rng(0)
    X = rng.random((60, 3)) @ rng.random((3, 40))
    U, s, Vt = randomized_svd(da.from_array(X, chunks=(20, 40)), 5, seed=0, n_oversamples=2)
    U, Vt = U.compute(), Vt.compute()
    assert np.isfinite(U).all() and np.isfinite(Vt).all()
    np.testing.assert_allclose(s[:3], np.linalg.svd(X, compute_uv=False)[:3], rtol=1e-8)
    np.testing.assert_allclose(s[3:], 0.0, atol=1e-6 * s[0])
    np.testing.assert_allclose((U * s) @ Vt, X, atol=1e-8 * np.abs(X).max())


def test_a_first_pass_made_elsewhere_saves_a_read_and_changes_nothing():
    X = make_matrix(80, 50, density=0.4)
    calls, passes = [], []
    V = _counting(X, (20, 25), calls)
    first = first_pass(V, 4, seed=1)
    first.receive(first.lazy.compute())
    del calls[:]
    U, s, _ = randomized_svd(
        V, 4, seed=1, n_power_iter=2, first=first, on_pass=lambda *p: passes.append(p)
    )
    assert len(calls) == 2 * 8 and passes == [(1, 3), (2, 3), (3, 3)]
    U_ref, s_ref, _ = randomized_svd(V, 4, seed=1, n_power_iter=2)
    np.testing.assert_allclose(s, s_ref, rtol=1e-12)
    np.testing.assert_allclose(U.compute(), U_ref.compute(), atol=1e-10)
    # Made for another seed: not used (V is read for every pass).
    del calls[:]
    randomized_svd(V, 4, seed=2, n_power_iter=2, first=first)
    assert len(calls) == 3 * 8


def test_no_first_pass_where_it_cannot_share_a_read():
    X = make_matrix(80, 50, density=0.4)
    assert first_pass(da.from_array(X, chunks=(80, 50), asarray=False), 4, seed=0) is None
    assert first_pass(da.from_array(X, chunks=(40, 5), asarray=False), 4, seed=0) is None
