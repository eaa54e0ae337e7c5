"""AnnData files in the registry of importers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dasknmf.errors import InvalidInputError
from dasknmf.storage import MatrixInfo, is_zarr_directory

from ..base import Importer
from ..registry import register_importer
from .files import AnnDataFile
from .ingest import ingest_anndata

__all__ = ["AnnDataImporter"]


class AnnDataImporter(Importer):
    """``.h5ad`` files and AnnData ``.zarr`` directories, streamed by
    :func:`ingest_anndata`: ``X``, or ``layers/<layer>`` with the ``layer`` option.

    Any directory holding a zarr group is taken for AnnData (and refused by its
    content when it is not), so that a dasknmf store is never read as a corpus.

    Examples
    --------
    >>> AnnDataImporter().can_read("pbmc.zarr"), AnnDataImporter().can_read("v.mtx")
    (True, False)
    """

    name = "anndata"
    description = "an AnnData file"
    suffixes = (".h5ad",)
    formats = "AnnData: .h5ad, AnnData .zarr directories"
    priority = 50
    function = staticmethod(ingest_anndata)

    def can_read(self, path: str | os.PathLike[str]) -> bool:
        p = Path(path)
        return p.name.lower().endswith((".h5ad", ".zarr")) or is_zarr_directory(p)

    def shape(self, path: str | os.PathLike[str]) -> tuple[int, int] | None:
        # X's encoding and shape attributes (a dense X: its dataset's shape); its
        # values are not read. Layers have X's shape.
        try:
            with AnnDataFile(path) as source:
                return source.shape
        except InvalidInputError:
            return None  # no X (written with X=None): ingest names what is wrong

    def _ingest(self, path: Path, dst: str | os.PathLike[str], **options: Any) -> MatrixInfo:
        return ingest_anndata(path, dst, **options).store


register_importer(AnnDataImporter())
