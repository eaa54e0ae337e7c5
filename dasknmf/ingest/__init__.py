"""Importers: files of other formats turned into :mod:`dasknmf.storage` stores.

Each format is one :class:`~dasknmf.ingest.base.Importer` (MatrixMarket, ``.npz``,
``.npy``, triplet files, AnnData, text corpora), registered in
:mod:`dasknmf.ingest.registry`; :func:`ingest` and :func:`read_matrix_file` ask the
registry which one a path is. This package builds on :mod:`dasknmf.storage`, never
the reverse; the formats are described in ``docs/storage.md``.
"""

from __future__ import annotations

from .anndata import AnnDataImporter, AnnDataIngest, ingest_anndata
from .base import Importer
from .corpus import CorpusImporter, CorpusIngest, ingest_corpus
from .dispatch import ingest, ingest_function, input_kind, read_matrix_file
from .mtx import MtxImporter, ingest_mtx
from .numpy_files import NpyImporter, NpzImporter
from .registry import get_importer, importer_for, importers, register_importer
from .triplets import TripletImporter, TripletIngest, ingest_triplets

__all__ = [
    "AnnDataImporter",
    "AnnDataIngest",
    "CorpusImporter",
    "CorpusIngest",
    "Importer",
    "MtxImporter",
    "NpyImporter",
    "NpzImporter",
    "TripletImporter",
    "TripletIngest",
    "get_importer",
    "importer_for",
    "importers",
    "ingest",
    "ingest_anndata",
    "ingest_corpus",
    "ingest_function",
    "ingest_mtx",
    "ingest_triplets",
    "input_kind",
    "read_matrix_file",
    "register_importer",
]
