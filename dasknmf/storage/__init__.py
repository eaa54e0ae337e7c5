"""On-disk matrix formats: tiled sparse (CSR tiles) and dense matrices in zarr v3.

The rest of dasknmf imports these names from ``dasknmf.storage``; the layout is
described in ``docs/storage.md``.
"""

from __future__ import annotations

from .anndata_ingest import AnnDataIngest, ingest_anndata
from .api import MatrixInfo, matrix_info, open_matrix, write_matrix
from .chunking import default_chunks
from .corpus import CorpusIngest, ingest_corpus
from .ids import read_ids
from .importers import ingest, read_matrix_file
from .triplets import TripletIngest, ingest_triplets

__all__ = [
    "AnnDataIngest",
    "CorpusIngest",
    "MatrixInfo",
    "TripletIngest",
    "default_chunks",
    "ingest",
    "ingest_anndata",
    "ingest_corpus",
    "ingest_triplets",
    "matrix_info",
    "open_matrix",
    "read_ids",
    "read_matrix_file",
    "write_matrix",
]
