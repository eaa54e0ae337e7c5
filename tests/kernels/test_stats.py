"""A tile's summary: sums, counts and the first offending entries."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf.kernels.stats import tile_stats
from tests.helpers import make_matrix


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_tile_stats(kind):
    X = make_matrix(6, 5, density=0.5, kind="dense")
    X[2, 3], X[4, 1], X[1, 4] = -1.0, np.nan, -2.0
    tile = sp.csr_matrix(X) if kind == "sparse" else X
    s = tile_stats(tile, 10, 20, 100)
    finite = X[np.isfinite(X)]
    np.testing.assert_allclose(s[0], finite.sum())
    np.testing.assert_allclose(s[1], (finite**2).sum())
    assert s[2] == np.count_nonzero(X)
    assert s[3] == 2  # two negatives
    assert s[4] == (10 + 1) * 100 + (20 + 4)  # first in row-major order: (1, 4)
    assert s[5] == 1
    assert s[6] == (10 + 4) * 100 + (20 + 1)


def test_tile_stats_clean_tile_has_no_positions():
    s = tile_stats(sp.csr_matrix((3, 3)), 0, 0, 3)
    assert s[2] == 0 and np.isinf(s[4]) and np.isinf(s[6])


@pytest.mark.parametrize("kind", ["sparse", "dense"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_clean_tile_gives_the_float64_sums_of_numpy(kind, dtype, monkeypatch):
    """Summed a slab at a time (no float64 copy of the tile): the same sums as NumPy
    in float64, across slab boundaries."""
    monkeypatch.setattr("dasknmf.kernels.stats.SLAB", 7)
    X = make_matrix(40, 30, density=0.3, kind="dense").astype(dtype)
    tile = sp.csr_matrix(X) if kind == "sparse" else X
    s = tile_stats(tile, 0, 0, 30)
    values = X.astype(np.float64)
    np.testing.assert_allclose(s[:2], [values.sum(), (values**2).sum()], rtol=1e-12)
    assert s[2] == np.count_nonzero(X) and s[3] == s[5] == 0
    assert s[7] == (np.count_nonzero(X) if kind == "sparse" else X.size)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_an_infinity_or_nan_in_a_nonnegative_tile_is_located(value):
    X = make_matrix(6, 5, density=0.5, kind="dense")
    X[3, 2] = value
    s = tile_stats(sp.csr_matrix(X), 0, 0, 5)
    assert s[5] == 1 and s[6] == 3 * 5 + 2
    finite = X[np.isfinite(X)]
    np.testing.assert_allclose(s[:2], [finite.sum(), (finite**2).sum()])
