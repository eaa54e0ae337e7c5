"""Tiling an in-memory input: the tiles, their memory, and the statistics read from them."""

from __future__ import annotations

import tracemalloc
import warnings

import dask
import numpy as np
import pytest
import scipy.sparse as sp

import dasknmf
from dasknmf import inputs
from dasknmf.estimator.preparation import as_tiled as model_tiles
from tests.helpers import make_matrix


def _nbytes(X) -> int:
    return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes if sp.issparse(X) else X.nbytes


@pytest.mark.parametrize("kind", ["sparse", "dense"])
@pytest.mark.parametrize("chunks", [(16, 45), (16, 20), (60, 45)])
def test_tiles_are_the_blocks_of_the_input(kind, chunks):
    X = make_matrix(60, 45, density=0.3, kind=kind, seed=2)
    V = inputs.tiles_of(X, chunks)
    assert V.chunks == dask.array.core.normalize_chunks(chunks, X.shape)
    dense = X.toarray() if kind == "sparse" else X
    for i, rows in enumerate(np.split(np.arange(60), np.cumsum(V.chunks[0])[:-1])):
        for j, cols in enumerate(np.split(np.arange(45), np.cumsum(V.chunks[1])[:-1])):
            tile = V.blocks[i, j].compute()
            assert sp.issparse(tile) == (kind == "sparse")
            got = tile.toarray() if kind == "sparse" else tile
            np.testing.assert_array_equal(got, dense[np.ix_(rows, cols)])


def test_dense_row_blocks_and_a_single_tile_share_the_input_memory():
    X = make_matrix(60, 45, density=0.3, kind="dense")
    graph = dict(inputs.tiles_of(X, (16, 45)).__dask_graph__())
    assert all(np.shares_memory(tile, X) for tile in graph.values())
    S = sp.csr_matrix(X)
    (one,) = dict(inputs.tiles_of(S, S.shape).__dask_graph__()).values()
    assert one is S


def test_a_fit_holds_at_most_one_copy_of_a_sparse_input():
    """dask's from_array copied the input whole before slicing copies of its tiles,
    and the statistics made index arrays for every value: 2.6× the input's bytes at
    the peak. Tiles copied once, and statistics read in place, stay below 1.5×."""
    X = sp.random(4000, 3000, density=0.25, format="csr", random_state=0, dtype=np.float32)
    params = dict(max_iter=2, chunks=(1000, 3000), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dasknmf.NMF(4, **params).fit(X)  # imports and caches outside the trace
        tracemalloc.start()
        try:
            dasknmf.NMF(4, **params).fit(X)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 1.5 * _nbytes(X)


@pytest.mark.parametrize("chunks", [(16, 45), (60, 45)], ids=["tiles", "one tile: the input"])
def test_the_input_is_left_as_it_was(chunks):
    X = make_matrix(60, 45, density=0.3, seed=4)
    X.indices[X.indptr[3] : X.indptr[4]] = X.indices[X.indptr[3] : X.indptr[4]][::-1]
    X.has_sorted_indices = False  # unsorted rows, which SciPy would sort in place
    before = [a.copy() for a in (X.data, X.indices, X.indptr)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dasknmf.NMF(3, max_iter=5, chunks=chunks, random_state=0).fit(X)
    for a, b in zip((X.data, X.indices, X.indptr), before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_the_observed_range_skips_what_is_not_finite(kind):
    X = make_matrix(60, 45, density=0.3, kind="dense", seed=5)
    finite = X[X != 0]
    expected = (finite.min(), finite.max())
    if kind == "dense":
        expected = (0.0, finite.max())
    X[7, 8] = np.nan
    X[9, 10] = np.inf
    X = sp.csr_matrix(X) if kind == "sparse" else X
    stats = inputs.compute_stats(inputs.tiles_of(X, (16, 20)), nan_is_missing=True)
    assert (stats.observed_min, stats.observed_max) == pytest.approx(expected)


def test_a_fortran_ordered_dense_input_gets_c_ordered_tiles():
    X = np.asfortranarray(make_matrix(60, 45, density=0.3, kind="dense"))
    for chunks in [(16, 45), X.shape]:
        tiles = dict(inputs.tiles_of(X, chunks).__dask_graph__()).values()
        assert all(tile.flags.c_contiguous for tile in tiles)
        assert not any(np.shares_memory(tile, X) for tile in tiles)


# The generator's 200,000 × 50,000 matrix (7.35M non-zeros, float32 CSR: 56 MiB).
GENERATOR = dict(shape=(200_000, 50_000), nbytes=7_347_262 * 8, threads=2)


@pytest.mark.parametrize(
    ("gather", "expected"),
    [
        (None, (100_000, 50_000)),  # dense, or k unknown: full width
        ((20, 4), (100_000, 25_000)),  # H block 50,000 × 20 × 4 B = 3.8 MiB → 2
        ((50, 4), (100_000, 10_000)),  # 9.5 MiB → 5 blocks
        ((20, 8), (100_000, 12_500)),  # float64: 7.6 MiB → 4
        ((10, 4), (100_000, 50_000)),  # 1.9 MiB: already about the budget
        ((1_000, 4), (100_000, 50_000)),  # compiled wide products: not cut
        ((100, 4), (100_000, 6_250)),  # 19 MiB → at most SPLIT_EVERY (8) blocks
    ],
)
def test_an_in_memory_sparse_inputs_columns_are_cut_to_the_gathered_block(gather, expected):
    assert inputs.auto_chunks(**GENERATOR, gather=gather) == expected


def test_a_small_input_stays_one_tile_whatever_k():
    assert inputs.auto_chunks((1_000, 50_000), nbytes=10**6, threads=2, gather=(20, 4)) == (
        1_000,
        50_000,
    )


def test_the_estimator_tiles_by_its_k_and_the_fit_is_the_full_width_fit(monkeypatch):
    # Shrink the budgets so that a small matrix gets the generator's tiling.
    monkeypatch.setattr(inputs, "SINGLE_TILE_BYTES", 0)
    monkeypatch.setattr(inputs, "GATHER_BYTES", 40 * 8 * 30)  # 30 float64 columns of k = 40
    X = make_matrix(300, 120, density=0.2, seed=4)
    params = dict(init="random", max_iter=15, tol=0, random_state=0)
    assert model_tiles(dasknmf.NMF(40, **params), X, reset=True).chunks[1] == (30,) * 4
    assert model_tiles(dasknmf.NMF(None), X, reset=True).chunks[1] == (120,)
    assert model_tiles(dasknmf.NMF(40), X.toarray(), reset=True).chunks[1] == (120,)
    cut = dasknmf.NMF(40, **params).fit(X)
    whole = dasknmf.NMF(40, chunks=(150, 120), **params).fit(X)
    np.testing.assert_allclose(cut.components_, whole.components_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(cut.reconstruction_err_, whole.reconstruction_err_, rtol=1e-5)
