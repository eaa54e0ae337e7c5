"""On-disk matrix formats: tiled sparse (CSR tiles) and dense matrices in zarr v3.

The rest of dasknmf imports these names from ``dasknmf.storage``; the layout is
described in ``docs/storage.md``.
"""

from __future__ import annotations

from .api import MatrixInfo, matrix_info, open_matrix, write_matrix
from .chunking import default_chunks
from .importers import ingest, read_matrix_file

__all__ = [
    "MatrixInfo",
    "default_chunks",
    "ingest",
    "matrix_info",
    "open_matrix",
    "read_matrix_file",
    "write_matrix",
]
