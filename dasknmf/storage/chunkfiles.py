"""The chunk files of an uncompressed zarr v3 array, read and written directly.

A factor store (:mod:`dasknmf.storage.factors`) writes a whole generation of ``W`` and
reads it back once every iteration. Through zarr, a 20 MB chunk took about 50 ms to
write (its codec pipeline, its event loop, the copies between them) where a plain file
write takes a few: at 2M rows and k = 20 that was most of the difference between a fit
with ``W`` stored and one with ``W`` in memory (docs/benchmarks.md). So the store's
tasks write and read the chunk files themselves, in exactly the layout that the
array's metadata declares (:data:`LAYOUT`: keys ``c/i/j``, the raw little-endian
bytes, edge chunks padded to the full chunk shape). A generation is still an ordinary
zarr array, which zarr reads (tested), and zarr still writes its metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from zarr.codecs import BytesCodec

__all__ = ["LAYOUT", "ChunkFiles", "read_array", "write_array"]

#: The zarr v3 array options under which the chunk files are what this module
#: reads and writes (given to ``zarr.create_array``).
LAYOUT: dict[str, Any] = {
    "chunk_key_encoding": {"name": "default", "separator": "/"},
    "serializer": BytesCodec(endian="little"),
    "compressors": None,
    "filters": None,
}


@dataclass(frozen=True)
class ChunkFiles:
    """Where an array's chunk files are and what they hold.

    Attributes
    ----------
    root : str
        The zarr array's directory.
    chunk_shape : tuple of int
        The zarr chunk shape (every file holds one whole chunk).
    dtype : str
        The array's dtype (stored little-endian).
    """

    root: str
    chunk_shape: tuple[int, ...]
    dtype: str

    def path(self, index: tuple[int, ...]) -> str:
        """The file of chunk ``index``."""
        return os.path.join(self.root, "c", *map(str, index))

    @property
    def stored(self) -> np.dtype:
        return np.dtype(self.dtype).newbyteorder("<")


def write_array(X: da.Array, files: ChunkFiles) -> da.Array:
    """A dask array of tokens whose computation writes each block of ``X`` as the chunk
    file of the same index. ``X``'s blocks must be the chunks (an edge block smaller)."""
    token_chunks = tuple((1,) * len(c) for c in X.chunks)
    return X.map_blocks(
        _write_block,
        files,
        dtype=np.int8,
        chunks=token_chunks,
        name=f"write-chunks-{X.name}",
        meta=np.empty((0,) * X.ndim, dtype=np.int8),
    )


def _write_block(block: np.ndarray, files: ChunkFiles, block_info=None) -> np.ndarray:
    index = tuple(block_info[0]["chunk-location"])
    data = np.ascontiguousarray(block, dtype=files.stored)
    if data.shape != files.chunk_shape:  # an edge chunk: zarr stores it whole
        padded = np.zeros(files.chunk_shape, dtype=files.stored)
        padded[tuple(slice(0, s) for s in data.shape)] = data
        data = padded
    path = files.path(index)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(memoryview(data).cast("B"))
    return np.zeros((1,) * block.ndim, dtype=np.int8)


def read_array(files: ChunkFiles, shape: tuple[int, ...], name: str, handle: object) -> da.Array:
    """The array of ``shape`` whose chunk files ``files`` describes, one block per
    chunk. ``handle`` goes into every task (the caller's finaliser on it tells when no
    graph reads the files any more)."""
    chunks = da.core.normalize_chunks(files.chunk_shape, shape)
    graph = {
        (name, *index): (_read_block, files, index, _block_shape(chunks, index), handle)
        for index in np.ndindex(*(len(c) for c in chunks))
    }
    meta = np.empty((0,) * len(shape), dtype=np.dtype(files.dtype))
    return da.Array(graph, name, chunks=chunks, meta=meta)


def _block_shape(chunks: tuple[tuple[int, ...], ...], index: tuple[int, ...]) -> tuple:
    return tuple(c[i] for c, i in zip(chunks, index, strict=True))


def _read_block(
    files: ChunkFiles, index: tuple[int, ...], shape: tuple[int, ...], handle: object
) -> np.ndarray:
    out = np.empty(files.chunk_shape, dtype=files.stored)
    path = files.path(index)
    with open(path, "rb") as f:
        if f.readinto(memoryview(out).cast("B")) != out.nbytes:
            raise OSError(f"chunk file {path!r} is shorter than a chunk of {files.chunk_shape}")
    if tuple(shape) != files.chunk_shape:  # an edge chunk: its own memory, not a view
        out = np.ascontiguousarray(out[tuple(slice(0, s) for s in shape)])
    return out.astype(files.dtype, copy=False)
