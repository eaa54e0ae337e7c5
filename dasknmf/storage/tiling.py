"""Input matrices for writing: validation and iteration over rows of tiles."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp

from dasknmf.errors import InvalidInputError

from .blocks import RowBlocks, is_row_blocks
from .layout import grid_chunks

__all__ = ["InputMatrix", "iter_tile_rows", "prepare_input", "stored_dtype"]

logger = logging.getLogger(__name__)

InputKind = Literal["numpy", "scipy", "dask", "blocks"]

# Above this many elements the non-zeros of a numpy input are estimated from a sample.
_EXACT_COUNT_LIMIT = 2**24


@dataclass(frozen=True)
class InputMatrix:
    """A validated input: the object, where it comes from and what it holds.

    Examples
    --------
    >>> prepare_input(np.eye(2)).shape
    (2, 2)
    """

    obj: Any
    kind: InputKind
    shape: tuple[int, int]
    dtype: np.dtype
    sparse: bool

    def estimate_nnz(self) -> int:
        """Non-zero count: exact for in-memory input, extrapolated from the first
        block for dask input and an iterator of row blocks (only used to choose a
        tile shape, so a full extra pass over a possibly larger-than-memory input is
        not worth it)."""
        if self.kind == "blocks":
            return self.obj.estimate_nnz()
        if self.kind == "scipy":
            return int(self.obj.nnz)
        m, n = self.shape
        if self.kind == "numpy":
            if self.obj.size <= _EXACT_COUNT_LIMIT:
                return int(np.count_nonzero(self.obj))
            # Evenly spaced rows: a memory-mapped .npy is sampled, not read in full.
            step = -(-m // max(1, _EXACT_COUNT_LIMIT // n))
            sample = self.obj[::step]
            return round(np.count_nonzero(sample) / sample.size * m * n)
        block = self.obj.blocks[0, 0].compute()
        count = block.count_nonzero() if sp.issparse(block) else np.count_nonzero(block)
        size = max(block.shape[0] * block.shape[1], 1)
        return round(count / size * m * n)


def stored_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype an input of ``dtype`` is stored as by default.

    float32 and float64 are kept; float16 widens to float32, wider floats narrow
    to float64; integers and booleans become float32.

    Examples
    --------
    >>> stored_dtype(np.dtype("int64"))
    dtype('float32')
    """
    if dtype.kind == "f":
        if dtype.itemsize <= 4:
            return np.dtype(np.float32)
        return np.dtype(np.float64)
    if dtype.kind in "iub":
        return np.dtype(np.float32)
    raise InvalidInputError(
        f"X has dtype {dtype}; dasknmf stores real numbers (float, integer or bool input)"
    )


def prepare_input(X: Any, shape: Any = None) -> InputMatrix:
    """Validate ``X`` (2-D numpy, scipy.sparse or dask array, or row blocks) for writing.

    Row blocks (see :func:`~dasknmf.storage.blocks.is_row_blocks`) take their
    ``shape`` from the blocks of a list, or from ``shape`` for an iterator; other
    input must match ``shape`` when it is given.

    Examples
    --------
    >>> prepare_input(sp.eye(3, format="csc")).kind
    'scipy'
    >>> prepare_input(iter([np.eye(2)]), shape=(2, 2)).kind
    'blocks'
    """
    if is_row_blocks(X):
        blocks = RowBlocks.from_user(X, shape)
        stored_dtype(blocks.dtype)
        return InputMatrix(blocks, "blocks", blocks.shape, blocks.dtype, blocks.sparse)
    matrix = _prepare_matrix(X)
    if shape is not None and tuple(shape) != matrix.shape:
        raise InvalidInputError(
            f"X has shape {matrix.shape}, but shape={tuple(shape)} was passed "
            "(shape is needed only for an iterator of row blocks)"
        )
    return matrix


def _prepare_matrix(X: Any) -> InputMatrix:
    if isinstance(X, da.Array):
        kind: InputKind = "dask"
        sparse = sp.issparse(X._meta)
        obj = X
        if X.ndim == 2 and any(np.isnan(c) for axis in X.chunks for c in axis):
            raise InvalidInputError(
                "X is a dask array with unknown chunk sizes; call X.compute_chunk_sizes() first"
            )
    elif sp.issparse(X):
        kind, sparse, obj = "scipy", True, X
    else:
        kind, sparse = "numpy", False
        try:
            obj = X if isinstance(X, np.ndarray) else np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"X must be a numpy array, a scipy.sparse matrix or a dask array, "
                f"got {type(X).__name__}"
            ) from exc
    if obj.ndim != 2:
        raise InvalidInputError(f"X must be 2-D, got {obj.ndim}-D with shape {obj.shape}")
    shape = (int(obj.shape[0]), int(obj.shape[1]))
    if 0 in shape:
        raise InvalidInputError(f"X is empty (shape {shape}); nothing to store")
    dtype = np.dtype(obj.dtype)
    stored_dtype(dtype)  # rejects complex, object, strings ...
    return InputMatrix(obj, kind, shape, dtype, sparse)


def iter_tile_rows(matrix: InputMatrix, tile_shape: tuple[int, int]) -> Iterator[list[Any]]:
    """Yield, for each row of tiles, the list of its tiles (numpy or scipy.sparse).

    In-memory inputs are sliced tile by tile. Dask input is rechunked to the tile
    shape and computed one row of tiles at a time (the tiles of a row in parallel),
    and row blocks are re-cut into rows of tiles as they arrive, so memory stays
    bounded by one row of tiles (and one block) however large the input is.

    Examples
    --------
    >>> rows = list(iter_tile_rows(prepare_input(np.arange(6.0).reshape(3, 2)), (2, 1)))
    >>> [len(r) for r in rows]
    [2, 2]
    """
    row_chunks, col_chunks = grid_chunks(matrix.shape, tile_shape)
    col_bounds = np.cumsum((0, *col_chunks))
    row_bounds = np.cumsum((0, *row_chunks))
    if matrix.kind == "dask":
        yield from _iter_dask(matrix.obj, (row_chunks, col_chunks))
        return
    if matrix.kind == "blocks":
        yield from matrix.obj.tile_rows(tile_shape)
        return
    obj = matrix.obj.tocsr() if matrix.kind == "scipy" else matrix.obj
    for r0, r1 in itertools.pairwise(row_bounds):
        block = obj[r0:r1]
        yield [block[:, c0:c1] for c0, c1 in itertools.pairwise(col_bounds)]


def _iter_dask(x: da.Array, chunks: tuple[tuple[int, ...], tuple[int, ...]]) -> Iterator[list]:
    if x.chunks != chunks:
        logger.debug("rechunking dask input from %s to the tile grid", x.chunksize)
        x = x.rechunk(chunks)
    # One optimised graph for the whole array; each compute below culls it to the
    # tasks one row of tiles needs.
    blocks = x.to_delayed()
    for i in range(blocks.shape[0]):
        yield list(dask.compute(*blocks[i]))
