"""AnnData files (``.h5ad``, AnnData ``.zarr``), read with h5py / zarr directly: the
on-disk elements (:mod:`~.elements`), the matrix and ids of a file (:mod:`~.files`),
the streamed ingest (:mod:`~.ingest`) and the importer (:mod:`~.importer`)."""

from __future__ import annotations

from .importer import AnnDataImporter
from .ingest import AnnDataIngest, ingest_anndata

__all__ = ["AnnDataImporter", "AnnDataIngest", "ingest_anndata"]
