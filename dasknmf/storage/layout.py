"""On-disk layout of dasknmf matrix stores: names, codecs and the metadata record.

A store is a zarr v3 group whose attributes hold one JSON object under the key
``"dasknmf"`` (see :class:`StoreMeta`). Everything a reader needs to find a tile is in
that record plus two tiny per-tile index arrays; the bulk arrays are described in
``docs/storage.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from zarr.codecs import BloscCodec

from dasknmf.errors import CorruptStoreError, NotAStoreError, UnsupportedFormatError

__all__ = [
    "DENSE_FORMAT",
    "FORMAT_VERSION",
    "MARKER_KEY",
    "SPARSE_FORMAT",
    "StoreMeta",
    "compressors_for",
    "grid_chunks",
    "parse_meta",
]

MARKER_KEY = "dasknmf"
"""Group attribute holding the :class:`StoreMeta` record."""

SPARSE_FORMAT = "sparse-tiled-csr"
DENSE_FORMAT = "dense"
FORMATS: dict[str, Literal["sparse", "dense"]] = {SPARSE_FORMAT: "sparse", DENSE_FORMAT: "dense"}

FORMAT_VERSION = 1
"""Bumped whenever a reader of the previous version could misread a new store."""

# Array names inside the group.
DATA = "data"
INDICES = "indices"
INDPTR = "indptr"
TILE_OFFSETS = "tile_offsets"
TILE_CRC32 = "tile_crc32"
# Sparse stores: each tile's (first row, end row, first column, end column) as written,
# so that a metadata record whose shape or tiling disagrees with the tiles is caught
# when the store is opened (stores written before it lack it and are not checked).
TILE_BOUNDS = "tile_bounds"
VALUES = "values"
# Optional 1-D string arrays mapping row / column indices back to the ids of an
# ingested triplet file (storage/ids.py); readers of the matrix ignore them.
ROW_IDS = "row_ids"
COL_IDS = "col_ids"
ID_ARRAYS = (ROW_IDS, COL_IDS)

# The bulk sparse arrays are sharded: one stored object (shard) per 4 Mi elements
# (16-32 MiB uncompressed) keeps the object count and request count low on object
# stores, while inner chunks of 128 Ki elements are compressed separately and read by
# byte range, so reading a small tile decodes little beyond it.
FLAT_SHARD = 2**22
FLAT_CHUNK = 2**17

# Fill values double as sentinels: a chunk missing from the store reads back as fill,
# and -1 is never a valid index or offset, so a lost index chunk fails validation
# instead of silently decoding as zeros. (The per-tile CRC catches lost data chunks.)
INDEX_FILL = -1

STORED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def compressors_for(dtype: np.dtype) -> tuple[BloscCodec, ...]:
    """Codec chain for one stored array: Blosc + zstd with byte shuffle.

    Shuffle groups the bytes of equal significance together, which is what makes
    int32 column indices, monotone int64 offsets and float values compress well.

    Examples
    --------
    >>> compressors_for(np.dtype("int32"))[0].cname.value
    'zstd'
    """
    return (BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=dtype.itemsize),)


@dataclass(frozen=True)
class StoreMeta:
    """The metadata record stored under the ``"dasknmf"`` group attribute.

    Attributes
    ----------
    format : str
        :data:`SPARSE_FORMAT` or :data:`DENSE_FORMAT`.
    version : int
        Layout version, :data:`FORMAT_VERSION` when written by this code.
    shape, tile_shape : tuple of int
        Matrix shape and the tile shape (the last row/column of tiles may be smaller).
    dtype : numpy.dtype
        float32 or float64.
    nnz : int
        Number of stored non-zeros (for dense stores, counted at write time).
    uuid : str
        Random id written at creation; it enters dask keys and is re-checked by workers.
    complete : bool
        Written ``True`` only after every array is fully written.

    Examples
    --------
    >>> m = StoreMeta("dense", 1, (4, 3), (2, 3), np.dtype("float32"), 5, "ab", True)
    >>> m.n_tiles
    (2, 1)
    """

    format: str
    version: int
    shape: tuple[int, int]
    tile_shape: tuple[int, int]
    dtype: np.dtype
    nnz: int
    uuid: str
    complete: bool

    @property
    def kind(self) -> Literal["sparse", "dense"]:
        """``"sparse"`` or ``"dense"``."""
        return FORMATS[self.format]

    @property
    def n_tiles(self) -> tuple[int, int]:
        """Number of tile rows and tile columns."""
        return (
            _ceil_div(self.shape[0], self.tile_shape[0]),
            _ceil_div(self.shape[1], self.tile_shape[1]),
        )

    @property
    def chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Dask-style chunk sizes of the tile grid."""
        return grid_chunks(self.shape, self.tile_shape)

    def to_attrs(self) -> dict[str, Any]:
        """JSON-serialisable form stored in the group attributes."""
        return {
            "format": self.format,
            "version": self.version,
            "shape": list(self.shape),
            "tile_shape": list(self.tile_shape),
            "dtype": self.dtype.name,
            "nnz": int(self.nnz),
            "uuid": self.uuid,
            "complete": self.complete,
        }


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def grid_chunks(
    shape: tuple[int, int], tile_shape: tuple[int, int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Chunk sizes along both axes for ``shape`` cut into ``tile_shape`` tiles.

    Examples
    --------
    >>> grid_chunks((5, 4), (2, 4))
    ((2, 2, 1), (4,))
    """
    out = []
    for size, tile in zip(shape, tile_shape, strict=True):
        full, rest = divmod(size, tile)
        out.append((tile,) * full + ((rest,) if rest else ()))
    return out[0], out[1]


def parse_meta(attrs: Mapping[str, Any], path: str) -> StoreMeta:
    """Validate group attributes and return the store's :class:`StoreMeta`.

    Raises
    ------
    NotAStoreError
        The attributes carry no dasknmf marker (a foreign zarr group).
    UnsupportedFormatError
        The store was written by a newer, incompatible dasknmf.
    CorruptStoreError
        The marker is malformed or the write never completed.

    Examples
    --------
    >>> rec = {"format": "dense", "version": 1, "shape": [4, 3], "tile_shape": [2, 3],
    ...        "dtype": "float64", "nnz": 3, "uuid": "u", "complete": True}
    >>> parse_meta({"dasknmf": rec}, "x").shape
    (4, 3)
    """
    rec = attrs.get(MARKER_KEY)
    if not isinstance(rec, Mapping) or rec.get("format") not in FORMATS:
        raise NotAStoreError(
            f"{path!r} is a zarr group but not a dasknmf matrix store "
            f"(no valid {MARKER_KEY!r} attribute); write one with dasknmf.storage.write_matrix"
        )
    version = rec.get("version")
    if not isinstance(version, int) or version < 1:
        raise CorruptStoreError(f"store {path!r}: invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"store {path!r} has format version {version}; this dasknmf reads versions "
            f"up to {FORMAT_VERSION}; upgrade dasknmf"
        )
    if rec.get("complete") is not True:
        raise CorruptStoreError(
            f"store {path!r} is incomplete: its write was interrupted before it finished; "
            "write it again (write_matrix(..., overwrite=True))"
        )
    try:
        meta = StoreMeta(
            format=rec["format"],
            version=version,
            shape=_pair(rec["shape"]),
            tile_shape=_pair(rec["tile_shape"]),
            dtype=np.dtype(rec["dtype"]),
            nnz=_nonneg_int(rec["nnz"]),
            uuid=str(rec["uuid"]),
            complete=True,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptStoreError(
            f"store {path!r}: malformed metadata {dict(rec)!r}: {exc}"
        ) from exc
    if meta.dtype not in STORED_DTYPES:
        raise CorruptStoreError(f"store {path!r}: unsupported stored dtype {meta.dtype}")
    if meta.nnz > math.prod(meta.shape):
        raise CorruptStoreError(f"store {path!r}: nnz {meta.nnz} exceeds shape {meta.shape}")
    return meta


def _nonneg_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def _pair(value: Any) -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"expected two integers, got {value!r}")
    a, b = (_nonneg_int(v) for v in value)
    if a == 0 or b == 0:
        raise ValueError(f"expected positive integers, got {value!r}")
    return a, b
