"""Turning what a user passes into a tiled dask matrix, and checking it once.

A fit accepts a path to a dasknmf store, a dask array, a NumPy array or a SciPy
sparse matrix. All become one ``m × n`` dask array of tiles (CSR or dense); one pass
over it (:func:`compute_stats`) gives ``‖V‖²``, the mean used to scale the
initialisation, the number of stored values, and any negative or non-finite entries,
which :func:`check_stats` turns into errors that say how many and where.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp

from dasknmf import devices, products
from dasknmf.errors import InvalidInputError
from dasknmf.kernels.tiles import WIDE

#: Bytes of V per tile aimed at when dasknmf chooses the tiling of an in-memory input.
TILE_BYTES = 64 * 2**20
#: Widest tile chosen automatically; wider inputs get several column blocks.
MAX_TILE_COLS = 131_072
#: In-memory inputs smaller than this are one tile: below it, the scheduler's
#: per-iteration overhead (milliseconds) outweighs what two threads save.
SINGLE_TILE_BYTES = 8 * 2**20
#: Bytes of a factor's column block that a sparse tile's products gather from: a
#: product gathers one ``k``-vector of ``H`` per non-zero, and with ``H`` cut to
#: about a core's cache those gathers hit it (docs/benchmarks.md, "Cutting the
#: columns of an in-memory sparse input").
GATHER_BYTES = 2 * 2**20


def working_dtype(dtype: np.dtype) -> np.dtype:
    """float64 stays float64; everything else is computed in float32."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def auto_chunks(
    shape: tuple[int, int],
    *,
    nbytes: int,
    threads: int,
    single_tile_bytes: int | None = None,
    gather: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """Tile shape for an in-memory input: one tile below ``single_tile_bytes``
    (default :data:`SINGLE_TILE_BYTES`),
    else at least one row block per thread (row-block products run in parallel),
    about :data:`TILE_BYTES` per tile, and full width up to :data:`MAX_TILE_COLS`.

    ``gather``, for a sparse input, is the factor width ``k`` and the itemsize of its
    products: the columns are then cut so that a tile's block of ``H`` is about
    :data:`GATHER_BYTES` (:func:`gather_col_blocks`).
    """
    m, n = shape
    single_tile_bytes = SINGLE_TILE_BYTES if single_tile_bytes is None else single_tile_bytes
    if nbytes < single_tile_bytes and n <= MAX_TILE_COLS:
        return max(m, 1), max(n, 1)
    col_blocks = max(math.ceil(n / MAX_TILE_COLS), gather_col_blocks(n, gather))
    row_blocks = max(threads, math.ceil(nbytes / col_blocks / TILE_BYTES))
    row_blocks = min(m, threads * math.ceil(row_blocks / threads))
    return max(1, math.ceil(m / row_blocks)), max(1, math.ceil(n / col_blocks))


def gather_col_blocks(n: int, gather: tuple[int, int] | None) -> int:
    """Column blocks that bring a sparse tile's block of a ``k``-column factor to
    about :data:`GATHER_BYTES`, at most as many as one task takes
    (:data:`dasknmf.products.SPLIT_EVERY`); one from :data:`WIDE` columns on, where the
    compiled products run (there the cut sped one product and slowed the other), or
    without ``gather``."""
    if gather is None or gather[0] >= WIDE:
        return 1
    k, itemsize = gather
    return max(1, min(products.SPLIT_EVERY, round(n * k * itemsize / GATHER_BYTES)))


def _nbytes(X) -> int:
    if sp.issparse(X):
        return int(X.nnz * (X.dtype.itemsize + 4))
    return int(np.asarray(X).nbytes) if not isinstance(X, da.Array) else int(X.nbytes)


def as_tiled(
    X,
    *,
    chunks: tuple[int, int] | None,
    threads: int,
    single_tile_bytes: int | None = None,
    k: int | None = None,
) -> da.Array:
    """A 2-D dask array of tiles for ``X`` in its working dtype (float32 or float64).

    ``X`` may be a path (opened with :func:`dasknmf.open_matrix`, nothing read), a
    dask array (rechunked only if ``chunks`` is given), or an in-memory NumPy array or
    SciPy sparse matrix (tiled with ``chunks`` or :func:`auto_chunks`, given
    ``threads``, ``single_tile_bytes`` and, for a sparse matrix, the factors' width
    ``k`` where known; sparse tiles are CSR).
    """
    if isinstance(X, (str, os.PathLike)):
        from dasknmf.storage import open_matrix

        X = open_matrix(X)
    if isinstance(X, da.Array):
        if X.ndim != 2:
            raise InvalidInputError(f"Expected a 2-D matrix, got a {X.ndim}-D dask array.")
        V = X.rechunk(chunks) if chunks is not None else X
    else:
        X = sp.csr_matrix(X) if sp.issparse(X) else np.asarray(X)
        if X.ndim != 2:
            raise InvalidInputError(f"Expected a 2-D matrix, got an array of shape {X.shape}.")
        if chunks is None:
            gather = None
            if sp.issparse(X) and k is not None:
                gather = (k, working_dtype(X.dtype).itemsize)
            chunks = auto_chunks(
                X.shape,
                nbytes=_nbytes(X),
                threads=threads,
                single_tile_bytes=single_tile_bytes,
                gather=gather,
            )
        V = tiles_of(X, chunks)
    dtype = working_dtype(V.dtype)
    return V if V.dtype == dtype else V.astype(dtype)


