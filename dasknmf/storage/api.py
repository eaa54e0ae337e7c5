"""Public entry points: write, open and describe matrix stores."""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, replace
from typing import Any, Literal

import dask.array as da
import numpy as np

from dasknmf.params import check_chunks, check_float_dtype, check_option

from .atomic import atomic_store
from .chunking import default_chunks
from .dense import DenseWriter, open_dense
from .layout import (
    DENSE_FORMAT,
    FORMAT_VERSION,
    FORMATS,
    MARKER_KEY,
    SPARSE_FORMAT,
    StoreMeta,
    parse_meta,
)
from .location import StoreLocation
from .sparse import SparseWriter, open_sparse
from .tiling import iter_tile_rows, prepare_input, stored_dtype

__all__ = ["MatrixInfo", "matrix_info", "open_matrix", "write_matrix"]

logger = logging.getLogger(__name__)


def write_matrix(
    X: Any,
    path: str | os.PathLike[str],
    *,
    chunks: tuple[int, int] | None = None,
    format: Literal["sparse", "dense"] | None = None,
    dtype: Any = None,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> None:
    """Write a 2-D matrix to a tiled zarr store.

    Parameters
    ----------
    X : numpy.ndarray, scipy.sparse matrix or array, or dask.array.Array
        The matrix. Dask arrays may have numpy or scipy.sparse chunks; they are
        computed one row of tiles at a time, so ``X`` may be larger than memory.
    path : str or os.PathLike
        A local directory or an fsspec URL (``"s3://bucket/v.zarr"``).
    chunks : tuple of int, optional
        Tile shape ``(rows, cols)``, clipped to the matrix shape. Default:
        :func:`default_chunks` (for dask input with ``format="sparse"``, the density
        used there is estimated from the first block).
    format : {"sparse", "dense"}, optional
        Storage format. Default: sparse for scipy.sparse input and dask arrays of
        scipy.sparse chunks, dense otherwise. Either input may be converted.
    dtype : dtype-like, optional
        float32 or float64. Default: float inputs keep their dtype (float16 widens
        to float32); integer and boolean inputs are stored as float32.
    overwrite : bool, default False
        Replace an existing dasknmf store at ``path``. A path holding anything else
        (except an empty local directory) is never replaced.
    storage_options : dict, optional
        fsspec options for URL paths.

    Raises
    ------
    InvalidInputError
        ``X`` is not a non-empty 2-D array of real numbers.
    InvalidParameterError
        ``chunks``, ``format``, ``dtype`` or ``storage_options`` is invalid.
    StoreExistsError
        ``path`` exists and ``overwrite`` is False.
    NotAStoreError
        ``overwrite`` is True but ``path`` holds something other than a dasknmf store.

    Notes
    -----
    Local paths are written to a hidden temporary sibling and renamed into place:
    after a crash ``path`` holds the old store or the new one. URL paths are written
    in place and marked complete last; an interrupted write is refused by
    :func:`open_matrix`. Negative values and NaN are stored as given.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> write_matrix(sp.random(100, 50, density=0.1, format="csr"), "memory://doc-w",
    ...              chunks=(32, 50))
    >>> open_matrix("memory://doc-w").chunks
    ((32, 32, 32, 4), (50,))
    """
    loc = StoreLocation.from_user(path, storage_options)
    matrix = prepare_input(X)
    kind = check_option("format", format, (None, "sparse", "dense")) or (
        "sparse" if matrix.sparse else "dense"
    )
    out_dtype = check_float_dtype("dtype", dtype) or stored_dtype(matrix.dtype)
    if chunks is None:
        nnz = matrix.estimate_nnz() if kind == "sparse" else None
        tile_shape = default_chunks(matrix.shape, nnz=nnz, itemsize=out_dtype.itemsize)
    else:
        tile_shape = clip_chunks(chunks, matrix.shape)
    meta = StoreMeta(
        format=SPARSE_FORMAT if kind == "sparse" else DENSE_FORMAT,
        version=FORMAT_VERSION,
        shape=matrix.shape,
        tile_shape=tile_shape,
        dtype=out_dtype,
        nnz=0,
        uuid=uuid.uuid4().hex,
        complete=False,
    )
    with atomic_store(loc, overwrite=overwrite) as target:
        group = target.open_group("w")
        # The marker goes first (complete=False) so an interrupted in-place write is
        # recognisable as ours: refused by readers, replaceable with overwrite=True.
        group.update_attributes({MARKER_KEY: meta.to_attrs()})
        writer = (SparseWriter if kind == "sparse" else DenseWriter)(group, meta)
        for i, row in enumerate(iter_tile_rows(matrix, tile_shape)):
            writer.write_row(i, row)
        nnz = writer.finish()
        final = replace(meta, nnz=nnz, complete=True)
        group.update_attributes({MARKER_KEY: final.to_attrs()})
    logger.info(
        "wrote %s store %s: shape %s, %d non-zeros, tiles %s",
        kind,
        loc.path,
        matrix.shape,
        nnz,
        tile_shape,
    )


def _open_meta(
    path: str | os.PathLike[str], storage_options: dict[str, Any] | None
) -> tuple[StoreLocation, Any, StoreMeta]:
    loc = StoreLocation.from_user(path, storage_options)
    group = loc.open_existing()
    return loc, group, parse_meta(group.attrs, loc.path)


def open_matrix(
    path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
) -> da.Array:
    """Open a store lazily as a dask array whose chunks are its tiles.

    Only metadata and the per-tile index (a few numbers per tile) are read here;
    each task reads its own tile when computed, in whichever process runs it.

    Parameters
    ----------
    path : str or os.PathLike
        Local directory or fsspec URL written by :func:`write_matrix`.
    storage_options : dict, optional
        fsspec options for URL paths.

    Returns
    -------
    dask.array.Array
        Chunk ``(i, j)`` is tile ``(i, j)``: a ``scipy.sparse.csr_matrix`` for sparse
        stores, a ``numpy.ndarray`` for dense stores.

    Raises
    ------
    StoreNotFoundError
        Nothing exists at ``path``.
    NotAStoreError
        ``path`` is not a dasknmf store.
    CorruptStoreError
        The store is incomplete or inconsistent. A damaged tile raises it (naming
        the tile) when that tile is computed.

    Examples
    --------
    >>> import numpy as np
    >>> write_matrix(np.arange(12.0).reshape(4, 3), "memory://doc-o", chunks=(2, 3))
    >>> V = open_matrix("memory://doc-o")
    >>> float(V.sum().compute())
    66.0
    """
    loc, group, meta = _open_meta(path, storage_options)
    source_kwargs = {
        "path": loc.path,
        "storage_options": loc.storage_options,
        "uuid": meta.uuid,
        "shape": meta.shape,
        "tile_shape": meta.tile_shape,
        "dtype": meta.dtype,
    }
    opener = open_sparse if meta.kind == "sparse" else open_dense
    return opener(group, meta, source_kwargs)


@dataclass(frozen=True)
class MatrixInfo:
    """Summary of a matrix store, as returned by :func:`matrix_info`.

    Examples
    --------
    >>> import numpy as np
    >>> write_matrix(np.eye(3), "memory://doc-mi")
    >>> matrix_info("memory://doc-mi").nnz
    3
    """

    path: str
    format: Literal["sparse", "dense"]
    shape: tuple[int, int]
    dtype: np.dtype
    nnz: int
    density: float
    tile_shape: tuple[int, int]
    n_tiles: tuple[int, int]
    bytes_on_disk: int
    format_version: int

    def __str__(self) -> str:
        m, n = self.shape
        tr, tc = self.tile_shape
        rows = [
            ("path", self.path),
            ("format", f"{self.format} (layout version {self.format_version})"),
            ("shape", f"{m:,} x {n:,}"),
            ("dtype", str(self.dtype)),
            ("non-zeros", f"{self.nnz:,} (density {self.density:.4%})"),
            ("tiles", f"{self.n_tiles[0]:,} x {self.n_tiles[1]:,} of {tr:,} x {tc:,}"),
            ("on disk", _human_bytes(self.bytes_on_disk)),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}} : {v}" for k, v in rows)


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n:,} B" if unit == "B" else f"{size:.1f} {unit} ({n:,} B)"
        size /= 1024
    raise AssertionError("unreachable")


