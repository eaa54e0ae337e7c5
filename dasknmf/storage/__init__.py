"""The store format: tiled sparse (CSR tiles) and dense matrices in zarr v3.

The rest of dasknmf imports these names from ``dasknmf.storage``, never from its
modules; the layout is described in ``docs/storage.md``. Two groups:

- reading and writing matrices: :func:`write_matrix`, :func:`open_matrix`,
  :func:`matrix_info` (:class:`MatrixInfo`), :func:`read_ids`, :func:`default_chunks`;
- building blocks of the importers (:mod:`dasknmf.ingest`, which this package knows
  nothing of) and of job outputs: where a store lives (:class:`StoreLocation`,
  :func:`is_store_directory`, :func:`is_zarr_directory`), its crash-safe creation
  (:func:`atomic_store`, :func:`check_target`), a write validated before its target
  is touched (:func:`plan_write`, :func:`write_plan`, :func:`clip_chunks`,
  :func:`stored_dtype`, :func:`grid_chunks`), its id arrays (:class:`AxisIds`,
  :func:`write_ids`, ``ROW_IDS``, ``COL_IDS``), its marker attribute
  (``MARKER_KEY``) and metadata (:func:`open_store_meta`);
- factors kept on disk between iterations: :class:`FactorStore`, :func:`factor_bytes`.
"""

from __future__ import annotations

from .api import (
    MatrixInfo,
    WritePlan,
    clip_chunks,
    matrix_info,
    open_matrix,
    open_store_meta,
    plan_write,
    write_matrix,
    write_plan,
)
from .atomic import atomic_store, check_target
from .chunking import default_chunks
from .factors import FactorStore, factor_bytes
from .ids import AxisIds, read_ids, write_ids
from .layout import COL_IDS, MARKER_KEY, ROW_IDS, grid_chunks
from .location import StoreLocation, is_store_directory, is_zarr_directory
from .tiling import stored_dtype

__all__ = [
    "COL_IDS",
    "MARKER_KEY",
    "ROW_IDS",
    "AxisIds",
    "FactorStore",
    "MatrixInfo",
    "StoreLocation",
    "WritePlan",
    "atomic_store",
    "check_target",
    "clip_chunks",
    "default_chunks",
    "factor_bytes",
    "grid_chunks",
    "is_store_directory",
    "is_zarr_directory",
    "matrix_info",
    "open_matrix",
    "open_store_meta",
    "plan_write",
    "read_ids",
    "stored_dtype",
    "write_ids",
    "write_matrix",
    "write_plan",
]
