"""Row and column ids of triplet files: mapping them to indices, storing, reading back.

A triplet file names its rows and columns by ids (``user,item,rating``). Along each
axis, ids that are all non-negative integers are used as indices directly; otherwise
every id is numbered in order of first appearance and the numbering is stored in the
matrix store as a 1-D string array (``row_ids`` / ``col_ids``, see
:mod:`dasknmf.storage.layout`), so that results can be translated back to ids with
:func:`read_ids`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from array import array
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import zarr

from dasknmf.errors import CorruptStoreError, InvalidParameterError

from .api import open_store_meta
from .layout import COL_IDS, ID_ARRAYS, ROW_IDS

__all__ = ["AxisIds", "read_ids", "write_ids"]

logger = logging.getLogger(__name__)

# Decimal ids of up to 18 digits fit int64, so they can be used as indices.
_INTEGER_ID = r"^[0-9]{1,18}$"
_ID_CHUNK = 2**20


class AxisIds:
    """The ids of one axis of a triplet file and their indices.

    Fed every id column batch twice: :meth:`observe` in a first pass over the file
    learns the ids, :meth:`lookup` in a second pass turns ids into indices.

    Integer mode (the start, unless ``as_strings``): every id is a non-negative
    decimal integer (surrounding whitespace ignored, so ``" 7"``, ``"7"`` and
    ``"007"`` are one id) and is its own index; only the largest is kept.
    String mode: ids are numbered in order of first appearance; a dict id -> index
    plus a 64-bit hash per id (the key of the hold-out split) are kept, about
    100 bytes plus the id's length per distinct id.

    Parameters
    ----------
    axis : {"row", "column"}
        Used in messages.
    as_strings : bool, default False
        Start in string mode. :meth:`observe` returns False when an integer-mode
        axis meets a non-integer id: the pass must then start again in string mode,
        because the ids already seen must be numbered in order of appearance too.

    Examples
    --------
    >>> ids = AxisIds("row", as_strings=True)
    >>> ids.observe(pa.array(["b", "a", "b"]))
    True
    >>> ids.lookup(pa.array(["a", "b"]))[0]
    array([1, 0])
    >>> ids.labels
    ['b', 'a']
    """

    def __init__(self, axis: Literal["row", "column"], *, as_strings: bool = False) -> None:
        self.axis = axis
        self.integer = not as_strings
        self.max_index = -1
        self._index: dict[str, int] = {}
        self._hashes = array("Q")
        self._keys: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of indices along the axis (largest integer id + 1, or distinct ids)."""
        return self.max_index + 1 if self.integer else len(self._index)

    @property
    def labels(self) -> list[str] | None:
        """The ids in index order (string mode), or None (integer mode)."""
        return None if self.integer else list(self._index)

    def label(self, index: int) -> str:
        """The id of ``index``, as text."""
        if self.integer:
            return str(index)
        # A scan, not a reverse dict: this serves error messages only.
        return next(k for k, v in self._index.items() if v == index)

    def observe(self, col: pa.Array) -> bool:
        """Learn the ids of a batch; False asks for a restart in string mode."""
        if self.integer:
            ints = _as_indices(col)
            if ints is None:
                return False
            if ints.size:
                self.max_index = max(self.max_index, int(ints.max()))
            return True
        for text in _distinct(col).to_pylist():
            if text not in self._index:
                self._index[text] = len(self._index)
                digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
                self._hashes.append(int.from_bytes(digest, "little"))
        return True

    def lookup(self, col: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Indices of a batch's ids and their uint64 split keys.

        Raises
        ------
        KeyError
            An id that :meth:`observe` never saw (the file changed between passes).
        """
        if self.integer:
            ints = _as_indices(col)
            if ints is None or (ints.size and int(ints.max()) > self.max_index):
                raise KeyError(f"{self.axis} ids differ from the first pass")
            return ints, ints.astype(np.uint64)
        if self._keys is None:
            self._keys = np.frombuffer(self._hashes, dtype=np.uint64).copy()
        enc = pc.dictionary_encode(_as_text(col))
        texts = pc.utf8_trim_whitespace(enc.dictionary).to_pylist()
        table = np.fromiter((self._index[t] for t in texts), dtype=np.int64, count=len(texts))
        idx = table[np.asarray(enc.indices, dtype=np.int64)]
        return idx, self._keys[idx]


def _as_text(col: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return col
    return pc.cast(col, pa.string())


def _distinct(col: pa.Array) -> pa.Array:
    """The batch's distinct ids (trimmed) in order of first appearance."""
    return pc.utf8_trim_whitespace(pc.unique(_as_text(col)))


def _as_indices(col: pa.Array) -> np.ndarray | None:
    """Integer ids as int64 indices, or None when some id is not a non-negative int."""
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if pa.types.is_integer(col.type):
        ints = np.asarray(pc.cast(col, pa.int64()), dtype=np.int64)
        return None if ints.size and ints.min() < 0 else ints
    enc = pc.dictionary_encode(_as_text(col))
    texts = pc.utf8_trim_whitespace(enc.dictionary)
    if not pc.all(pc.match_substring_regex(texts, _INTEGER_ID)).as_py() and len(texts):
        return None
    table = np.asarray(pc.cast(texts, pa.int64()), dtype=np.int64)
    return table[np.asarray(enc.indices, dtype=np.int64)]


# -- in the store ----------------------------------------------------------------------


def write_ids(group: zarr.Group, rows: list[str] | None, cols: list[str] | None) -> None:
    """Store the id lists of the axes that have one as string arrays in ``group``.

    Examples
    --------
    >>> g = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    >>> write_ids(g, ["u1", "u2"], None)
    >>> sorted(g.array_keys())
    ['row_ids']
    """
    for name, labels in zip(ID_ARRAYS, (rows, cols), strict=True):
        if labels is None:
            continue
        values = np.asarray(labels, dtype=object)
        arr = group.create_array(
            name, shape=values.shape, chunks=(max(1, min(values.size, _ID_CHUNK)),), dtype=str
        )
        arr[:] = values


# Every spelling users type for an axis (NumPy's 0 / 1, pandas' names, the short
# forms); the message of a refusal lists them.
_AXES: dict[Any, int] = {
    0: 0,
    1: 1,
    "rows": 0,
    "row": 0,
    "index": 0,
    "columns": 1,
    "column": 1,
    "cols": 1,
    "col": 1,
}


def read_ids(
    path: str | os.PathLike[str],
    axis: int | Literal["rows", "columns"],
    *,
    storage_options: dict[str, Any] | None = None,
) -> np.ndarray:
    """The ids of the rows or columns of a store: ``ids[i]`` names index ``i``.

    Stores ingested from triplet files with non-integer ids along an axis hold the
    ids in order of first appearance in the file; along other axes (integer ids, or
    a store written from a matrix) the ids are the indices themselves.

    Parameters
    ----------
    path : str or os.PathLike
        Local directory or fsspec URL of a matrix store.
    axis : {0, 1, "rows", "columns"}
        0 or ``"rows"`` for row ids, 1 or ``"columns"`` for column ids; also
        ``"row"``, ``"index"`` and ``"column"``, ``"cols"``, ``"col"``, in any case.
    storage_options : dict, optional
        fsspec options for URL paths.

    Returns
    -------
    numpy.ndarray
        One id per index: strings, or ``arange(n)`` (int64) where ids are indices.

    Raises
    ------
    InvalidParameterError
        ``axis`` is not one of the values above.
    StoreNotFoundError, NotAStoreError, CorruptStoreError
        As for :func:`~dasknmf.storage.open_matrix`; also an id array whose length
        differs from the shape.

    Examples
    --------
    >>> from dasknmf.storage import write_matrix
    >>> write_matrix(np.eye(3), "memory://doc-ids")
    >>> read_ids("memory://doc-ids", "rows")
    array([0, 1, 2])
    """
    key = axis.lower() if isinstance(axis, str) else axis
    if isinstance(axis, bool) or not isinstance(key, (int, str)) or key not in _AXES:
        spellings = ", ".join(repr(a) for a in _AXES)
        raise InvalidParameterError(
            f"The 'axis' parameter must be 0 or 'rows' for row ids, 1 or 'columns' for "
            f"column ids (accepted: {spellings}); got {axis!r}."
        )
    i = _AXES[key]
    loc, group, meta = open_store_meta(path, storage_options)
    name = (ROW_IDS, COL_IDS)[i]
    if name not in group:
        return np.arange(meta.shape[i], dtype=np.int64)
    ids = group[name]
    if not isinstance(ids, zarr.Array) or ids.shape != (meta.shape[i],):
        raise CorruptStoreError(
            f"store {loc.path!r}: id array {name!r} has shape "
            f"{getattr(ids, 'shape', None)}, expected ({meta.shape[i]},)"
        )
    return np.asarray(ids[:])
