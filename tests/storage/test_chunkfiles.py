"""Chunk files written and read without zarr are what zarr writes and reads."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from dasknmf.storage.chunkfiles import LAYOUT, ChunkFiles, read_array, write_array


def new_array(path, shape, chunks, dtype) -> zarr.Array:
    return zarr.create_array(
        str(path), shape=shape, chunks=chunks, dtype=dtype, fill_value=0, **LAYOUT
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("shape", "chunks"),
    [((10, 3), (4, 3)), ((7, 11), (7, 4)), ((9, 9), (4, 5)), ((5, 2), (5, 2))],
    ids=["edge rows", "edge columns", "edges both", "one chunk"],
)
def test_written_files_are_read_by_zarr_and_zarrs_files_by_us(tmp_path, shape, chunks, dtype):
    X = np.random.default_rng(0).random(shape).astype(dtype)
    ours = new_array(tmp_path / "ours.zarr", shape, chunks, dtype)
    files = ChunkFiles(str(tmp_path / "ours.zarr"), chunks, dtype)
    dask.compute(write_array(da.from_array(X, chunks=chunks), files))
    np.testing.assert_array_equal(ours[...], X)  # zarr reads what we wrote

    theirs = new_array(tmp_path / "theirs.zarr", shape, chunks, dtype)
    theirs[...] = X
    read = read_array(ChunkFiles(str(tmp_path / "theirs.zarr"), chunks, dtype), shape, "r", None)
    assert read.chunks == da.from_array(X, chunks=chunks).chunks
    out = read.compute()
    np.testing.assert_array_equal(out, X)  # we read what zarr wrote
    assert out.dtype == np.dtype(dtype)
    for block in read.blocks.ravel():  # an edge block has memory of its own
        assert block.compute().flags.c_contiguous


def test_a_short_chunk_file_is_an_error_naming_it(tmp_path):
    new_array(tmp_path / "a.zarr", (4, 2), (2, 2), "float32")
    files = ChunkFiles(str(tmp_path / "a.zarr"), (2, 2), "float32")
    dask.compute(write_array(da.ones((4, 2), chunks=(2, 2), dtype="float32"), files))
    path = files.path((1, 0))
    with open(path, "r+b") as f:
        f.truncate(4)
    with pytest.raises(OSError, match=r"c/1/0' is shorter than a chunk of \(2, 2\)"):
        read_array(files, (4, 2), "r", None).compute()
