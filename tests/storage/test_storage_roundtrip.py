"""Round trips: what write_matrix stores, open_matrix gives back exactly, tile by tile."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf.storage import matrix_info, open_matrix, write_matrix
from dasknmf.storage.layout import grid_chunks
from tests.storage.storage_testing import as_dense, random_sparse

CHUNKINGS = [
    pytest.param((70, 45), id="one-tile"),
    pytest.param((10, 15), id="many-tiles"),
    pytest.param((16, 20), id="ragged"),
    pytest.param((1, 45), id="one-row-tiles"),
    pytest.param((1000, 1000), id="larger-than-matrix"),
]


def check_store(path, expected: np.ndarray, tile_shape, *, sparse: bool, dtype) -> None:
    V = open_matrix(path)
    tile_shape = (min(tile_shape[0], expected.shape[0]), min(tile_shape[1], expected.shape[1]))
    assert V.shape == expected.shape
    assert V.dtype == dtype
    assert V.chunks == grid_chunks(expected.shape, tile_shape)
    result = V.compute(scheduler="sync")
    assert sp.issparse(result) == sparse
    got = as_dense(result)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected.astype(dtype))
    # Each chunk is the tile, of the promised type.
    tile = V.blocks[V.numblocks[0] - 1, V.numblocks[1] - 1].compute(scheduler="sync")
    assert type(tile) is (sp.csr_matrix if sparse else np.ndarray)
    r0, c0 = (V.numblocks[0] - 1) * tile_shape[0], (V.numblocks[1] - 1) * tile_shape[1]
    np.testing.assert_array_equal(as_dense(tile), expected[r0:, c0:].astype(dtype))


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_scipy_csr_to_sparse(tmp_path, sparse_matrix, chunks):
    write_matrix(sparse_matrix, tmp_path / "v", chunks=chunks)
    check_store(tmp_path / "v", sparse_matrix.toarray(), chunks, sparse=True, dtype=np.float64)


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_numpy_to_dense(tmp_path, sparse_matrix, chunks):
    X = sparse_matrix.toarray()
    write_matrix(X, tmp_path / "v", chunks=chunks)
    check_store(tmp_path / "v", X, chunks, sparse=False, dtype=np.float64)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "csr_array", "coo_array"])
def test_scipy_formats_to_sparse(tmp_path, sparse_matrix, fmt):
    X = {
        "csr": sparse_matrix,
        "csc": sparse_matrix.tocsc(),
        "coo": sparse_matrix.tocoo(),
        "csr_array": sp.csr_array(sparse_matrix),
        "coo_array": sp.coo_array(sparse_matrix),
    }[fmt]
    write_matrix(X, tmp_path / "v", chunks=(16, 20))
    check_store(tmp_path / "v", sparse_matrix.toarray(), (16, 20), sparse=True, dtype=np.float64)


def test_numpy_forced_sparse_and_scipy_forced_dense(tmp_path, sparse_matrix):
    X = sparse_matrix.toarray()
    write_matrix(X, tmp_path / "s", chunks=(16, 20), format="sparse")
    check_store(tmp_path / "s", X, (16, 20), sparse=True, dtype=np.float64)
    write_matrix(sparse_matrix, tmp_path / "d", chunks=(16, 20), format="dense")
    check_store(tmp_path / "d", X, (16, 20), sparse=False, dtype=np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", ["sparse", "dense"])
def test_float_dtypes_kept(tmp_path, dtype, fmt):
    X = random_sparse(30, 20, 0.3, seed=2, dtype=dtype)
    src = X if fmt == "sparse" else X.toarray()
    write_matrix(src, tmp_path / "v", chunks=(7, 6))
    check_store(tmp_path / "v", X.toarray(), (7, 6), sparse=fmt == "sparse", dtype=dtype)


@pytest.mark.parametrize("src_dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_integer_and_bool_stored_as_float32(tmp_path, src_dtype):
    X = (np.arange(60).reshape(10, 6) % 4).astype(src_dtype)
    write_matrix(X, tmp_path / "d", chunks=(4, 4))
    check_store(tmp_path / "d", X, (4, 4), sparse=False, dtype=np.float32)
    write_matrix(sp.csr_matrix(X), tmp_path / "s", chunks=(4, 4))
    check_store(tmp_path / "s", X, (4, 4), sparse=True, dtype=np.float32)


def test_explicit_dtype_converts(tmp_path, sparse_matrix):
    write_matrix(sparse_matrix, tmp_path / "v", chunks=(16, 20), dtype="float32")
    check_store(tmp_path / "v", sparse_matrix.toarray(), (16, 20), sparse=True, dtype=np.float32)


def test_dask_numpy_chunks(tmp_path, sparse_matrix):
    X = sparse_matrix.toarray()
    D = da.from_array(X, chunks=(13, 11))  # not aligned with the tiles: rechunked
    write_matrix(D, tmp_path / "v", chunks=(16, 20))
    check_store(tmp_path / "v", X, (16, 20), sparse=False, dtype=np.float64)


@pytest.mark.parametrize("input_chunks", [(16, 20), (35, 45), (13, 11)])
def test_dask_sparse_chunks(tmp_path, sparse_matrix, input_chunks):
    X = sparse_matrix.toarray()
    D = da.from_array(X, chunks=input_chunks).map_blocks(sp.csr_matrix)
    assert sp.issparse(D._meta)
    write_matrix(D, tmp_path / "v", chunks=(16, 20))
    check_store(tmp_path / "v", X, (16, 20), sparse=True, dtype=np.float64)


def test_dask_sparse_default_chunks(tmp_path, sparse_matrix):
    D = da.from_array(sparse_matrix.toarray(), chunks=(16, 45)).map_blocks(sp.csr_matrix)
    write_matrix(D, tmp_path / "v")
    assert matrix_info(tmp_path / "v").tile_shape == (70, 45)
    check_store(tmp_path / "v", sparse_matrix.toarray(), (70, 45), sparse=True, dtype=np.float64)


@pytest.mark.parametrize("fmt", ["sparse", "dense"])
def test_all_zero_matrix(tmp_path, fmt):
    X = np.zeros((25, 9))
    write_matrix(X, tmp_path / "v", chunks=(10, 4), format=fmt)
    check_store(tmp_path / "v", X, (10, 4), sparse=fmt == "sparse", dtype=np.float64)
    assert matrix_info(tmp_path / "v").nnz == 0


def test_duplicates_and_explicit_zeros_are_canonicalised(tmp_path):
    rows, cols = np.array([0, 0, 1, 2]), np.array([1, 1, 0, 2])
    X = sp.coo_matrix((np.array([1.0, 2.0, 0.0, 4.0]), (rows, cols)), shape=(3, 3))
    original = X.copy()
    write_matrix(X, tmp_path / "v", chunks=(2, 2))
    assert matrix_info(tmp_path / "v").nnz == 2
    tile = open_matrix(tmp_path / "v").blocks[0, 0].compute()
    assert tile.has_canonical_format
    np.testing.assert_array_equal(as_dense(tile), [[0.0, 3.0], [0.0, 0.0]])
    # The caller's matrix is untouched.
    assert (original != X).nnz == 0
    assert X.nnz == 4


def test_nan_and_negative_values_are_stored_as_given(tmp_path):
    X = np.array([[1.0, -2.0], [np.nan, 0.0]])
    write_matrix(X, tmp_path / "v")
    np.testing.assert_array_equal(open_matrix(tmp_path / "v").compute(), X)


def test_memory_url_round_trip(sparse_matrix):
    url = "memory://dasknmf-tests/roundtrip"
    write_matrix(sparse_matrix, url, chunks=(16, 20), storage_options={})
    with dask.config.set(scheduler="threads"):
        check_store(url, sparse_matrix.toarray(), (16, 20), sparse=True, dtype=np.float64)
    write_matrix(sparse_matrix.toarray(), url, chunks=(16, 20), overwrite=True)
    with dask.config.set(scheduler="threads"):
        check_store(url, sparse_matrix.toarray(), (16, 20), sparse=False, dtype=np.float64)
    assert matrix_info(url).bytes_on_disk > 0


def test_dask_input_is_written_one_tile_row_at_a_time(tmp_path, sparse_matrix):
    computed = []

    def record(block, block_info=None):
        computed.append(block_info[0]["chunk-location"])
        return sp.csr_matrix(block)

    D = da.from_array(sparse_matrix.toarray(), chunks=(10, 15)).map_blocks(
        record, meta=sp.csr_matrix((0, 0))
    )
    write_matrix(D, tmp_path / "v", chunks=(10, 15))
    rows = [loc[0] for loc in computed]
    assert sorted(rows) == rows  # a later row of tiles never starts before an earlier one
    assert len(computed) == 7 * 3
