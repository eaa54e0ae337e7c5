"""default_chunks: the tile shape rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dasknmf.storage import default_chunks
from dasknmf.storage.chunking import TARGET_TILE_BYTES


def tile_bytes(tile, shape, nnz, itemsize) -> float:
    m, n = shape
    per_elem = itemsize if nnz is None else max(nnz, 1) / (m * n) * (itemsize + 4)
    return tile[0] * tile[1] * per_elem


@settings(max_examples=200, deadline=None)
@given(
    m=st.integers(1, 10**8),
    n=st.integers(1, 10**7),
    density=st.one_of(st.none(), st.floats(0.0, 1.0)),
    itemsize=st.sampled_from([4, 8]),
)
def test_properties(m, n, density, itemsize):
    nnz = None if density is None else int(density * m * n)
    rows, cols = default_chunks((m, n), nnz=nnz, itemsize=itemsize)
    assert isinstance(rows, int) and isinstance(cols, int)
    assert 1 <= rows <= m and 1 <= cols <= n
    # The memory target is respected up to rounding (never past 2x).
    assert tile_bytes((rows, cols), (m, n), nnz, itemsize) <= 2 * TARGET_TILE_BYTES
    # Rows and columns are multiples of 1024 unless the dimension or memory prevents it.
    if rows != m and rows >= 1024:
        assert rows % 1024 == 0
    if cols != n:
        assert cols % 1024 == 0


@pytest.mark.parametrize(
    "shape, nnz, itemsize",
    [
        ((1_000_000, 20_000), 10_000_000, 4),
        ((2_000_000, 60_000), 200_000_000, 4),
        ((300_000, 2_000), None, 8),
        ((50_000, 1_000), None, 4),
    ],
)
def test_full_width_for_modest_n(shape, nnz, itemsize):
    rows, cols = default_chunks(shape, nnz=nnz, itemsize=itemsize)
    assert cols == shape[1]
    # Enough row blocks for two workers, and tiles near the target size.
    assert -(-shape[0] // rows) >= 2
    assert rows % 1024 == 0


def test_large_enough_tiles():
    # A big, dense-ish matrix gets tiles of at least a quarter of the target.
    rows, cols = default_chunks((10**7, 10**4), nnz=10**9, itemsize=4)
    assert tile_bytes((rows, cols), (10**7, 10**4), 10**9, 4) >= TARGET_TILE_BYTES / 4


def test_wide_dense_matrix_is_cut_in_columns():
    rows, cols = default_chunks((1_000_000, 100_000), nnz=None, itemsize=8)
    assert cols < 100_000 and cols % 1024 == 0 and rows % 1024 == 0


def test_small_matrix_is_one_tile():
    assert default_chunks((500, 300), nnz=None, itemsize=8) == (500, 300)
    assert default_chunks((500, 300), nnz=0, itemsize=4) == (500, 300)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (-1, 2)])
def test_rejects_empty_shape(shape):
    with pytest.raises(ValueError, match="shape"):
        default_chunks(shape, nnz=None, itemsize=8)