def tiles_of(X: np.ndarray | sp.csr_matrix, chunks: tuple[int, int]) -> da.Array:
    """``X`` as a dask array of ``chunks``-shaped tiles, holding at most one copy.

    ``dask.array.from_array`` copies its input whole, slices the tiles from that copy
    (a SciPy slice copies again) and hashes it for a name: three times ``V``'s bytes
    at once, and ≈ 60 ms of hashing for a 7M-non-zero matrix. Here a dense block is a
    view where it is C-contiguous, a single-tile sparse input is the input itself, and
    the name is random. The tiles of a sparse input with several tiles are copies: SciPy
    copies the arrays of any matrix built on a view of less than half of another
    (its ``prune``), so views would be copied again by every transpose in the
    products.
    """
    row_chunks, col_chunks = da.core.normalize_chunks(chunks, X.shape, dtype=X.dtype)
    name = f"input-{uuid.uuid4().hex}"
    row_starts, col_starts = np.cumsum((0, *row_chunks)), np.cumsum((0, *col_chunks))
    # A sparse input of one tile is the tile; a dense one is too when C-contiguous
    # (_tile copies it otherwise, as the kernels want rows contiguous).
    one_tile = len(row_chunks) == len(col_chunks) == 1 and sp.issparse(X)
    graph = {
        (name, i, j): X
        if one_tile
        else _tile(
            X, slice(row_starts[i], row_starts[i + 1]), slice(col_starts[j], col_starts[j + 1])
        )
        for i in range(len(row_chunks))
        for j in range(len(col_chunks))
    }
    meta = sp.csr_matrix((0, 0), dtype=X.dtype) if sp.issparse(X) else np.empty((0, 0), X.dtype)
    return da.Array(graph, name, chunks=(row_chunks, col_chunks), meta=meta)


def _tile(X, rows: slice, cols: slice):
    return X[rows, cols] if sp.issparse(X) else np.ascontiguousarray(X[rows, cols])


@dataclass(frozen=True)
class MatrixStats:
    """One pass of summary statistics over ``V`` (see :func:`compute_stats`)."""

    shape: tuple[int, int]
    total: float
    norm2: float
    nnz: int
    n_negative: int
    first_negative: tuple[int, int] | None
    n_nonfinite: int
    first_nonfinite: tuple[int, int] | None
    n_observed: int
    #: Smallest and largest finite observed value (NaN if there is none): the range
    #: a ratings model clips its predictions to.
    observed_min: float = math.nan
    observed_max: float = math.nan

    @property
    def mean(self) -> float:
        """Mean over all ``m · n`` entries, zeros included."""
        return self.total / (self.shape[0] * self.shape[1])

    @property
    def observed_mean(self) -> float:
        """Mean over the observed entries (see :func:`compute_stats`); 0 if none."""
        return self.total / self.n_observed if self.n_observed else 0.0

    @property
    def n_observed_zeros(self) -> int:
        """Observed entries equal to zero (explicit zeros of a sparse matrix)."""
        return self.n_observed - self.nnz


def compute_stats(
    V: da.Array,
    *,
    nan_is_missing: bool = False,
    alongside: Sequence[tuple[Any, Callable[[Any], None]]] = (),
) -> MatrixStats:
    """Read ``V`` once and summarise it.

    The observed entries are the stored ones of sparse tiles and all entries of dense
    ones, except NaN when ``nan_is_missing`` (then they are neither summed nor errors).
    ``alongside`` holds ``(lazy collection, receiver)`` pairs computed in the same
    graph, so that they share this read of ``V`` (the randomized SVD's first pass);
    each receiver is given its collection's value.
    """
    s, bounds, *others = dask.compute(
        products.tile_stats(V, nan_is_missing),
        _observed_range(V),
        *(lazy for lazy, _ in alongside),
    )
    for (_, receive), value in zip(alongside, others, strict=True):
        receive(value)
    s, bounds = np.asarray(s), np.asarray(bounds)
    n = V.shape[1]

    def position(linear: float) -> tuple[int, int] | None:
        return None if math.isinf(linear) else divmod(int(linear), n)

    return MatrixStats(
        shape=V.shape,
        total=float(s[0]),
        norm2=float(s[1]),
        nnz=int(s[2]),
        n_negative=int(s[3]),
        first_negative=position(s[4]),
        n_nonfinite=int(s[5]),
        first_nonfinite=position(s[6]),
        n_observed=int(s[7]),
        observed_min=float(bounds[0]),
        observed_max=float(bounds[1]),
    )


