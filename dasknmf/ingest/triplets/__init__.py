"""Triplet files (``row id, column id, value`` per line: ratings, implicit feedback):
their columns (:mod:`~.columns`), streamed reading (:mod:`~.files`), the ingest with
its hold-out split (:mod:`~.ingest`) and the importer (:mod:`~.importer`)."""

from __future__ import annotations

from .importer import TripletImporter
from .ingest import TripletIngest, ingest_triplets

__all__ = ["TripletImporter", "TripletIngest", "ingest_triplets"]
