"""Values NMF cannot take, found while a file is imported.

NMF needs finite, non-negative values; a fit refuses a store holding others. Every
importer therefore refuses a negative, NaN or infinite value before its store is
written, naming the file, where the first such value is and how many there are,
unless it is called with ``keep_invalid=True``. This module finds them in a block of
values (:class:`InvalidValues`, over any number of blocks) and builds that message,
so that every format says it the same way.

In a dense matrix NaN marks a missing entry (a fit with ``missing='ignore'`` leaves it
out of the loss), so the NaN of a dense block are kept; a NaN stored as an entry of a
sparse matrix is refused like a negative value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from dasknmf.errors import InvalidInputError

__all__ = ["BLOCK_VALUES", "InvalidValues", "check_matrix"]

BLOCK_VALUES = 2**23
"""Values of a dense matrix checked at once by :func:`check_matrix` (64 MiB of
float64), so that a memory-mapped ``.npy`` file is read a bounded part at a time."""


def _kind(value: float) -> str:
    if np.isnan(value):
        return "NaN"
    return "infinite" if np.isinf(value) else "negative"


@dataclass
class InvalidValues:
    """The negative, NaN and infinite values of one matrix, counted block by block,
    and where the first one is.

    Parameters
    ----------
    where : str
        What holds the values, as the message starts: ``"'v.mtx'"``,
        ``"'cells.h5ad', X"``.
    nan_is_missing : bool, default False
        The blocks are dense: NaN marks a missing entry and is not counted.

    Examples
    --------
    >>> found = InvalidValues("'v.npy'")
    >>> found.add(np.array([1.0, -2.0, np.nan]), lambda i: f"value {i}")
    2
    >>> print(found.error("in the file"))  # doctest: +ELLIPSIS
    'v.npy', value 1: the value -2.0 is negative (2 such value(s) in the file); ...
    """

    where: str
    nan_is_missing: bool = False
    count: int = 0
    first: str | None = None
    value: float | None = None

    def add(self, values: Any, locate: Callable[[int], str]) -> int:
        """Count the invalid values of one block (an array of any shape, read in C
        order); return how many it holds.

        ``locate(i)`` names the place of the block's ``i``-th value (``"line 7,
        entry 3"``); it is called for the first invalid value of the matrix only.
        """
        values = np.asarray(values)
        if values.dtype.kind not in "fiub":
            return 0  # not numbers: the writer refuses them with its own message
        if values.dtype.kind in "ub":
            return 0  # no negative, NaN or infinite value to be had
        bad = values < 0
        if values.dtype.kind == "f":
            finite = np.isfinite(values)
            if self.nan_is_missing:
                finite |= np.isnan(values)
            bad |= ~finite
        n = int(np.count_nonzero(bad))
        if n and self.first is None:
            i = int(np.argmax(bad.ravel()))
            self.value = float(values.ravel()[i])
            self.first = locate(i)
        self.count += n
        return n

    def add_rows(self, block: np.ndarray | sp.spmatrix, row0: int) -> int:
        """Count the invalid values of rows ``row0, row0 + 1, ...`` of a matrix (a
        dense array, or a sparse matrix whose stored entries are counted), placed by
        row and column counted from 0."""
        if sp.issparse(block):
            csr = sp.csr_matrix(block)

            def locate(i: int) -> str:
                row = int(np.searchsorted(csr.indptr, i, side="right")) - 1
                return _place(row0 + row, int(csr.indices[i]))

            return self.add(csr.data, locate)
        array = np.asarray(block)
        if array.ndim != 2:
            return 0  # the writer refuses other shapes with its own message

        def locate_dense(i: int) -> str:
            row, col = divmod(i, array.shape[1])
            return _place(row0 + row, col)

        return self.add(array, locate_dense)

    def error(self, scope: str) -> InvalidInputError:
        """The error naming the first invalid value, its place and the count.

        ``scope`` says what the count covers: ``"in the file"``, ``"in lines 4-9"``.
        """
        value = self.value if self.value is not None else float("nan")
        dense = " (NaN marks a missing entry of a dense matrix)" if self.nan_is_missing else ""
        return InvalidInputError(
            f"{self.where}, {self.first}: the value {value!r} is {_kind(value)} "
            f"({self.count} such value(s) {scope}); NMF needs finite non-negative "
            f"values{dense}. Fix the file, or keep them with keep_invalid=True (dasknmf "
            "ingest --keep-invalid) and clean the store before fitting; nothing was written."
        )

    def check(self, scope: str) -> None:
        """Raise :meth:`error` if an invalid value was counted."""
        if self.count:
            raise self.error(scope)


def _place(row: int, col: int) -> str:
    return f"row {row}, column {col} (counted from 0)"


def check_matrix(matrix: Any, where: str) -> None:
    """Refuse a whole matrix (sparse, dense or memory-mapped) holding an invalid
    value, reading a dense one :data:`BLOCK_VALUES` values at a time.

    Raises
    ------
    InvalidInputError
        Naming ``where``, the first invalid value's row and column and how many
        there are.

    Examples
    --------
    >>> check_matrix(np.array([[1.0, np.nan]]), "'v.npy'")  # NaN: a missing entry
    >>> check_matrix(sp.csr_matrix([[0.0, -1.0]]), "'s.npz'")
    Traceback (most recent call last):
    ...
    dasknmf.errors.InvalidInputError: 's.npz', row 0, column 1 (counted from 0): the value -1.0 is negative (1 such value(s) in the file); NMF needs finite non-negative values. Fix the file, or keep them with keep_invalid=True (dasknmf ingest --keep-invalid) and clean the store before fitting; nothing was written.
    """  # noqa: E501
    found = InvalidValues(where, nan_is_missing=not sp.issparse(matrix))
    if sp.issparse(matrix) or np.ndim(matrix) != 2:
        found.add_rows(matrix, 0)
    else:
        m, n = matrix.shape
        step = max(1, BLOCK_VALUES // max(1, n))
        for r0 in range(0, m, step):
            found.add_rows(np.asarray(matrix[r0 : r0 + step]), r0)
    found.check("in the file")
