"""Triplet files in the registry of importers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dasknmf.storage import MatrixInfo

from ..base import Importer
from ..registry import register_importer
from .columns import COMPRESSIONS, PARQUET_SUFFIX, TEXT_SUFFIXES
from .ingest import ingest_triplets

__all__ = ["TripletImporter"]


class TripletImporter(Importer):
    """Row id, column id, value files, streamed by :func:`ingest_triplets` into a
    sparse store that keeps explicit zeros (with its defaults: no hold-out split).

    Examples
    --------
    >>> TripletImporter().can_read("ratings.tsv.bz2"), "holdout" in TripletImporter().option_names
    (True, True)
    """

    name = "triplets"
    description = "a triplet file"
    suffixes = (*(text + z for text in TEXT_SUFFIXES for z in COMPRESSIONS), PARQUET_SUFFIX)
    formats = "row,col,value triplets: .csv, .tsv, .txt (each optionally .gz or .bz2), .parquet"
    priority = 40
    sparse_only = True
    function = staticmethod(ingest_triplets)

    def _ingest(self, path: Path, dst: str | os.PathLike[str], **options: Any) -> MatrixInfo:
        return ingest_triplets(path, dst, **options).train


register_importer(TripletImporter())
