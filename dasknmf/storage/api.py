"""Public entry points: write, open and describe matrix stores."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import dask.array as da
import numpy as np
import zarr

from dasknmf.errors import InvalidParameterError
from dasknmf.params import check_chunks, check_float_dtype, check_option

from .atomic import atomic_store
from .chunking import default_chunks
from .dense import DenseWriter, open_dense
from .layout import (
    DENSE_FORMAT,
    FORMAT_VERSION,
    FORMATS,
    ID_ARRAYS,
    MARKER_KEY,
    SPARSE_FORMAT,
    StoreMeta,
    parse_meta,
)
from .location import StoreLocation
from .sparse import SparseWriter, open_sparse
from .tiling import InputMatrix, iter_tile_rows, prepare_input, stored_dtype

__all__ = [
    "MatrixInfo",
    "WritePlan",
    "clip_chunks",
    "matrix_info",
    "open_matrix",
    "open_store_meta",
    "plan_write",
    "write_matrix",
    "write_plan",
]

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
    keep_zeros: bool = False,
    shape: tuple[int, int] | None = None,
) -> None:
    """Write a 2-D matrix to a tiled zarr store.

    Parameters
    ----------
    X : numpy.ndarray, scipy.sparse matrix or array, dask.array.Array, or row blocks
        The matrix. Dask arrays may have numpy or scipy.sparse chunks; they are
        computed one row of tiles at a time, so ``X`` may be larger than memory.
        **Row blocks**, for a matrix larger than memory built piece by piece: an
        iterator (such as a generator) or a list of 2-D numpy arrays or
        scipy.sparse matrices, stacked top to bottom, of any heights. They are read
        once, one at a time, each checked against ``shape`` as it arrives, and
        re-cut into rows of tiles: memory holds one block and one row of tiles.
        The first block decides the format and dtype; with ``chunks=None`` the
        tile shape assumes the first block's density for the whole matrix.
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
    keep_zeros : bool, default False
        Sparse format only: store the explicit zeros of scipy.sparse input (and of
        dask arrays of scipy.sparse chunks) as entries, for data where a stored 0 is
        an observation (a rating of 0), not an absent entry. They count in ``nnz``
        and read back as stored entries. By default they are dropped.
    shape : tuple of int, optional
        ``(rows, columns)`` of the whole matrix: required when ``X`` is an iterator
        of row blocks (its length is known only at its end); checked against ``X``
        otherwise.

    Raises
    ------
    InvalidInputError
        ``X`` is not a non-empty 2-D array of real numbers; or a row block is not
        a 2-D array of real numbers, has other than ``shape[1]`` columns, goes past
        ``shape[0]`` rows, or the blocks end before it (the message names the
        block, counting from 0, and its first row; nothing is written).
    InvalidParameterError
        ``chunks``, ``format``, ``dtype`` or ``storage_options`` is invalid, or
        ``keep_zeros`` is set for the dense format.
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
    >>> zeros = sp.csr_matrix((np.array([0.0, 2.0]), ([0, 1], [1, 0])), shape=(2, 2))
    >>> write_matrix(zeros, "memory://doc-w0", keep_zeros=True)
    >>> matrix_info("memory://doc-w0").nnz
    2

    A matrix written from a generator of row blocks, one block in memory at a time:

    >>> blocks = (sp.random(1_000, 50, density=0.1, format="csr", rng=i) for i in range(4))
    >>> write_matrix(blocks, "memory://doc-wb", shape=(4_000, 50))
    >>> matrix_info("memory://doc-wb").shape
    (4000, 50)
    """
    loc = StoreLocation.from_user(path, storage_options)
    plan = plan_write(
        X, chunks=chunks, format=format, dtype=dtype, keep_zeros=keep_zeros, shape=shape
    )
    with atomic_store(loc, overwrite=overwrite) as target:
        final = write_plan(plan, target)
    logger.info(
        "wrote %s store %s: shape %s, %d non-zeros, tiles %s",
        final.kind,
        loc.path,
        final.shape,
        final.nnz,
        final.tile_shape,
    )


@dataclass(frozen=True)
class WritePlan:
    """A validated write: the input, the metadata to store, and how to write it.

    Made by :func:`plan_write` before any target is touched, so that bad input or
    parameters are reported before an existing store is even looked at.
    """

    matrix: InputMatrix
    meta: StoreMeta
    keep_zeros: bool


def plan_write(
    X: Any,
    *,
    chunks: tuple[int, int] | None,
    format: Literal["sparse", "dense"] | None,
    dtype: Any,
    keep_zeros: bool,
    shape: tuple[int, int] | None = None,
) -> WritePlan:
    """Validate the arguments of :func:`write_matrix` (except the target).

    For row blocks this reads the first block; the others are checked as they are
    written."""
    matrix = prepare_input(X, shape)
    kind = check_option("format", format, (None, "sparse", "dense")) or (
        "sparse" if matrix.sparse else "dense"
    )
    if keep_zeros and kind == "dense":
        raise InvalidParameterError(
            "The 'keep_zeros' parameter applies to the sparse format only (a dense store "
            "cannot tell a stored zero from an absent entry); got keep_zeros=True for a "
            f"dense store (format={format!r}); pass format='sparse'."
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
    return WritePlan(matrix, meta, bool(keep_zeros))


def write_plan(
    plan: WritePlan,
    target: StoreLocation,
    *,
    extra: Callable[[zarr.Group], None] | None = None,
) -> StoreMeta:
    """Write a planned store into ``target`` (a location from :func:`atomic_store`).

    ``extra`` may add arrays to the group (id mappings); it runs after the matrix is
    written and before the store is marked complete, so a complete store always has
    them. Returns the final metadata.
    """
    meta = plan.meta
    group = target.open_group("w")
    # The marker goes first (complete=False) so an interrupted in-place write is
    # recognisable as ours: refused by readers, replaceable with overwrite=True.
    group.update_attributes({MARKER_KEY: meta.to_attrs()})
    if meta.kind == "sparse":
        writer: SparseWriter | DenseWriter = SparseWriter(group, meta, keep_zeros=plan.keep_zeros)
    else:
        writer = DenseWriter(group, meta)
    for i, row in enumerate(iter_tile_rows(plan.matrix, meta.tile_shape)):
        writer.write_row(i, row)
    nnz = writer.finish()
    if extra is not None:
        extra(group)
    final = replace(meta, nnz=nnz, complete=True)
    group.update_attributes({MARKER_KEY: final.to_attrs()})
    return final


def open_store_meta(
    path: str | os.PathLike[str], storage_options: dict[str, Any] | None
) -> tuple[StoreLocation, Any, StoreMeta]:
    """Open an existing store: its location, zarr group and validated metadata."""
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
    loc, group, meta = open_store_meta(path, storage_options)
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
    has_row_ids: bool = False
    has_col_ids: bool = False

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
        if self.has_row_ids or self.has_col_ids:
            axes = [
                a for a, has in (("rows", self.has_row_ids), ("columns", self.has_col_ids)) if has
            ]
            rows.append(("ids", f"stored for {' and '.join(axes)} (dasknmf.storage.read_ids)"))
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
    loc, group, meta = open_store_meta(path, storage_options)
    m, n = meta.shape
    has_ids = [name in group for name in ID_ARRAYS]
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
        has_row_ids=has_ids[0],
        has_col_ids=has_ids[1],
    )


def clip_chunks(chunks: Any, shape: tuple[int, int]) -> tuple[int, int]:
    """A checked tile shape, no larger than the matrix."""
    rows, cols = check_chunks("chunks", chunks)
    return min(rows, shape[0]), min(cols, shape[1])
