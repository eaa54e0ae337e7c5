"""Ingest of AnnData files (``.h5ad``, AnnData ``.zarr``) into stores.

The matrix (``X`` or a layer) is read by :class:`~dasknmf.ingest.anndata.files.AnnDataFile`
one slice at a time and handed to the writer as a lazy dask array:

- CSR and dense matrices: chunk ``(i, j)`` reads row block ``i`` (one row of tiles)
  and cuts tile ``(i, j)`` out of it, so the file is read once, in row order, one row
  block at a time;
- CSC matrices are stored column by column, so a row block is scattered over the
  whole file: their entries are streamed ``block_size`` at a time and bucketed by row
  block into spill files (:class:`~dasknmf.ingest.spill.RowBlockSpill`, as for
  MatrixMarket files), from which the store is written.

``obs_names`` and ``var_names`` become the store's ``row_ids`` and ``col_ids``.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp
from dask.highlevelgraph import HighLevelGraph

from dasknmf.params import check_chunks, check_float_dtype, check_int, check_option
from dasknmf.storage import (
    COL_IDS,
    ROW_IDS,
    MatrixInfo,
    StoreLocation,
    atomic_store,
    check_target,
    clip_chunks,
    default_chunks,
    grid_chunks,
    matrix_info,
    plan_write,
    stored_dtype,
    write_ids,
    write_plan,
)

from ..spill import RowBlockSpill
from ..values import InvalidValues
from .files import AnnDataFile

__all__ = ["DEFAULT_BLOCK_ENTRIES", "AnnDataIngest", "ingest_anndata"]

logger = logging.getLogger(__name__)

DEFAULT_BLOCK_ENTRIES = 2**20
"""Entries of a CSC matrix read at once: about 70 MiB while they are bucketed."""


@dataclass(frozen=True)
class AnnDataIngest:
    """What :func:`ingest_anndata` wrote.

    Attributes
    ----------
    store : MatrixInfo
        The new store.
    source : str
        The AnnData file.
    element : str
        ``"X"`` or ``"layers/<name>"``.
    encoding : {"csr", "csc", "dense"}
        How the matrix was stored in the file.
    row_ids, col_ids : str
        Where ``obs_names`` and ``var_names`` are stored (zarr arrays inside the
        store); read them with :func:`~dasknmf.storage.read_ids`.
    """

    store: MatrixInfo
    source: str
    element: str
    encoding: Literal["csr", "csc", "dense"]
    row_ids: str
    col_ids: str

    def __str__(self) -> str:
        info = self.store
        rows = [
            ("store", f"{info.path} ({info.format}, {info.dtype})"),
            ("read", f"{self.element} of {self.source} ({self.encoding})"),
            ("shape", f"{info.shape[0]:,} x {info.shape[1]:,}"),
            ("non-zeros", f"{info.nnz:,} (density {info.density:.4%})"),
            ("row ids", f"obs_names, in {self.row_ids}"),
            ("column ids", f"var_names, in {self.col_ids}"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}} : {v}" for k, v in rows)


def ingest_anndata(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    layer: str | None = None,
    chunks: tuple[int, int] | None = None,
    format: Literal["sparse", "dense"] | None = None,
    dtype: Any = None,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
    block_size: int = DEFAULT_BLOCK_ENTRIES,
    keep_invalid: bool = False,
) -> AnnDataIngest:
    """Import the matrix of an AnnData file into a store, streaming it.

    Parameters
    ----------
    src : str or os.PathLike
        An ``.h5ad`` file or an AnnData ``.zarr`` directory (zarr v2 or v3), read
        with h5py / zarr directly (the ``anndata`` package is not needed).
    dst : str or os.PathLike
        The store to create (local directory or fsspec URL).
    layer : str, optional
        Import ``layers/<layer>`` instead of ``X``.
    chunks : tuple of int, optional
        Tile shape; default from the shape and the stored entry count.
    format : {"sparse", "dense"}, optional
        Default: sparse for a sparse matrix, dense for a dense one.
    dtype : {"float32", "float64"}, optional
        Default: ``write_matrix``'s rule on the file's dtype (float32 and float64
        kept, integers and booleans as float32).
    overwrite : bool, default False
        Replace an existing dasknmf store at ``dst``.
    storage_options : dict, optional
        fsspec options for a URL ``dst``.
    block_size : int, default 2**20
        Entries of a CSC matrix read at once.
    keep_invalid : bool, default False
        Store negative, NaN and infinite values instead of refusing the file (NMF
        refuses them at fit time: clean the store first). The NaN of a dense matrix
        mark missing entries and are always kept.

    Returns
    -------
    AnnDataIngest
        The store's :class:`MatrixInfo`, what was read, and where the ids are.

    Raises
    ------
    InputFileNotFoundError
        ``src`` does not exist.
    UnsupportedFormatError
        Not an AnnData file (a dasknmf store included), or a matrix stored in
        another encoding than CSR, CSC or a dense 2-D numeric array.
    InvalidInputError
        No ``X`` (or no such layer; the message lists the layers), sparse arrays
        that contradict each other (checked slice by slice while writing), ``obs``
        or ``var`` without one name per row / column. Without ``keep_invalid``, a
        negative or infinite value, or a NaN stored in a sparse matrix, naming the
        element, the first one's row and column (from 0) and how many its slice
        holds (a row block; for CSC, a block of entries), checked as each slice is
        read; the store is not written.
    StoreExistsError, NotAStoreError
        ``dst`` exists (checked before the matrix is read).

    Notes
    -----
    *Memory.* CSR and dense matrices are read one row block (one row of tiles) at a
    time: one ``indptr`` slice and the ``data`` / ``indices`` range it spans. CSC
    matrices are read ``block_size`` entries (and at most ``block_size + 1``
    pointers) at a time, about 70 bytes an entry while they are bucketed by row
    block into temporary files (16 bytes an entry on disk, in
    :func:`tempfile.gettempdir`), then written one row block at a time.
    ``obs_names`` and ``var_names`` are read whole, once the matrix is written.

    Explicit zeros of a sparse matrix are dropped, as by :func:`write_matrix`.
    The store is written to a temporary location and moved into place at the end:
    on error ``dst`` is not created or changed.

    Examples
    --------
    >>> import pathlib, tempfile, h5py
    >>> from dasknmf.storage import read_ids
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with h5py.File(d / "a.h5ad", "w") as f:
    ...     f.attrs["encoding-type"] = "anndata"
    ...     f["X"] = np.array([[1.0, 0.0], [0.0, 2.0]])
    ...     for axis, names in (("obs", [b"c1", b"c2"]), ("var", [b"g1", b"g2"])):
    ...         f[f"{axis}/_index"] = names
    ...         f[axis].attrs["_index"] = "_index"
    >>> result = ingest_anndata(d / "a.h5ad", d / "a.zarr")
    >>> result.store.shape, result.encoding
    ((2, 2), 'dense')
    >>> read_ids(d / "a.zarr", "columns").tolist()
    ['g1', 'g2']
    """
    kind = check_option("format", format, (None, "sparse", "dense"))
    out_dtype = check_float_dtype("dtype", dtype)
    check_chunks("chunks", chunks)
    block_size = int(check_int("block_size", block_size, low=1))
    loc = StoreLocation.from_user(dst, storage_options)
    start = time.perf_counter()
    with AnnDataFile(src, layer=layer) as source:
        source.check_ids()
        # Refuse an existing destination before the matrix is read; atomic_store
        # checks again.
        check_target(loc, overwrite=overwrite)
        shape = source.shape
        kind = kind or ("dense" if source.encoding == "dense" else "sparse")
        out_dtype = out_dtype or stored_dtype(source.dtype)
        if chunks is None:
            nnz = source.nnz if kind == "sparse" else None
            tile_shape = default_chunks(shape, nnz=nnz, itemsize=out_dtype.itemsize)
        else:
            tile_shape = clip_chunks(chunks, shape)

        def save_ids(group: Any) -> None:
            write_ids(group, source.row_ids(), source.col_ids())

        with ExitStack() as stack:
            if source.encoding == "csc":
                spill = stack.enter_context(RowBlockSpill(shape, tile_shape[0]))
                _bucket(source, spill, block_size, check=not keep_invalid)
                matrix = spill.to_dask(tile_shape, out_dtype)
            else:
                matrix = _row_blocks(source, tile_shape, check=not keep_invalid)
            plan = plan_write(
                matrix, chunks=tile_shape, format=kind, dtype=out_dtype, keep_zeros=False
            )
            # The file handle and the spill files belong to this process: the tasks
            # must not go to an active distributed client.
            stack.enter_context(dask.config.set(scheduler="synchronous"))
            target = stack.enter_context(atomic_store(loc, overwrite=overwrite))
            write_plan(plan, target, extra=save_ids)
        described = source.element, source.encoding
    info = matrix_info(loc.path, storage_options=loc.storage_options)
    logger.info("ingested %s into %s in %.1f s", src, loc.path, time.perf_counter() - start)
    root = loc.path.rstrip("/")
    return AnnDataIngest(
        store=info,
        source=str(src),
        element=described[0],
        encoding=described[1],
        row_ids=f"{root}/{ROW_IDS}",
        col_ids=f"{root}/{COL_IDS}",
    )


def _row_blocks(source: AnnDataFile, tile_shape: tuple[int, int], *, check: bool) -> da.Array:
    """A dask array over a CSR or dense matrix whose chunk ``(i, j)`` is tile
    ``(i, j)``, cut from row block ``i`` read by one task shared by the row's tiles
    (which refuses its invalid values when ``check``).

    Valid only while ``source`` is open, and only in this process.
    """
    chunks = grid_chunks(source.shape, tile_shape)
    row_chunks, col_chunks = chunks
    col_bounds = np.cumsum((0, *col_chunks)).tolist()
    name = f"dasknmf-anndata-{uuid.uuid4().hex}"
    dsk: dict[Any, Any] = {}
    r0 = 0
    for i, rows in enumerate(row_chunks):
        load = (_read_rows, source, r0, r0 + rows, check)
        r0 += rows
        if len(col_chunks) == 1:
            dsk[(name, i, 0)] = load
            continue
        dsk[(f"{name}-rows", i)] = load
        for j in range(len(col_chunks)):
            dsk[(name, i, j)] = (_columns, (f"{name}-rows", i), col_bounds[j], col_bounds[j + 1])
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    if source.encoding == "dense":
        meta: Any = np.empty((0, 0), dtype=source.dtype)
    else:
        meta = sp.csr_matrix((0, 0), dtype=source.dtype)
    return da.Array(graph, name, chunks, meta=meta)


def _bucket(source: AnnDataFile, spill: RowBlockSpill, block_size: int, *, check: bool) -> None:
    """Stream the entries of a CSC matrix into the spill files of their row blocks,
    refusing a block's invalid values when ``check``."""
    start = time.perf_counter()
    seen = 0
    for rows, cols, vals in source.iter_entries(block_size):
        if check:
            found = InvalidValues(source.where)
            found.add(vals, partial(_entry_place, rows, cols))
            found.check(f"in its entries {seen}-{seen + vals.size - 1}")
        seen += vals.size
        spill.append(rows, cols, vals.astype(np.float64, copy=False))
    logger.info(
        "bucketed %d entries of %s into %d row blocks in %.1f s",
        spill.n_entries,
        source.path,
        spill.n_blocks,
        time.perf_counter() - start,
    )


def _entry_place(rows: np.ndarray, cols: np.ndarray, i: int) -> str:
    return f"row {rows[i]}, column {cols[i]} (counted from 0)"


def _read_rows(
    source: AnnDataFile, start: int, stop: int, check: bool
) -> sp.csr_matrix | np.ndarray:
    block = source.read_rows(start, stop)
    if check:
        found = InvalidValues(source.where, nan_is_missing=source.encoding == "dense")
        found.add_rows(block, start)
        found.check(f"in its rows {start}-{stop - 1}")
    return block


def _columns(block: Any, c0: int, c1: int) -> Any:
    return block[:, c0:c1]
