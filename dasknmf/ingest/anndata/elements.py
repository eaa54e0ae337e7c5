"""How anndata lays out its elements on disk, for HDF5 (h5py) and zarr alike.

An AnnData file is a tree of groups and arrays whose ``encoding-type`` attributes
say what each holds (``anndata``, ``csr_matrix``, ``array``, ``dataframe``,
``string-array``, ``categorical``, ``null`` ...). These helpers read attributes,
tell groups from arrays in both libraries, and read the string columns that hold
``obs_names`` and ``var_names``.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import zarr

from dasknmf.errors import InvalidInputError, UnsupportedFormatError

__all__ = [
    "attribute",
    "column_length",
    "dataframe_index",
    "is_array",
    "is_group",
    "read_strings",
]


def _h5py_types(name: str) -> tuple[type, ...]:
    # h5py is optional (pip install 'dasknmf[anndata]'), and a node can be an HDF5 one
    # only once it has been imported, so an AnnData .zarr is read without it.
    h5py = sys.modules.get("h5py")
    return (getattr(h5py, name),) if h5py is not None else ()


def is_group(node: Any) -> bool:
    """Whether ``node`` is an HDF5 or zarr group."""
    return isinstance(node, (zarr.Group, *_h5py_types("Group")))


def is_array(node: Any) -> bool:
    """Whether ``node`` is an HDF5 dataset or a zarr array."""
    return isinstance(node, (zarr.Array, *_h5py_types("Dataset")))


def attribute(node: Any, key: str) -> Any:
    """An attribute as plain Python (str, list), or None when absent."""
    value = node.attrs.get(key)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def dataframe_index(root: Any, axis: str, where: str) -> Any:
    """The index column of the dataframe ``root[axis]`` (``obs`` or ``var``).

    Raises
    ------
    InvalidInputError
        No such dataframe (or one of anndata < 0.7, a compound dataset), or its
        index column is missing; naming ``where``.
    """
    frame = root.get(axis)
    if frame is None or not is_group(frame):
        raise InvalidInputError(
            f"{where}: no {axis} dataframe (a file of anndata < 0.7? re-save it with a "
            "recent anndata)"
        )
    name = attribute(frame, "_index") or "_index"
    if name not in frame:
        raise InvalidInputError(f"{where}: the index column {name!r} is missing")
    return frame[name]


def column_length(node: Any) -> int:
    """Length of a dataframe column (a categorical one: of its codes), unread."""
    if is_group(node) and "codes" in node:
        node = node["codes"]
    return int(getattr(node, "shape", (-1,))[0])


def read_strings(node: Any, where: str) -> np.ndarray:
    """The values of a dataframe column (strings, categories or numbers) as a 1-D
    object array of str.

    Examples
    --------
    >>> g = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    >>> g["names"] = np.array([1, 2])
    >>> read_strings(g["names"], "x").tolist()
    ['1', '2']
    """
    kind = attribute(node, "encoding-type")
    if is_group(node) and kind == "categorical":
        codes = np.asarray(node["codes"][:], dtype=np.int64)
        categories = read_strings(node["categories"], where)
        if codes.size and (codes.min() < 0 or codes.max() >= categories.size):
            raise InvalidInputError(f"{where}: the index holds missing or invalid categories")
        return categories[codes]
    if not is_array(node) or len(node.shape) != 1:
        raise UnsupportedFormatError(f"{where}: index stored as {kind or type(node).__name__}")
    h5py = sys.modules.get("h5py")
    if (
        h5py is not None
        and isinstance(node, h5py.Dataset)
        and h5py.check_string_dtype(node.dtype) is not None
    ):
        return np.asarray(node.asstr()[:], dtype=object)
    values = np.asarray(node[:])
    out = np.empty(values.shape, dtype=object)
    out[:] = [v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist()]
    return out
