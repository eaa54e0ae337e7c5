"""Input given as row blocks: an iterable of scipy.sparse or numpy blocks, top to bottom.

A matrix larger than memory is usually produced piece by piece (one file, one query,
one shard at a time). :func:`RowBlocks.from_user` takes those pieces as they come,
checks each against the declared shape as it arrives, and :meth:`RowBlocks.tile_rows`
re-cuts them into rows of tiles, so the writer holds one row of tiles and one
incoming block at a time, whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

from dasknmf.errors import InvalidInputError, InvalidParameterError

__all__ = ["RowBlocks", "is_row_blocks"]


def _is_block(x: Any) -> bool:
    return sp.issparse(x) or (isinstance(x, np.ndarray) and x.ndim == 2)


def is_row_blocks(X: Any) -> bool:
    """Whether ``X`` is meant as row blocks: an iterator (a generator, ``map``,
    ``iter(...)``), or a list or tuple whose items are all 2-D numpy arrays or
    scipy.sparse matrices. (A list of numbers or of lists is an ordinary matrix.)

    Examples
    --------
    >>> is_row_blocks([np.eye(2), np.eye(2)]), is_row_blocks([[1.0, 2.0]])
    (True, False)
    """
    if isinstance(X, Iterator):
        return True
    return isinstance(X, (list, tuple)) and len(X) > 0 and all(_is_block(b) for b in X)


class RowBlocks:
    """Validated row blocks of an ``(m, n)`` matrix, read once, front to back.

    The first block is read when the object is made (its dtype and density choose
    the stored dtype, the format and the tile shape); the others when
    :meth:`tile_rows` reaches them. Every block is checked as it arrives: 2-D, real
    numbers, ``n`` columns, and not past row ``m``; and at the end, the blocks must
    have filled all ``m`` rows. Errors name the block (counting from 0) and its rows.

    Examples
    --------
    >>> blocks = RowBlocks.from_user([np.ones((2, 3)), np.zeros((1, 3))], shape=None)
    >>> blocks.shape, blocks.sparse
    ((3, 3), False)
    """

    def __init__(self, first: Any, rest: Iterator[Any], shape: tuple[int, int], nnz: int | None):
        self._first: Any = first
        self._rest = rest
        self.shape = shape
        self.dtype = np.dtype(first.dtype)
        self.sparse = sp.issparse(first)
        self._nnz = nnz

    @classmethod
    def from_user(cls, X: Iterable[Any], shape: Any) -> RowBlocks:
        """Check ``shape`` (required for an iterator) and read the first block."""
        declared = _check_shape(shape)
        if isinstance(X, Iterator):
            if declared is None:
                raise InvalidParameterError(
                    "X is an iterator of row blocks, whose number of rows is known only at "
                    "its end; pass shape=(rows, columns) to write_matrix (the store's tiles "
                    "are laid out before the first block is read)."
                )
            it: Iterator[Any] = X
            nnz = None
        else:  # a list or tuple of blocks: shape and non-zeros are known
            rows = sum(int(b.shape[0]) for b in X)
            found = (rows, int(X[0].shape[1]))
            if declared is not None and declared != found:
                raise InvalidInputError(
                    f"shape={declared} was passed, but the {len(X)} row blocks hold "
                    f"{found[0]:,} rows of {found[1]:,} columns"
                )
            declared = found
            it = iter(X)
            nnz = sum(int(b.nnz) if sp.issparse(b) else int(np.count_nonzero(b)) for b in X)
        if 0 in declared:
            raise InvalidInputError(f"X is empty (shape {declared}); nothing to store")
        try:
            first = next(it)
        except StopIteration:
            raise InvalidInputError(
                f"X holds no row blocks; shape {declared} declares {declared[0]:,} rows"
            ) from None
        block = _checked(0, first, 0, declared)
        return cls(block, it, declared, nnz)

    def estimate_nnz(self) -> int:
        """Exact for a list of blocks, else extrapolated from the first block's density
        (only the tile shape depends on it)."""
        if self._nnz is not None:
            return self._nnz
        block = self._first
        count = block.nnz if sp.issparse(block) else np.count_nonzero(block)
        size = max(block.shape[0] * block.shape[1], 1)
        return round(count / size * self.shape[0] * self.shape[1])

    def _checked_blocks(self) -> Iterator[Any]:
        """Every block, checked and in the first block's kind (CSR or ndarray)."""
        if self._first is None:
            raise RuntimeError("row blocks can be read once only")
        first, self._first = self._first, None
        yield first
        row, count = int(first.shape[0]), 1
        for index, raw in enumerate(self._rest, start=1):
            block = _checked(index, raw, row, self.shape)
            row, count = row + block.shape[0], index + 1
            if block.shape[0] == 0:
                continue
            if self.sparse and not sp.issparse(block):
                block = sp.csr_matrix(block)
            elif not self.sparse and sp.issparse(block):
                block = block.toarray()
            yield block
        if row != self.shape[0]:
            raise InvalidInputError(
                f"the {count} row blocks hold {row:,} rows, but shape {self.shape} "
                f"declares {self.shape[0]:,}; nothing was written"
            )

    def tile_rows(self, tile_shape: tuple[int, int]) -> Iterator[list[Any]]:
        """Yield each row of tiles: the blocks re-cut at every ``tile_shape[0]`` rows."""
        m, n = self.shape
        tr, tc = tile_shape
        col_bounds = [(c0, min(c0 + tc, n)) for c0 in range(0, n, tc)]
        pending: list[Any] = []
        have = 0
        start = 0  # first row of the row of tiles being filled
        for block in self._checked_blocks():
            while block.shape[0]:
                height = min(tr, m - start)
                take = block[: height - have]
                block = block[take.shape[0] :]
                pending.append(take)
                have += take.shape[0]
                if have == height:
                    row = self._stack(pending)
                    pending, have, start = [], 0, start + height
                    yield [row[:, c0:c1] for c0, c1 in col_bounds]

    def _stack(self, parts: list[Any]) -> Any:
        if len(parts) == 1:
            return parts[0]
        return sp.vstack(parts, format="csr") if self.sparse else np.vstack(parts)


