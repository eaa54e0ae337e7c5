"""The tiled sparse format: CSR tiles concatenated in 1-D zarr arrays.

Tile ``t = i * n_tile_cols + j`` (row-major) occupies

* ``data[o[t]:o[t+1]]`` and ``indices[o[t]:o[t+1]]`` with ``o = tile_offsets``;
* ``indptr[p[t]:p[t] + rows_i + 1]``, where ``p[t] = sum over earlier tiles of
  (their rows + 1)`` follows from the shapes alone. Its values are *absolute*
  offsets into ``data``, so they must start at ``o[t]`` and end at ``o[t+1]``.

Column indices are local to the tile. ``tile_crc32[t]`` checksums the tile's data,
indices and local indptr, because a damaged compressed chunk can decode to garbage
without any error.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import zarr

from dasknmf.errors import CorruptStoreError

from .layout import (
    DATA,
    FLAT_CHUNK,
    FLAT_SHARD,
    INDEX_FILL,
    INDICES,
    INDPTR,
    TILE_BOUNDS,
    TILE_CRC32,
    TILE_OFFSETS,
    StoreMeta,
    compressors_for,
)
from .reader import TileSource, tile_array

__all__ = ["SparseTileSource", "SparseWriter", "open_sparse", "tile_crc"]

logger = logging.getLogger(__name__)


def tile_crc(data: np.ndarray, indices: np.ndarray, local_indptr: np.ndarray) -> int:
    """CRC-32 of one CSR tile (data, then int32 indices, then int64 local indptr).

    Examples
    --------
    >>> tile_crc(np.ones(1), np.zeros(1, np.int32), np.array([0, 1]))
    2015917543
    """
    crc = zlib.crc32(np.ascontiguousarray(data))
    crc = zlib.crc32(np.ascontiguousarray(indices, dtype=np.int32), crc)
    return zlib.crc32(np.ascontiguousarray(local_indptr, dtype=np.int64), crc)


def _create_flat(group: zarr.Group, name: str, dtype: np.dtype, fill: Any) -> zarr.Array:
    return group.create_array(
        name,
        shape=(0,),
        chunks=(FLAT_CHUNK,),
        shards=(FLAT_SHARD,),
        dtype=dtype,
        fill_value=fill,
        compressors=compressors_for(dtype),
        # Every chunk is written, so a missing chunk means damage, never "all fill".
        config={"write_empty_chunks": True},
    )


class _Appender:
    """Appends to a growing 1-D zarr array in whole shards.

    Buffering until a shard is full means every shard is encoded and written once,
    instead of being re-read and rewritten by each small append.
    """

    def __init__(self, array: zarr.Array) -> None:
        self.array = array
        self.pending: list[np.ndarray] = []
        self.n_pending = 0
        self.written = 0

    def append(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        self.pending.append(values)
        self.n_pending += values.size
        if self.n_pending >= FLAT_SHARD:
            self._write(final=False)

    def close(self) -> None:
        self._write(final=True)

    def _write(self, *, final: bool) -> None:
        if not self.n_pending:
            return
        buf = np.concatenate(self.pending)
        n = buf.size if final else buf.size - buf.size % FLAT_SHARD
        end = self.written + n
        self.array.resize((end,))
        self.array[self.written : end] = buf[:n]
        self.written = end
        rest = buf[n:]
        self.pending = [rest] if rest.size else []
        self.n_pending = rest.size


class SparseWriter:
    """Writes tiles, one row of tiles at a time, into a new sparse store group.

    Tiles are stored in canonical CSR form (sorted indices, duplicates summed) and,
    unless ``keep_zeros``, without explicit zeros.

    Examples
    --------
    >>> import uuid
    >>> meta = StoreMeta("sparse-tiled-csr", 1, (2, 2), (1, 2), np.dtype("f4"), 0, "u", False)
    >>> w = SparseWriter(zarr.open_group(zarr.storage.MemoryStore(), mode="w"), meta)
    >>> w.write_row(0, [sp.csr_matrix(np.eye(2, dtype="f4")[:1])])
    >>> w.write_row(1, [sp.csr_matrix((1, 2), dtype="f4")])
    >>> w.finish()
    1
    """

    def __init__(self, group: zarr.Group, meta: StoreMeta, *, keep_zeros: bool = False) -> None:
        self.group = group
        self.meta = meta
        self.keep_zeros = keep_zeros
        self.data = _Appender(_create_flat(group, DATA, meta.dtype, np.nan))
        self.indices = _Appender(_create_flat(group, INDICES, np.dtype(np.int32), INDEX_FILL))
        self.indptr = _Appender(_create_flat(group, INDPTR, np.dtype(np.int64), INDEX_FILL))
        self.offsets: list[int] = [0]
        self.crcs: list[int] = []
        self.bounds: list[tuple[int, int, int, int]] = []

    def write_row(self, i: int, tiles: list[Any]) -> None:
        """Append the tiles of tile row ``i`` (CSR-convertible, in column order)."""
        tr, tc = self.meta.tile_shape
        m, n = self.meta.shape
        rows = min(tr, m - i * tr)
        for j, tile in enumerate(tiles):
            expected = (rows, min(tc, n - j * tc))
            csr = _as_csr(tile, self.meta.dtype, keep_zeros=self.keep_zeros)
            if csr.shape != expected:
                raise ValueError(f"tile ({i}, {j}) has shape {csr.shape}, expected {expected}")
            start = self.offsets[-1]
            local = csr.indptr.astype(np.int64)
            indices = csr.indices.astype(np.int32, copy=False)
            self.data.append(csr.data)
            self.indices.append(indices)
            self.indptr.append(local + start)
            self.crcs.append(tile_crc(csr.data, indices, local))
            self.offsets.append(start + int(csr.nnz))
            r0, c0 = i * tr, j * tc
            self.bounds.append((r0, r0 + expected[0], c0, c0 + expected[1]))

    def finish(self) -> int:
        """Flush everything, write the tile index and return the total nnz."""
        for appender in (self.data, self.indices, self.indptr):
            appender.close()
        n_tiles = self.meta.n_tiles[0] * self.meta.n_tiles[1]
        if len(self.crcs) != n_tiles:
            raise ValueError(f"{len(self.crcs)} tiles written, {n_tiles} expected")
        for name, values, dtype in (
            (TILE_OFFSETS, self.offsets, np.int64),
            (TILE_CRC32, self.crcs, np.uint32),
            (TILE_BOUNDS, self.bounds, np.int64),
        ):
            arr = np.asarray(values, dtype=dtype)
            self.group.create_array(
                name,
                shape=arr.shape,
                chunks=(max(arr.shape[0], 1), *arr.shape[1:]),
                dtype=dtype,
                compressors=compressors_for(arr.dtype),
                config={"write_empty_chunks": True},
            )[:] = arr
        return self.offsets[-1]


def _as_csr(tile: Any, dtype: np.dtype, *, keep_zeros: bool) -> sp.csr_matrix:
    if sp.issparse(tile):
        # Copy: the canonicalisation below works in place and must not touch the
        # caller's matrix.
        csr = sp.csr_matrix(tile, dtype=dtype, copy=True)
    else:
        csr = sp.csr_matrix(np.asarray(tile, dtype=dtype))
    # Canonical form (sorted, no duplicates, no explicit zeros): equal matrices give
    # equal stores, and nnz counts only real non-zeros. With keep_zeros a stored zero
    # is an observation (a rating of 0) and must survive; the reader never drops it.
    csr.sum_duplicates()
    if not keep_zeros:
        csr.eliminate_zeros()
    return csr


class SparseTileSource(TileSource):
    """Reads one CSR tile; locator = ``(data_start, data_stop, indptr_start, crc)``."""

    array_names: ClassVar[tuple[str, ...]] = (DATA, INDICES, INDPTR)

    def read(self, arrays: dict[str, zarr.Array], i: int, j: int, *locator: int) -> sp.csr_matrix:
        start, stop, p0, crc = locator
        r0, r1, c0, c1 = self.tile_bounds(i, j)
        rows, cols = r1 - r0, c1 - c0
        indptr = np.asarray(arrays[INDPTR][p0 : p0 + rows + 1], dtype=np.int64)
        if indptr.size != rows + 1:
            raise self.corrupt(i, j, f"indptr has {indptr.size} entries, expected {rows + 1}")
        if indptr[0] != start or indptr[-1] != stop:
            raise self.corrupt(
                i,
                j,
                f"indptr spans [{indptr[0]}, {indptr[-1]}] but the tile index says "
                f"[{start}, {stop}] (nnz mismatch)",
            )
        if np.any(np.diff(indptr) < 0):
            raise self.corrupt(i, j, "indptr is not monotone")
        data = np.asarray(arrays[DATA][start:stop])
        indices = np.asarray(arrays[INDICES][start:stop])
        if data.size != stop - start or indices.size != stop - start:
            raise self.corrupt(i, j, "data or indices shorter than the tile index says")
        if indices.size and (indices.min() < 0 or indices.max() >= cols):
            raise self.corrupt(i, j, f"column indices outside [0, {cols})")
        local = indptr - start
        if tile_crc(data, indices, local) != crc:
            raise self.corrupt(i, j, "checksum mismatch (damaged chunk)")
        return sp.csr_matrix((data, indices, local), shape=(rows, cols), copy=False)


def _bounds_problems(written: np.ndarray, meta: StoreMeta) -> list[str]:
    """How the tiles' bounds as written disagree with the shape and tiling the
    metadata claims (empty when they agree)."""
    (row_chunks, col_chunks), (n_rows, n_cols) = meta.chunks, meta.n_tiles
    r_edges, c_edges = np.cumsum((0, *row_chunks)), np.cumsum((0, *col_chunks))
    claimed = np.array(
        [
            (r_edges[i], r_edges[i + 1], c_edges[j], c_edges[j + 1])
            for i in range(n_rows)
            for j in range(n_cols)
        ],
        dtype=np.int64,
    ).reshape(-1, 4)
    if written.shape == claimed.shape and np.array_equal(written, claimed):
        return []
    if written.ndim != 2 or written.shape[1:] != (4,) or written.size == 0:
        return [f"the tile bounds array has shape {written.shape}, expected {claimed.shape}"]
    shape = (int(written[:, 1].max()), int(written[:, 3].max()))
    first = next(
        (t for t in range(min(len(written), len(claimed))) if (written[t] != claimed[t]).any()),
        min(len(written), len(claimed)),
    )
    return [
        f"the metadata says shape {meta.shape} in tiles of {meta.tile_shape}, but the "
        f"tiles were written for shape {shape} ({len(written)} tiles; tile {first} "
        "first differs): the metadata record was changed or belongs to another store"
    ]


def open_sparse(group: zarr.Group, meta: StoreMeta, source_kwargs: dict[str, Any]) -> Any:
    """Validate a sparse store's arrays against ``meta`` and return its dask array."""
    path = source_kwargs["path"]
    try:
        offsets = np.asarray(group[TILE_OFFSETS][:], dtype=np.int64)
        crcs = np.asarray(group[TILE_CRC32][:], dtype=np.int64)
        lengths = {name: group[name].shape for name in (DATA, INDICES, INDPTR)}
    except (KeyError, FileNotFoundError, RuntimeError, ValueError) as exc:
        raise CorruptStoreError(f"store {path!r}: missing or unreadable array: {exc}") from exc
    n_rows, n_cols = meta.n_tiles
    row_chunks, col_chunks = meta.chunks
    n_tiles = n_rows * n_cols
    problems = []
    if offsets.shape != (n_tiles + 1,) or crcs.shape != (n_tiles,):
        problems.append(f"tile index has {offsets.size - 1} tiles, metadata says {n_tiles}")
    elif offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] != meta.nnz:
        problems.append(f"tile offsets are not monotone from 0 to nnz={meta.nnz}")
    expected_indptr = sum((r + 1) * n_cols for r in row_chunks)
    for name, want in ((DATA, meta.nnz), (INDICES, meta.nnz), (INDPTR, expected_indptr)):
        if lengths[name] != (want,):
            problems.append(f"array {name!r} has shape {lengths[name]}, expected ({want},)")
    if not problems and TILE_BOUNDS in group:
        problems += _bounds_problems(np.asarray(group[TILE_BOUNDS][:]), meta)
    if problems:
        raise CorruptStoreError(f"store {path!r} is inconsistent: " + "; ".join(problems))

    locators: list[list[tuple[int, ...]]] = []
    p0 = 0
    for i, rows in enumerate(row_chunks):
        row = []
        for j in range(n_cols):
            t = i * n_cols + j
            row.append((int(offsets[t]), int(offsets[t + 1]), p0, int(crcs[t])))
            p0 += rows + 1
        locators.append(row)
    source = SparseTileSource(**source_kwargs)
    meta_obj = sp.csr_matrix((0, 0), dtype=meta.dtype)
    logger.debug("opened sparse store %s: %d x %d tiles", path, n_rows, n_cols)
    return tile_array(source, (row_chunks, col_chunks), locators, meta_obj, "dasknmf-sparse")