def _range_of_tile(tile) -> np.ndarray:
    """``[min, max]`` of a tile's finite observed values (``[inf, -inf]`` if none)."""
    tile = devices.block_to_host(tile)
    values = np.asarray(tile.data if sp.issparse(tile) else tile)
    if values.size == 0:
        return np.asarray([np.inf, -np.inf])
    bounds = np.asarray([values.min(), values.max()], dtype=np.float64)
    if np.isfinite(bounds).all():  # no NaN or infinity: no filtered copy of the tile
        return bounds
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.asarray([np.inf, -np.inf])
    return np.asarray([values.min(), values.max()], dtype=np.float64)


def _observed_range(V) -> Any:
    """``[min, max]`` of ``V``'s finite observed values (lazy for a dask ``V``), read
    in the same pass as the statistics."""
    if not products.is_lazy(V):
        return _range_of_tile(V)
    per_tile = V.map_blocks(
        lambda t: _range_of_tile(t)[None, None, :],
        chunks=(1, 1, 2),
        new_axis=2,
        dtype=np.float64,
        meta=np.empty((0, 0, 0), dtype=np.float64),
    ).reshape(-1, 2)
    return da.stack([per_tile[:, 0].min(), per_tile[:, 1].max()])


def observed_counts(V: da.Array) -> tuple[np.ndarray, np.ndarray]:
    """The number of observed entries of each row and each column of ``V`` (stored
    entries of sparse tiles, non-NaN entries of dense ones), as int64 arrays."""
    if not products.is_lazy(V):
        return _tile_counts(V, 1).ravel(), _tile_counts(V, 0).ravel()
    meta = np.empty((0, 0), dtype=np.int64)
    ones = {1: (1,) * V.numblocks[1]}
    per_row = V.map_blocks(
        _tile_counts, 1, chunks=(V.chunks[0], ones[1]), dtype=np.int64, meta=meta
    )
    per_col = V.map_blocks(
        _tile_counts, 0, chunks=((1,) * V.numblocks[0], V.chunks[1]), dtype=np.int64, meta=meta
    )
    rows, cols = da.compute(per_row.sum(axis=1), per_col.sum(axis=0))
    return np.asarray(rows), np.asarray(cols)


def _tile_counts(tile, axis: int) -> np.ndarray:
    tile = devices.block_to_host(tile)
    if sp.issparse(tile):
        csr = tile.tocsr()
        counts = (
            np.diff(csr.indptr) if axis == 1 else np.bincount(csr.indices, minlength=tile.shape[1])
        )
    else:
        counts = (~np.isnan(tile)).sum(axis=axis)
    counts = np.asarray(counts, dtype=np.int64)
    return counts[:, None] if axis == 1 else counts[None, :]


def check_shape(shape: tuple[int, ...], name: str = "X") -> None:
    """Reject matrices with no rows or no columns."""
    if len(shape) != 2 or 0 in shape:
        raise InvalidInputError(
            f"Found an empty matrix of shape {tuple(shape)} in {name}: NMF needs at least "
            "one row and one column."
        )


def check_stats(stats: MatrixStats, name: str = "X") -> None:
    """Raise :class:`InvalidInputError` for non-finite or negative entries."""
    if stats.n_nonfinite:
        i, j = stats.first_nonfinite
        raise InvalidInputError(
            f"Input {name} contains {stats.n_nonfinite} NaN or infinity value(s); the first "
            f"is at row {i}, column {j}."
        )
    if stats.n_negative:
        i, j = stats.first_negative
        raise InvalidInputError(
            f"Negative values in data passed to NMF ({name}): {stats.n_negative} "
            f"negative entr{'y' if stats.n_negative == 1 else 'ies'}, the first at row {i}, "
            f"column {j}."
        )


def in_memory_bytes(V: da.Array, stats: MatrixStats) -> int:
    """Bytes ``V`` occupies once loaded: CSR arrays for sparse tiles, else dense."""
    if isinstance(V._meta, np.ndarray):
        return int(V.nbytes)
    itemsize = V.dtype.itemsize
    index_rows = V.shape[0] * V.numblocks[1]
    return int(stats.n_observed * (itemsize + 4) + (index_rows + V.numblocks[0]) * 4)