def _check_shape(shape: Any) -> tuple[int, int] | None:
    if shape is None:
        return None
    try:
        m, n = (int(s) for s in shape)
        ok = all(int(s) == s and not isinstance(s, bool) for s in shape)
    except (TypeError, ValueError):
        ok = False
    if not ok or m < 0 or n < 0:
        raise InvalidParameterError(
            f"The 'shape' parameter must be two non-negative integers (rows, columns); "
            f"got {shape!r}."
        )
    return m, n


def _checked(index: int, block: Any, row: int, shape: tuple[int, int]) -> Any:
    """Block ``index``, starting at ``row``, as CSR or a 2-D ndarray, checked."""
    where = f"row block {index} (counting from 0, starting at row {row:,})"
    if sp.issparse(block):
        block = block.tocsr()
    else:
        try:
            block = np.asarray(block)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"{where} is a {type(block).__name__}; blocks must be numpy arrays or "
                "scipy.sparse matrices"
            ) from exc
    if block.ndim != 2:
        raise InvalidInputError(
            f"{where} is {block.ndim}-D with shape {block.shape}; blocks must be 2-D"
        )
    dtype = np.dtype(block.dtype)
    if dtype.kind not in "fiub":
        raise InvalidInputError(f"{where} has dtype {dtype}; dasknmf stores real numbers")
    m, n = shape
    rows, cols = (int(s) for s in block.shape)
    if cols != n:
        raise InvalidInputError(
            f"{where} has shape {block.shape}: {cols:,} columns, but the matrix has "
            f"{n:,} (shape {shape}); every block must have all the columns; nothing was written"
        )
    if row + rows > m:
        raise InvalidInputError(
            f"{where} has {rows:,} rows, ending at row {row + rows:,}, past the "
            f"{m:,} rows of shape {shape}; nothing was written"
        )
    return block
