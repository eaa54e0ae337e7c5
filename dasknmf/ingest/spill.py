"""Out-of-core bucketing of unordered sparse entries by row block.

Entries arriving in any order (a MatrixMarket body) are appended, split by row block
(``row // tile_rows``), to one raw record file per row block in a temporary folder:
an external bucket sort. :meth:`RowBlockSpill.to_dask` then presents the row blocks
as a lazy dask array of CSR tiles, which :func:`~dasknmf.storage.write_matrix`
writes one row of tiles at a time like any other dask input. Memory: one appended
batch, then one row block.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import dask.array as da
import numpy as np
import scipy.sparse as sp
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from dasknmf.errors import InvalidInputError
from dasknmf.storage import grid_chunks

__all__ = ["DuplicateEntryError", "RowBlockSpill"]

logger = logging.getLogger(__name__)


class DuplicateEntryError(InvalidInputError):
    """An entry ``(row, col)`` was appended more than once to a spill that forbids it.

    The spill knows only indices; callers that know where the entries came from
    catch it and name the file and lines.
    """

    def __init__(self, row: int, col: int) -> None:
        super().__init__(f"entry ({row}, {col}) occurs more than once")
        self.row = row
        self.col = col


def _index_dtype(limit: int) -> np.dtype:
    return np.dtype(np.int32 if limit <= np.iinfo(np.int32).max else np.int64)


class RowBlockSpill:
    """Spill files of sparse entries, one per row block; a context manager that
    deletes them on exit (also on error).

    Parameters
    ----------
    shape : tuple of int
        ``(m, n)`` of the matrix.
    tile_rows : int
        Rows per row block.
    dir : str or os.PathLike, optional
        Parent of the temporary folder; default :func:`tempfile.gettempdir`.

    Examples
    --------
    >>> with RowBlockSpill((4, 3), 2) as spill:
    ...     spill.append(np.array([3, 0, 3]), np.array([1, 2, 1]), np.array([1.0, 2.0, 5.0]))
    ...     spill.to_dask((2, 3), np.dtype("f8")).compute().toarray()
    array([[0., 0., 2.],
           [0., 0., 0.],
           [0., 0., 0.],
           [0., 6., 0.]])
    """

    def __init__(
        self, shape: tuple[int, int], tile_rows: int, *, dir: str | os.PathLike[str] | None = None
    ) -> None:
        self.shape = shape
        self.tile_rows = tile_rows
        self.n_blocks = -(-shape[0] // tile_rows)
        # Local row, column and float64 value: 16 bytes per entry when indices fit
        # int32. Values stay float64 so that duplicates are summed before any cast.
        self.record = np.dtype(
            [("row", _index_dtype(tile_rows)), ("col", _index_dtype(shape[1])), ("val", "<f8")]
        )
        # uint16 keys let the stable argsort use radix sort, far faster than int64's.
        self.key_dtype = np.dtype(np.uint16 if self.n_blocks <= 2**16 else np.int64)
        self.folder = Path(tempfile.mkdtemp(prefix="dasknmf-spill-", dir=dir))
        self.n_entries = 0

    def __enter__(self) -> RowBlockSpill:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Delete the spill folder."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def path(self, i: int) -> Path:
        """The spill file of row block ``i`` (absent while the block is empty)."""
        return self.folder / f"rows-{i:08d}.bin"

    def append(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
        """Append entries (0-based, in bounds, any order) to their row blocks' files."""
        key = (rows // self.tile_rows).astype(self.key_dtype)
        order = np.argsort(key, kind="stable")
        key = key[order]
        rec = np.empty(rows.size, dtype=self.record)
        rec["row"] = rows[order] - key.astype(np.int64) * self.tile_rows
        rec["col"] = cols[order]
        rec["val"] = vals[order]
        counts = np.bincount(key, minlength=self.n_blocks)
        bounds = np.concatenate(([0], np.cumsum(counts)))
        for i in np.flatnonzero(counts):
            # Opened per append, so the number of row blocks is not capped by the
            # limit on open files.
            with open(self.path(int(i)), "ab") as fh:
                rec[bounds[i] : bounds[i + 1]].tofile(fh)
        self.n_entries += rows.size

    def to_dask(
        self,
        tile_shape: tuple[int, int],
        dtype: np.dtype,
        *,
        duplicates: Literal["sum", "error"] = "sum",
    ) -> da.Array:
        """A dask array whose chunk ``(i, j)`` is tile ``(i, j)``, cut from file ``i``.

        Duplicates are summed (in float64, then cast to ``dtype``), or with
        ``duplicates="error"`` make computing their row block raise
        :class:`DuplicateEntryError`. Explicit zeros are kept as stored entries (the
        writer drops them unless told to keep them). The array is valid only while
        the spill folder exists, and only in this process.
        """
        if tile_shape[0] != self.tile_rows:
            raise ValueError(f"tile rows {tile_shape[0]} differ from the spill's {self.tile_rows}")
        chunks = grid_chunks(self.shape, tile_shape)
        row_chunks, col_chunks = chunks
        col_bounds = np.cumsum((0, *col_chunks)).tolist()
        token = tokenize(str(self.folder), self.shape, tile_shape, dtype.str, duplicates)
        name = f"dasknmf-spill-{token}"
        dsk: dict[Any, Any] = {}
        for i, rows in enumerate(row_chunks):
            load = (
                _load_row_block,
                str(self.path(i)),
                (rows, self.shape[1]),
                self.record,
                dtype,
                i * self.tile_rows if duplicates == "error" else None,
            )
            if len(col_chunks) == 1:
                dsk[(name, i, 0)] = load
                continue
            # One load per row block, shared by the tiles of its row (write_matrix
            # computes a row of tiles together).
            dsk[(f"{name}-load", i)] = load
            for j in range(len(col_chunks)):
                dsk[(name, i, j)] = (
                    _column_tile,
                    (f"{name}-load", i),
                    col_bounds[j],
                    col_bounds[j + 1],
                )
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
        return da.Array(graph, name, chunks, meta=sp.csr_matrix((0, 0), dtype=dtype))


def _load_row_block(
    path: str, shape: tuple[int, int], record: np.dtype, dtype: np.dtype, check_from: int | None
) -> sp.csr_matrix:
    """Row block of a spill file; ``check_from`` (its first row) asks for the
    duplicate check, ``None`` for summing duplicates."""
    if not os.path.exists(path):
        return sp.csr_matrix(shape, dtype=dtype)
    rec = np.fromfile(path, dtype=record)
    # COO -> CSR sums duplicates in float64, as scipy does for the in-memory path,
    # and keeps explicit zeros; the writer sorts indices and drops them unless told
    # to keep them.
    csr = sp.csr_matrix((rec["val"], (rec["row"], rec["col"])), shape=shape)
    if check_from is not None and csr.nnz < rec.size:
        # Summing shrank the block, so some (row, col) came twice: find one (this
        # sort runs only on the error path).
        key = np.sort(rec["row"].astype(np.int64) * shape[1] + rec["col"])
        first = key[np.flatnonzero(key[1:] == key[:-1])[0]]
        raise DuplicateEntryError(check_from + int(first // shape[1]), int(first % shape[1]))
    del rec
    return csr.astype(dtype, copy=False)


def _column_tile(block: sp.csr_matrix, c0: int, c1: int) -> sp.csr_matrix:
    return block[:, c0:c1]
