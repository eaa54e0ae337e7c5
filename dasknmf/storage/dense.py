"""The dense format: one 2-D zarr array whose chunks are the tiles.

Tiles are read through a :class:`DenseTileSource` rather than ``da.from_zarr`` so
both formats share the same process-local handle cache, the uuid check against a
replaced store, and the per-tile CRC-32 (``tile_crc32``; a damaged chunk can decode
to garbage without error, and a missing one reads back as fill).
"""

from __future__ import annotations

import logging
import zlib
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import zarr

from dasknmf.errors import CorruptStoreError

from .layout import TILE_CRC32, VALUES, StoreMeta, compressors_for
from .reader import TileSource, tile_array

__all__ = ["DenseTileSource", "DenseWriter", "open_dense"]

logger = logging.getLogger(__name__)


class DenseWriter:
    """Writes tiles, one row of tiles at a time, into a new dense store group.

    Examples
    --------
    >>> meta = StoreMeta("dense", 1, (2, 2), (1, 2), np.dtype("f8"), 0, "u", False)
    >>> w = DenseWriter(zarr.open_group(zarr.storage.MemoryStore(), mode="w"), meta)
    >>> w.write_row(0, [np.array([[1.0, 0.0]])])
    >>> w.write_row(1, [np.array([[2.0, 3.0]])])
    >>> w.finish()
    3
    """

    def __init__(self, group: zarr.Group, meta: StoreMeta) -> None:
        self.group = group
        self.meta = meta
        self.values = group.create_array(
            VALUES,
            shape=meta.shape,
            chunks=meta.tile_shape,
            dtype=meta.dtype,
            fill_value=np.nan,
            compressors=compressors_for(meta.dtype),
            config={"write_empty_chunks": True},
        )
        self.nnz = 0
        self.crcs: list[int] = []

    def write_row(self, i: int, tiles: list[Any]) -> None:
        """Write the tiles of tile row ``i`` (array-like or scipy.sparse, in column order)."""
        tr, tc = self.meta.tile_shape
        m, n = self.meta.shape
        r0, r1 = i * tr, min((i + 1) * tr, m)
        for j, tile in enumerate(tiles):
            c0, c1 = j * tc, min((j + 1) * tc, n)
            block = tile.toarray() if sp.issparse(tile) else np.asarray(tile)
            block = np.ascontiguousarray(block, dtype=self.meta.dtype)
            if block.shape != (r1 - r0, c1 - c0):
                raise ValueError(
                    f"tile ({i}, {j}) has shape {block.shape}, expected {(r1 - r0, c1 - c0)}"
                )
            self.values[r0:r1, c0:c1] = block
            self.nnz += int(np.count_nonzero(block))
            self.crcs.append(zlib.crc32(block))

    def finish(self) -> int:
        """Write the tile checksums and return the number of non-zeros."""
        crcs = np.asarray(self.crcs, dtype=np.uint32)
        self.group.create_array(
            TILE_CRC32,
            shape=crcs.shape,
            chunks=(max(crcs.size, 1),),
            dtype=crcs.dtype,
            compressors=compressors_for(crcs.dtype),
        )[:] = crcs
        return self.nnz


class DenseTileSource(TileSource):
    """Reads one dense tile; locator = ``(crc,)``."""

    array_names: ClassVar[tuple[str, ...]] = (VALUES,)

    def read(self, arrays: dict[str, zarr.Array], i: int, j: int, *locator: int) -> np.ndarray:
        (crc,) = locator
        r0, r1, c0, c1 = self.tile_bounds(i, j)
        block = np.ascontiguousarray(arrays[VALUES][r0:r1, c0:c1])
        if zlib.crc32(block) != crc:
            raise self.corrupt(i, j, "checksum mismatch (damaged or missing chunk)")
        return block


def open_dense(group: zarr.Group, meta: StoreMeta, source_kwargs: dict[str, Any]) -> Any:
    """Validate a dense store's arrays against ``meta`` and return its dask array."""
    path = source_kwargs["path"]
    try:
        values = group[VALUES]
        crcs = np.asarray(group[TILE_CRC32][:], dtype=np.int64)
    except (KeyError, FileNotFoundError, RuntimeError, ValueError) as exc:
        raise CorruptStoreError(f"store {path!r}: missing or unreadable array: {exc}") from exc
    n_rows, n_cols = meta.n_tiles
    if (
        values.shape != meta.shape
        or values.chunks != meta.tile_shape
        or values.dtype != meta.dtype
        or crcs.shape != (n_rows * n_cols,)
    ):
        raise CorruptStoreError(
            f"store {path!r} is inconsistent: values array {values.shape} {values.dtype} "
            f"chunks {values.chunks}, {crcs.size} checksums; metadata says {meta.shape} "
            f"{meta.dtype} tiles {meta.tile_shape}"
        )
    locators = [[(int(crcs[i * n_cols + j]),) for j in range(n_cols)] for i in range(n_rows)]
    source = DenseTileSource(**source_kwargs)
    logger.debug("opened dense store %s: %d x %d tiles", path, n_rows, n_cols)
    meta_obj = np.empty((0, 0), dtype=meta.dtype)
    return tile_array(source, meta.chunks, locators, meta_obj, "dasknmf-dense")
