"""Streaming reader of AnnData files: ``.h5ad`` (HDF5, read with h5py) and AnnData
``.zarr`` directories (zarr v2 or v3, read with zarr), without the ``anndata`` package.

Only what an ingest needs is read: the encoding of ``X`` (or ``layers/NAME``) from its
attributes, then one slice at a time: a row block of a CSR matrix (its ``indptr``
slice, then the ``data``/``indices`` range it points to), a row block of a dense
array, or a bounded range of the entries of a CSC matrix, with the column of each
entry recovered from the matching ``indptr`` slice. The ``obs`` and ``var`` indices
(``obs_names``, ``var_names``) are read whole: they become the store's id arrays.

The on-disk layout is anndata's own (``encoding-type`` attributes: ``anndata``,
``csr_matrix``, ``csc_matrix``, ``array``, ``dataframe``, ``string-array``,
``categorical``), that of anndata 0.7 and later.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp
import zarr
import zarr.errors

from dasknmf.errors import (
    InputFileNotFoundError,
    InvalidInputError,
    InvalidParameterError,
    UnsupportedFormatError,
    import_optional,
)
from dasknmf.storage import MARKER_KEY, is_zarr_directory

if TYPE_CHECKING:
    import h5py

from .elements import (
    attribute,
    column_length,
    dataframe_index,
    is_array,
    is_group,
    read_strings,
)

__all__ = ["AnnDataFile"]

logger = logging.getLogger(__name__)

Encoding = Literal["csr", "csc", "dense"]

_SPARSE_ENCODINGS: dict[str, Encoding] = {
    "csr_matrix": "csr",
    "csr_array": "csr",
    "csc_matrix": "csc",
    "csc_array": "csc",
}
_ENCODING_NAMES = {"csr": "CSR sparse", "csc": "CSC sparse", "dense": "dense"}


class AnnDataFile:
    """One matrix of an AnnData file (``X`` or a layer), ready to be read in slices.

    A context manager; the file is opened here and closed on exit.

    Parameters
    ----------
    path : str or os.PathLike
        An ``.h5ad`` file or an AnnData ``.zarr`` directory.
    layer : str, optional
        Read ``layers/<layer>`` instead of ``X``.

    Attributes
    ----------
    element : str
        ``"X"`` or ``"layers/<layer>"``.
    encoding : {"csr", "csc", "dense"}
        How the matrix is stored.
    shape : tuple of int
    dtype : numpy.dtype
    nnz : int or None
        Stored entries of a sparse matrix, None for dense.

    Raises
    ------
    InputFileNotFoundError
        ``path`` does not exist.
    UnsupportedFormatError
        Not HDF5 / zarr, not an AnnData store (a dasknmf store included), or a matrix
        stored in an encoding other than CSR, CSC or a dense 2-D numeric array.
    InvalidInputError
        No ``X`` (or no such layer), or sparse arrays that contradict each other.

    Examples
    --------
    >>> import tempfile, h5py
    >>> p = Path(tempfile.mkdtemp()) / "a.h5ad"
    >>> with h5py.File(p, "w") as f:
    ...     f.attrs["encoding-type"] = "anndata"
    ...     f["X"] = np.eye(3)
    ...     for axis in ("obs", "var"):
    ...         f[f"{axis}/_index"] = np.array([b"a", b"b", b"c"])
    ...         f[axis].attrs["_index"] = "_index"
    >>> with AnnDataFile(p) as a:
    ...     a.encoding, a.shape, a.read_rows(1, 2).tolist(), a.row_ids()
    ('dense', (3, 3), [[0.0, 1.0, 0.0]], ['a', 'b', 'c'])
    """

    def __init__(self, path: str | os.PathLike[str], *, layer: str | None = None) -> None:
        self.path = Path(path)
        if layer is not None and (not isinstance(layer, str) or not layer or "/" in layer):
            raise InvalidParameterError(
                f"The 'layer' parameter must be None or a layer name (no '/'); got {layer!r}."
            )
        self.element = "X" if layer is None else f"layers/{layer}"
        self._file: h5py.File | None = None
        try:
            self.root = self._open_root()
            self._node = self._find_element(layer)
            self._parse_element()
        except BaseException:
            self.close()
            raise

    # -- opening ---------------------------------------------------------------------

    def _open_root(self) -> Any:
        p = self.path
        if not p.exists():
            raise InputFileNotFoundError(f"input file {str(p)!r} does not exist")
        if p.is_dir():
            return self._open_zarr()
        # An optional dependency (pip install 'dasknmf[anndata]'): AnnData .zarr needs none.
        h5py = import_optional("h5py", extra="anndata", needed_for="reading .h5ad files")
        try:
            self._file = h5py.File(p, "r")
        except OSError as exc:
            raise UnsupportedFormatError(
                f"cannot read {str(p)!r} as an AnnData .h5ad file (HDF5): {exc}"
            ) from exc
        self._check_anndata(self._file)
        return self._file

    def _open_zarr(self) -> zarr.Group:
        p = self.path
        if not is_zarr_directory(p):
            raise UnsupportedFormatError(
                f"{str(p)!r} is a directory but not a zarr group (no zarr.json or .zgroup)"
            )
        try:
            root = zarr.open_group(str(p), mode="r")
        except (zarr.errors.ContainsArrayError, FileNotFoundError, ValueError, KeyError) as exc:
            raise UnsupportedFormatError(f"cannot read {str(p)!r} as a zarr group: {exc}") from exc
        if MARKER_KEY in root.attrs:
            raise UnsupportedFormatError(
                f"{str(p)!r} is a dasknmf store already, not an AnnData store: "
                "open it with open_matrix, or copy it"
            )
        self._check_anndata(root)
        return root

    def _check_anndata(self, root: Any) -> None:
        kind = attribute(root, "encoding-type")
        # Files of anndata < 0.7 carry no encoding attributes: accept them by content.
        if kind == "anndata" or (kind is None and "obs" in root and "var" in root):
            return
        what = f"encoding-type {kind!r}" if kind else "no encoding-type attribute"
        raise UnsupportedFormatError(
            f"{str(self.path)!r} is not an AnnData file ({what}; expected 'anndata')"
        )

    def _find_element(self, layer: str | None) -> Any:
        root = self.root
        if layer is None:
            node = root.get("X")
            if node is None or attribute(node, "encoding-type") == "null":
                raise InvalidInputError(
                    f"{str(self.path)!r} has no X matrix (written with X=None)"
                    + self._layers_hint()
                )
            return node
        if "layers" not in root or layer not in root["layers"]:
            raise InvalidInputError(
                f"{str(self.path)!r} has no layer {layer!r}" + self._layers_hint()
            )
        return root["layers"][layer]

    def _layers_hint(self) -> str:
        names = sorted(self.root["layers"].keys()) if "layers" in self.root else []
        if not names:
            return "; it has no layers either"
        return "; its layers: " + ", ".join(names) + " (choose one with layer=NAME / --layer)"

    def _parse_element(self) -> None:
        node = self._node
        kind = attribute(node, "encoding-type")
        if is_group(node):
            if kind not in _SPARSE_ENCODINGS:
                raise self._unsupported(kind or "a group without a sparse encoding")
            self.encoding: Encoding = _SPARSE_ENCODINGS[kind]
            shape = attribute(node, "shape")
            self._parse_sparse(shape)
        elif is_array(node) and kind in ("array", None):
            if len(node.shape) != 2:
                raise self._unsupported(f"a {len(node.shape)}-D array")
            self.encoding = "dense"
            self.shape = (int(node.shape[0]), int(node.shape[1]))
            self.dtype = self._numeric(node.dtype)
            self.nnz = None
        else:
            raise self._unsupported(kind or type(node).__name__)
        if 0 in self.shape:
            raise InvalidInputError(f"{self.where} is empty (shape {self.shape})")

    def _parse_sparse(self, shape: Any) -> None:
        node = self._node
        missing = [k for k in ("data", "indices", "indptr") if k not in node]
        if missing:
            raise InvalidInputError(f"{self.where}: sparse group without {', '.join(missing)}")
        if not (isinstance(shape, (list, tuple)) and len(shape) == 2):
            raise InvalidInputError(f"{self.where}: sparse group with shape {shape!r}")
        self.shape = (int(shape[0]), int(shape[1]))
        self._data, self._indices, self._indptr = (node[k] for k in ("data", "indices", "indptr"))
        self.dtype = self._numeric(self._data.dtype)
        if self._indices.dtype.kind not in "iu" or self._indptr.dtype.kind not in "iu":
            raise self._unsupported(
                f"indices of dtype {self._indices.dtype} / indptr of dtype {self._indptr.dtype}"
            )
        major, minor = self.shape if self.encoding == "csr" else self.shape[::-1]
        self._major, self._minor = major, minor
        self.nnz = int(self._data.shape[0])
        if self._indices.shape != self._data.shape or self._indptr.shape != (major + 1,):
            raise InvalidInputError(
                f"{self.where}: inconsistent sparse arrays (data {self._data.shape}, "
                f"indices {self._indices.shape}, indptr {self._indptr.shape}) for shape "
                f"{self.shape}"
            )
        first, last = self._pointers(0, 1)[0], self._pointers(major, major + 1)[0]
        if first != 0 or last != self.nnz:
            raise InvalidInputError(
                f"{self.where}: indptr runs from {first} to {last}, expected 0 to {self.nnz}"
            )

    def _numeric(self, dtype: np.dtype) -> np.dtype:
        if dtype.kind not in "fiub":
            raise self._unsupported(f"values of dtype {dtype}")
        return np.dtype(dtype)

    @property
    def where(self) -> str:
        """The file and the element, as messages name them: ``'a.h5ad', X``."""
        return f"{str(self.path)!r}, {self.element}"

    def _unsupported(self, what: str) -> UnsupportedFormatError:
        return UnsupportedFormatError(
            f"{self.where} is stored as {what}; dasknmf reads CSR or CSC sparse "
            "matrices (encoding-type csr_matrix / csc_matrix) and dense 2-D numeric arrays"
        )

    # -- context manager -------------------------------------------------------------

    def __enter__(self) -> AnnDataFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HDF5 file (zarr stores hold nothing open)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- ids -------------------------------------------------------------------------

    def row_ids(self) -> list[str]:
        """``obs_names``: one id per row."""
        return self._index("obs", 0)

    def col_ids(self) -> list[str]:
        """``var_names``: one id per column."""
        return self._index("var", 1)

    def _index(self, axis: str, dim: int) -> list[str]:
        where = f"{str(self.path)!r}, {axis}"
        ids = read_strings(dataframe_index(self.root, axis, where), where)
        self._check_length(where, ids.shape[0], dim)
        return ids.tolist()

    def check_ids(self) -> None:
        """Check, reading no names, that obs and var have one name per row / column."""
        for axis, dim in (("obs", 0), ("var", 1)):
            where = f"{str(self.path)!r}, {axis}"
            self._check_length(where, column_length(dataframe_index(self.root, axis, where)), dim)

    def _check_length(self, where: str, length: int, dim: int) -> None:
        if length != self.shape[dim]:
            raise InvalidInputError(
                f"{where}: {length} names for the {self.shape[dim]} "
                f"{('rows', 'columns')[dim]} of {self.element}"
            )

    # -- matrix ----------------------------------------------------------------------

    def _pointers(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self._indptr[start:stop], dtype=np.int64)

    def read_rows(self, start: int, stop: int) -> sp.csr_matrix | np.ndarray:
        """Rows ``[start, stop)`` of a CSR or dense matrix, reading only them.

        CSR: one read of ``indptr[start:stop + 1]``, one of ``data`` and one of
        ``indices`` over the range it spans; the slices are checked (pointers
        non-decreasing and within ``data``, column indices in range).
        """
        if self.encoding == "dense":
            return np.asarray(self._node[start:stop])
        if self.encoding != "csr":
            raise ValueError("read_rows reads CSR or dense matrices; use iter_entries")
        ptr = self._pointers(start, stop + 1)
        lo, hi = int(ptr[0]), int(ptr[-1])
        if np.any(np.diff(ptr) < 0) or lo < 0 or hi > self.nnz:
            raise InvalidInputError(
                f"{self.where}: indptr is decreasing or outside [0, {self.nnz}] in rows "
                f"{start} to {stop - 1}"
            )
        data = np.asarray(self._data[lo:hi])
        indices = self._checked_indices(self._indices[lo:hi], f"rows {start} to {stop - 1}")
        return sp.csr_matrix((data, indices, ptr - lo), shape=(stop - start, self.shape[1]))

    def iter_entries(self, block_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The entries of a CSC matrix as ``(rows, cols, values)`` arrays of at most
        ``block_size`` entries, in storage order (column by column).

        Each step reads at most ``block_size + 1`` pointers and ``block_size``
        entries: memory is bounded whatever the number of columns or entries.
        """
        if self.encoding != "csc":
            raise ValueError("iter_entries reads CSC matrices; use read_rows")
        n_cols, end = self._major, 0
        for c0 in range(0, n_cols, block_size):
            c1 = min(n_cols, c0 + block_size)
            ptr = self._pointers(c0, c1 + 1)
            if ptr[0] != end or np.any(np.diff(ptr) < 0) or ptr[-1] > self.nnz:
                raise InvalidInputError(
                    f"{self.where}: indptr is decreasing or outside [0, {self.nnz}] in "
                    f"columns {c0} to {c1 - 1}"
                )
            end = int(ptr[-1])
            for e0 in range(int(ptr[0]), end, block_size):
                e1 = min(end, e0 + block_size)
                rows = self._checked_indices(
                    self._indices[e0:e1], f"columns {c0} to {c1 - 1}"
                ).astype(np.int64)
                cols = c0 + np.searchsorted(ptr, np.arange(e0, e1), side="right") - 1
                yield rows, cols, np.asarray(self._data[e0:e1])

    def _checked_indices(self, indices: Any, where: str) -> np.ndarray:
        out = np.asarray(indices)
        if out.size and (int(out.min()) < 0 or int(out.max()) >= self._minor):
            bad = int(out.max()) if int(out.max()) >= self._minor else int(out.min())
            axis = "column" if self.encoding == "csr" else "row"
            raise InvalidInputError(
                f"{self.where}: {axis} index {bad} outside [0, {self._minor}) in {where}"
            )
        return out

    def describe(self) -> str:
        """``"X (CSR sparse, float32)"``."""
        return f"{self.element} ({_ENCODING_NAMES[self.encoding]}, {self.dtype})"
