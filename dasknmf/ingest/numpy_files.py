"""NumPy and SciPy files: ``.npz`` (``scipy.sparse.save_npz`` or one array) and ``.npy``.

A ``.npy`` file is memory-mapped, so :func:`~dasknmf.storage.write_matrix` writes it
tile by tile and it may be larger than RAM; a ``.npz`` is read into memory first.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from dasknmf.errors import UnsupportedFormatError

from .base import require_file
from .in_memory import InMemoryImporter
from .registry import register_importer

__all__ = ["NpyImporter", "NpzImporter"]


class NpzImporter(InMemoryImporter):
    """``.npz`` files: a SciPy sparse matrix (read as CSR) or a single 2-D array.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.npz")
    >>> sp.save_npz(p, sp.eye(3, format="csc"))
    >>> NpzImporter().read(p).format
    'csr'
    """

    name = "npz"
    description = "a .npz file"
    suffixes = (".npz",)
    formats = ".npz (scipy.sparse or one numpy array)"
    priority = 20

    def shape(self, path: str | os.PathLike[str]) -> tuple[int, int] | None:
        # The sparse matrix's stored shape, or the one array's .npy header: no data read.
        p = Path(path)
        require_file(p)
        try:
            with np.load(p, allow_pickle=False) as npz:
                keys = list(npz.files)
                if "shape" in keys and "format" in keys:
                    return _pair(npz["shape"])
            if len(keys) == 1:
                with zipfile.ZipFile(p) as archive, archive.open(archive.namelist()[0]) as f:
                    return _npy_shape(f)
        except (ValueError, OSError, zipfile.BadZipFile):
            return None  # ingest reports what is wrong with the file
        return None

    def load(self, path: Path) -> np.ndarray | sp.csr_matrix:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            if "format" in keys and {"data", "shape"} <= set(keys):
                return sp.csr_matrix(sp.load_npz(path))
            if len(keys) == 1:
                return np.asarray(npz[keys[0]])
        raise UnsupportedFormatError(
            f"cannot import {str(path)!r}: a .npz must be written by scipy.sparse.save_npz "
            f"or hold exactly one array; it holds {keys}"
        )


class NpyImporter(InMemoryImporter):
    """``.npy`` files, memory-mapped read-only (read on access).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(p, np.eye(2))
    >>> type(NpyImporter().read(p)).__name__
    'memmap'
    """

    name = "npy"
    description = "a .npy file"
    suffixes = (".npy",)
    formats = ".npy"
    priority = 30

    def shape(self, path: str | os.PathLike[str]) -> tuple[int, int] | None:
        p = Path(path)
        require_file(p)
        try:
            with open(p, "rb") as f:
                return _npy_shape(f)
        except (ValueError, OSError):
            return None  # ingest reports what is wrong with the file

    def load(self, path: Path) -> np.ndarray:
        return np.load(path, mmap_mode="r", allow_pickle=False)


def _npy_shape(f) -> tuple[int, int] | None:
    """The shape in a ``.npy`` header (formats 1.0 and 2.0, what NumPy writes)."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return _pair(np.lib.format.read_array_header_1_0(f)[0])
    if version == (2, 0):
        return _pair(np.lib.format.read_array_header_2_0(f)[0])
    return None


def _pair(shape) -> tuple[int, int] | None:
    """A 2-D shape as ints; ``None`` for another number of dimensions (ingest refuses
    those with its own message)."""
    shape = tuple(int(s) for s in shape)
    return shape if len(shape) == 2 else None  # type: ignore[return-value]


register_importer(NpzImporter())
register_importer(NpyImporter())
