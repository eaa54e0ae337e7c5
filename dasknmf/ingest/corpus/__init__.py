"""Text corpora into documents x terms count stores: the documents on disk
(:mod:`~.files`), the vocabulary (:mod:`~.vocabulary`), the two-pass ingest
(:mod:`~.ingest`) and the importer (:mod:`~.importer`)."""

from __future__ import annotations

from .importer import CorpusImporter
from .ingest import CorpusIngest, ingest_corpus

__all__ = ["CorpusImporter", "CorpusIngest", "ingest_corpus"]
