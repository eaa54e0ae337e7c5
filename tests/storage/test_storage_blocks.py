"""Writing a matrix given as row blocks: an iterator or a list of numpy / scipy blocks."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf.datasets import lazy_term_document, term_document, term_document_blocks
from dasknmf.errors import InvalidInputError, InvalidParameterError
from dasknmf.storage import default_chunks, matrix_info, open_matrix, write_matrix
from tests.storage.storage_testing import as_dense, random_sparse


def row_blocks(X, heights):
    """``X`` cut at the given block heights, as a generator."""
    start = 0
    for h in heights:
        yield X[start : start + h]
        start += h


@pytest.mark.parametrize("chunks", [(10, 20), (25, 45), (7, 45), (70, 45)])
def test_a_generator_of_uneven_sparse_blocks_writes_the_matrix(sparse_matrix, tmp_path, chunks):
    path = tmp_path / "v.zarr"
    heights = [3, 17, 1, 20, 29]  # block edges fall inside and on tile edges
    write_matrix(row_blocks(sparse_matrix, heights), path, shape=(70, 45), chunks=chunks)
    info = matrix_info(path)
    assert (info.format, info.shape, info.tile_shape) == ("sparse", (70, 45), chunks)
    assert info.nnz == sparse_matrix.nnz
    np.testing.assert_array_equal(as_dense(open_matrix(path).compute()), sparse_matrix.toarray())


def test_a_list_of_dense_blocks_needs_no_shape(tmp_path):
    X = np.random.default_rng(0).random((50, 7))
    write_matrix([X[:13], X[13:40], X[40:]], tmp_path / "d.zarr", chunks=(20, 3))
    info = matrix_info(tmp_path / "d.zarr")
    assert (info.format, info.shape, info.dtype) == ("dense", (50, 7), np.float64)
    np.testing.assert_array_equal(open_matrix(tmp_path / "d.zarr").compute(), X)


def test_blocks_of_both_kinds_take_the_first_blocks_kind(sparse_matrix, tmp_path):
    blocks = iter([sparse_matrix[:30], sparse_matrix[30:50].toarray(), sparse_matrix[50:]])
    write_matrix(blocks, tmp_path / "m.zarr", shape=(70, 45), chunks=(16, 45))
    assert matrix_info(tmp_path / "m.zarr").format == "sparse"
    np.testing.assert_array_equal(
        as_dense(open_matrix(tmp_path / "m.zarr").compute()), sparse_matrix.toarray()
    )


def test_empty_blocks_are_skipped_and_explicit_zeros_kept_on_request(tmp_path):
    X = sp.csr_matrix((np.array([0.0, 2.0, 3.0]), ([0, 1, 4], [1, 0, 2])), shape=(5, 3))
    blocks = iter([X[:2], X[2:2], X[2:]])
    write_matrix(blocks, tmp_path / "z.zarr", shape=(5, 3), keep_zeros=True)
    assert matrix_info(tmp_path / "z.zarr").nnz == 3


def test_the_default_tile_shape_assumes_the_first_blocks_density(tmp_path):
    X = random_sparse(5_000, 300, 0.01, seed=2)
    write_matrix(row_blocks(X, [1_000] * 5), tmp_path / "t.zarr", shape=X.shape)
    first = X[:1_000]
    nnz = round(first.nnz / (1_000 * 300) * X.shape[0] * X.shape[1])
    expected = default_chunks(X.shape, nnz=nnz, itemsize=8)
    assert matrix_info(tmp_path / "t.zarr").tile_shape == expected


def bad_write(tmp_path, blocks, shape):
    path = tmp_path / "bad.zarr"
    with pytest.raises((InvalidInputError, InvalidParameterError)) as caught:
        write_matrix(blocks, path, shape=shape, chunks=(10, 45))
    # Nothing was written: no store, no temporary sibling left behind.
    assert list(tmp_path.iterdir()) == []
    return str(caught.value)


def test_a_block_with_other_columns_is_named(sparse_matrix, tmp_path):
    blocks = iter([sparse_matrix[:30], sparse_matrix[30:50, :40], sparse_matrix[50:]])
    message = bad_write(tmp_path, blocks, (70, 45))
    assert "row block 1 (counting from 0, starting at row 30)" in message
    assert "40 columns" in message and "45" in message


def test_a_block_past_the_declared_rows_is_named(sparse_matrix, tmp_path):
    message = bad_write(tmp_path, row_blocks(sparse_matrix, [20, 20, 20, 10]), (65, 45))
    assert "row block 3 (counting from 0, starting at row 60)" in message
    assert "ending at row 70, past the 65 rows" in message


def test_blocks_ending_early_are_refused(sparse_matrix, tmp_path):
    message = bad_write(tmp_path, row_blocks(sparse_matrix, [20, 20, 20, 10]), (80, 45))
    assert "the 4 row blocks hold 70 rows" in message and "declares 80" in message


@pytest.mark.parametrize(
    ("blocks", "shape", "expected"),
    [
        (iter([np.ones((2, 3))]), None, "pass shape=(rows, columns)"),
        (iter([np.ones((2, 3))]), (2, -3), "'shape' parameter"),
        (iter([]), (2, 3), "holds no row blocks"),
        (iter([np.ones((2, 3)), np.ones((2, 3, 1))]), (4, 3), "row block 1 (counting"),
        (iter([np.ones((2, 3)), np.ones((2, 3)) * 1j]), (4, 3), "dtype complex128"),
        ([np.ones((2, 3)), np.ones((2, 3))], (5, 3), "hold 4 rows of 3 columns"),
    ],
)
def test_refusals_of_row_blocks(tmp_path, blocks, shape, expected):
    assert expected in bad_write(tmp_path, blocks, shape)


def test_a_shape_that_contradicts_an_array_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match=r"shape=\(4, 3\)"):
        write_matrix(np.ones((3, 3)), tmp_path / "a.zarr", shape=(4, 3))


def _peak_while_writing(path, n_blocks: int) -> int:
    """tracemalloc's peak (numpy reports its buffers to it) while writing ``n_blocks``
    blocks of 2,000 × 2,000 with 200,000 non-zeros each, made as they are asked for."""
    template = random_sparse(2_000, 2_000, 0.05, seed=0, dtype=np.float32)

    def blocks():
        for _ in range(n_blocks):
            yield template.copy()

    gc.collect()
    tracemalloc.start()
    try:
        write_matrix(blocks(), path, shape=(2_000 * n_blocks, 2_000), chunks=(4_096, 2_000))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_bounded_by_a_block_and_a_row_of_tiles(tmp_path):
    # Each block is 1.6 MB as CSR. Once the writer has flushed a few shards (4 Mi
    # entries each) its buffers stay the same size (measured: 91 MB at 25 blocks,
    # 124 MB at 50 and at 100; a CSR input of 100 blocks peaks at 280 MB). Writing
    # twice the rows must then not grow the peak by more than a few blocks, where
    # holding the matrix would take 45 blocks (72 MB) more.
    small = _peak_while_writing(tmp_path / "small.zarr", 45)
    large = _peak_while_writing(tmp_path / "large.zarr", 90)
    block_bytes = 200_000 * 8
    assert matrix_info(tmp_path / "large.zarr").shape == (180_000, 2_000)
    assert large - small < 4 * block_bytes, (small, large)


def test_term_document_blocks_and_the_lazy_matrix_agree():
    blocks = list(term_document_blocks(2_500, 300, block_rows=1_000, seed=3))
    lazy = lazy_term_document(2_500, 300, block_rows=1_000, seed=3)
    assert lazy.chunks == ((1_000, 1_000, 500), (300,))
    for i, block in enumerate(blocks):
        assert (lazy.blocks[i].compute() != block).nnz == 0
    # The same law as term_document's: ≈ 47 terms a document, merged duplicates.
    whole = term_document(2_500, 300, seed=3)
    stacked = sp.vstack(blocks)
    assert abs(stacked.nnz - whole.nnz) / whole.nnz < 0.05
    assert abs(stacked.sum() - whole.sum()) / whole.sum() < 0.05


def test_the_lazy_matrix_writes_a_store(tmp_path):
    X = lazy_term_document(3_000, 400, block_rows=700, seed=1)
    write_matrix(X, tmp_path / "lazy.zarr", chunks=(1_000, 400))
    expected = sp.vstack(list(term_document_blocks(3_000, 400, block_rows=700, seed=1)))
    got = open_matrix(tmp_path / "lazy.zarr").compute()
    assert (got != expected).nnz == 0