def matrix_info(
    path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
) -> MatrixInfo:
    """Describe a store from its metadata (no tile is read).

    Parameters
    ----------
    path : str or os.PathLike
        Local directory or fsspec URL.
    storage_options : dict, optional
        fsspec options for URL paths.

    Returns
    -------
    MatrixInfo
        ``str(info)`` is a readable multi-line summary.

    Examples
    --------
    >>> import numpy as np
    >>> write_matrix(np.eye(4), "memory://doc-info", chunks=(2, 4))
    >>> matrix_info("memory://doc-info").n_tiles
    (2, 1)
    """
    loc, _group, meta = _open_meta(path, storage_options)
    m, n = meta.shape
    return MatrixInfo(
        path=loc.path,
        format=FORMATS[meta.format],
        shape=meta.shape,
        dtype=meta.dtype,
        nnz=meta.nnz,
        density=meta.nnz / (m * n),
        tile_shape=meta.tile_shape,
        n_tiles=meta.n_tiles,
        bytes_on_disk=loc.bytes_on_disk(),
        format_version=meta.version,
    )


def clip_chunks(chunks: Any, shape: tuple[int, int]) -> tuple[int, int]:
    """A checked tile shape, no larger than the matrix."""
    rows, cols = check_chunks("chunks", chunks)
    return min(rows, shape[0]), min(cols, shape[1])
