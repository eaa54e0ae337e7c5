"""Refusals: missing, foreign, incomplete and corrupt stores; invalid arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import zarr

from dasknmf.errors import (
    CorruptStoreError,
    DaskNMFError,
    InvalidInputError,
    InvalidParameterError,
    NotAStoreError,
    StoreNotFoundError,
    UnsupportedFormatError,
)
from dasknmf.storage import matrix_info, open_matrix, write_matrix
from tests.storage.storage_testing import random_sparse


@pytest.fixture
def sparse_store(tmp_path):
    X = random_sparse(60, 30, 0.2, seed=5)
    path = tmp_path / "s.zarr"
    write_matrix(X, path, chunks=(20, 15))  # 3 x 2 tiles
    return path, X


def _set_marker(path, **changes) -> None:
    meta_file = path / "zarr.json"
    doc = json.loads(meta_file.read_text())
    doc["attributes"]["dasknmf"].update(changes)
    meta_file.write_text(json.dumps(doc))


# -- opening -----------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(StoreNotFoundError, match="does not exist") as info:
        open_matrix(tmp_path / "nope")
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(StoreNotFoundError):
        matrix_info(tmp_path / "nope")
    with pytest.raises(StoreNotFoundError):
        open_matrix("memory://dasknmf-tests/never-written")


def test_plain_directory_and_file(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "notes.txt").write_text("hello")
    with pytest.raises(NotAStoreError, match="not a dasknmf matrix store"):
        open_matrix(tmp_path / "dir")
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(NotAStoreError):
        open_matrix(tmp_path / "file.txt")


def test_foreign_zarr_group_and_array(tmp_path):
    group = zarr.open_group(tmp_path / "g", mode="w")
    group.create_array("x", shape=(3,), dtype="f8")
    group.attrs["something"] = "else"
    with pytest.raises(NotAStoreError, match="not a dasknmf matrix store"):
        open_matrix(tmp_path / "g")
    zarr.create_array(tmp_path / "a", shape=(3, 3), dtype="f8")
    with pytest.raises(NotAStoreError):
        open_matrix(tmp_path / "a")


def test_incomplete_store_rejected(sparse_store):
    path, _ = sparse_store
    _set_marker(path, complete=False)
    with pytest.raises(CorruptStoreError, match="interrupted"):
        open_matrix(path)
    with pytest.raises(CorruptStoreError, match="interrupted"):
        matrix_info(path)
    # An interrupted store of ours may be overwritten.
    write_matrix(np.ones((2, 2)), path, overwrite=True)
    assert open_matrix(path).shape == (2, 2)


def test_newer_format_version_rejected(sparse_store):
    path, _ = sparse_store
    _set_marker(path, version=99)
    with pytest.raises(UnsupportedFormatError, match="version 99"):
        open_matrix(path)


@pytest.mark.parametrize(
    "changes",
    [{"shape": [60]}, {"nnz": 10**9}, {"dtype": "int8"}, {"tile_shape": [0, 15]}, {"nnz": 3}],
)
def test_inconsistent_metadata_rejected(sparse_store, changes):
    path, _ = sparse_store
    _set_marker(path, **changes)
    with pytest.raises(CorruptStoreError, match=r"s\.zarr"):
        open_matrix(path)


def test_missing_tile_index_rejected(sparse_store):
    import shutil

    path, _ = sparse_store
    shutil.rmtree(path / "tile_offsets")
    with pytest.raises(CorruptStoreError):
        open_matrix(path)


# -- corrupt tiles: detected when that tile is computed -----------------------


def test_out_of_range_indices(sparse_store):
    path, X = sparse_store
    V = open_matrix(path)
    # Tile (1, 0) starts after the non-zeros of tiles (0, 0) and (0, 1).
    start = X[:20, :15].nnz + X[:20, 15:].nnz
    indices = zarr.open_group(path, mode="r+")["indices"]
    indices[start : start + 2] = 10**6
    with pytest.raises(CorruptStoreError, match=r"tile \(1, 0\)") as info:
        V.blocks[1, 0].compute()
    assert "s.zarr" in str(info.value)
    # Other tiles are still readable.
    np.testing.assert_array_equal(V.blocks[0, 1].compute().toarray(), X[:20, 15:].toarray())


def test_non_monotone_indptr(sparse_store):
    path, _ = sparse_store
    indptr = zarr.open_group(path, mode="r+")["indptr"]
    p0 = 2 * 21  # tile (1, 0): after two tiles of 20 rows (21 indptr entries each)
    values = indptr[p0 : p0 + 21]
    values[5], values[6] = values[6] + 1, values[5]
    indptr[p0 : p0 + 21] = values
    with pytest.raises(CorruptStoreError, match=r"tile \(1, 0\).*(monotone|checksum)"):
        open_matrix(path).blocks[1, 0].compute()


def test_nnz_mismatch_with_tile_index(sparse_store):
    path, _ = sparse_store
    indptr = zarr.open_group(path, mode="r+")["indptr"]
    indptr[21] = indptr[21] + 1  # first entry of tile (0, 1)
    with pytest.raises(CorruptStoreError, match=r"tile \(0, 1\).*nnz mismatch"):
        open_matrix(path).blocks[0, 1].compute()


def test_changed_values_fail_checksum(sparse_store):
    path, _ = sparse_store
    data = zarr.open_group(path, mode="r+")["data"]
    data[0] = data[0] + 1.0
    with pytest.raises(CorruptStoreError, match=r"tile \(0, 0\).*checksum"):
        open_matrix(path).blocks[0, 0].compute()


@pytest.mark.parametrize("damage", ["garbage", "truncate", "delete"])
def test_damaged_chunk_file(sparse_store, damage):
    path, _ = sparse_store
    chunk = path / "data" / "c" / "0"
    if damage == "garbage":
        chunk.write_bytes(b"\x00garbage" * 20)
    elif damage == "truncate":
        chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    else:
        chunk.unlink()
    V = open_matrix(path)
    with pytest.raises(CorruptStoreError, match=r"s\.zarr.*tile \(\d, \d\)"):
        V.compute()


@pytest.mark.parametrize("damage", ["garbage", "delete"])
def test_damaged_dense_chunk(tmp_path, damage):
    X = np.arange(24.0).reshape(6, 4)
    write_matrix(X, tmp_path / "d", chunks=(3, 2))
    chunk = tmp_path / "d" / "values" / "c" / "1" / "0"
    if damage == "garbage":
        chunk.write_bytes(b"\x01not blosc" * 10)
    else:
        chunk.unlink()
    V = open_matrix(tmp_path / "d")
    np.testing.assert_array_equal(V.blocks[0, 0].compute(), X[:3, :2])
    with pytest.raises(CorruptStoreError, match=r"tile \(1, 0\)"):
        V.blocks[1, 0].compute()


# -- invalid arguments ---------------------------------------------------------


@pytest.mark.parametrize(
    "X, match",
    [
        (np.ones(5), "2-D"),
        (np.ones((2, 2, 2)), "2-D"),
        (np.ones((0, 3)), "empty"),
        (np.ones((2, 2), dtype=complex), "complex"),
        (np.array([["a", "b"]], dtype=object), "object"),
        ("not a matrix", "0-D|2-D"),
    ],
)
def test_invalid_matrix(tmp_path, X, match):
    with pytest.raises(InvalidInputError, match=match):
        write_matrix(X, tmp_path / "v")
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize(
    "chunks", [(0, 5), (5,), (2, 3, 4), (2.5, 3), (-1, 4), "auto", (True, 3), 10]
)
def test_invalid_chunks(tmp_path, chunks):
    with pytest.raises(InvalidParameterError, match="chunks") as info:
        write_matrix(np.ones((4, 4)), tmp_path / "v", chunks=chunks)
    assert repr(chunks) in str(info.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"format": "csr"}, "format"),
        ({"dtype": "int32"}, "dtype"),
        ({"dtype": "not-a-dtype"}, "dtype"),
        ({"storage_options": {"anon": True}}, "storage_options"),
    ],
)
def test_invalid_parameters(tmp_path, kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        write_matrix(np.ones((4, 4)), tmp_path / "v", **kwargs)


def test_errors_derive_from_project_base(tmp_path):
    with pytest.raises(DaskNMFError):
        write_matrix(sp.csr_matrix((3, 3)), tmp_path / "v", chunks=(0, 1))
    with pytest.raises(ValueError):
        write_matrix(np.ones(3), tmp_path / "v")


def test_a_swapped_shape_in_the_metadata_is_caught_at_open(tmp_path):
    """Issue: 200 x 100 written in 100 x 100 tiles and claimed 100 x 200 agreed with
    the tile index (two tiles either way) and opened and fitted as another matrix."""
    path = tmp_path / "v.zarr"
    write_matrix(random_sparse(200, 100, 0.1, seed=1), path, chunks=(100, 100))
    _set_marker(path, shape=[100, 200])
    with pytest.raises(CorruptStoreError) as info:
        open_matrix(path)
    message = str(info.value)
    assert "the metadata says shape (100, 200)" in message
    assert "written for shape (200, 100)" in message and str(path) in message


def test_a_store_written_before_the_tile_bounds_still_opens(sparse_store):
    path, X = sparse_store
    group = zarr.open_group(str(path), mode="r+")
    del group["tile_bounds"]
    np.testing.assert_array_equal(open_matrix(path).compute().toarray(), X.toarray())
