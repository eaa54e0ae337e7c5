"""MatrixMarket files (``.mtx``, optionally ``.gz``/``.bz2`` compressed): the
streaming reader (:mod:`~dasknmf.ingest.mtx.files`) and the importer."""

from __future__ import annotations

from .files import MtxHeader, iter_mtx_entries, read_mtx_header
from .ingest import MtxImporter, ingest_mtx

__all__ = ["MtxHeader", "MtxImporter", "ingest_mtx", "iter_mtx_entries", "read_mtx_header"]
