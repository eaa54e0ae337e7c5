"""Text corpora in the registry of importers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dasknmf.storage import MatrixInfo, is_zarr_directory

from ..base import Importer
from ..registry import register_importer
from .ingest import ingest_corpus

__all__ = ["CorpusImporter"]


class CorpusImporter(Importer):
    """Text corpora, streamed by :func:`ingest_corpus` (with scikit-learn's
    ``CountVectorizer`` defaults) into a documents x terms count store.

    It claims directories that are not zarr stores (their ``.txt`` files are the
    documents); a file of one document per line is a corpus only when asked for
    (``corpus=True``), since a ``.txt`` name is a triplet file otherwise.

    Examples
    --------
    >>> import tempfile
    >>> CorpusImporter().can_read(tempfile.mkdtemp()), CorpusImporter().can_read("docs.txt")
    (True, False)
    """

    name = "corpus"
    description = "a corpus"
    formats = (
        "text corpora: a directory of .txt documents, or a file of one document per line "
        "with corpus=True (--corpus)"
    )
    priority = 60
    sparse_only = True
    function = staticmethod(ingest_corpus)

    def can_read(self, path: str | os.PathLike[str]) -> bool:
        p = Path(path)
        return p.is_dir() and not is_zarr_directory(p)

    def _ingest(self, path: Path, dst: str | os.PathLike[str], **options: Any) -> MatrixInfo:
        return ingest_corpus(path, dst, **options).store


register_importer(CorpusImporter())
