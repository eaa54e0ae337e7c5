"""On-disk matrix formats: tiled sparse (CSR tiles) and dense matrices in zarr v3.

The rest of dasknmf imports these names from ``dasknmf.storage``; the layout is
described in ``docs/storage.md``.
"""

from __future__ import annotations

from .api import MatrixInfo, matrix_info, open_matrix, write_matrix
from .chunking import default_chunks
from .ids import read_ids
from .importers import ingest, read_matrix_file
from .triplets import TripletIngest, ingest_triplets

__all__ = [
    "MatrixInfo",
    "TripletIngest",
    "default_chunks",
    "ingest",
    "ingest_triplets",
    "matrix_info",
    "open_matrix",
    "read_ids",
    "read_matrix_file",
    "write_matrix",
]
