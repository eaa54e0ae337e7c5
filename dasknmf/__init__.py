"""dasknmf: distributed, out-of-core non-negative matrix factorisation.

``V ≈ W H`` for a large non-negative ``V`` stored as tiles in zarr and processed by
dask, on a laptop or on a ``distributed`` cluster.

Examples
--------
>>> import numpy as np, dasknmf
>>> X = np.random.default_rng(0).random((50, 30))
>>> model = dasknmf.NMF(n_components=4, init="random", random_state=0, max_iter=50)
>>> W = model.fit_transform(X)
>>> W.shape
(50, 4)
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from dasknmf.errors import (
    CorruptStoreError,
    DaskNMFError,
    DeviceUnavailableError,
    InputFileNotFoundError,
    InvalidInputError,
    InvalidParameterError,
    NotAStoreError,
    StoreExistsError,
    StoreNotFoundError,
    UnsupportedFormatError,
)

__version__ = "0.1.0"

#: The public names defined in other modules, each imported from its module on first
#: use (PEP 562, as SciPy does), so that ``import dasknmf`` and ``dasknmf --version``
#: load neither dask nor scikit-learn. ``tests/test_structure.py`` reads this table as
#: the imports it stands for.
_LAZY_ATTRIBUTES = {
    "PrintProgress": "dasknmf.callbacks",
    "NMF": "dasknmf.estimator",
    "RankSweep": "dasknmf.estimator",
    "FitState": "dasknmf.fit_state",
    "IterationInfo": "dasknmf.fit_state",
    "AnnDataIngest": "dasknmf.ingest",
    "CorpusIngest": "dasknmf.ingest",
    "TripletIngest": "dasknmf.ingest",
    "ingest_anndata": "dasknmf.ingest",
    "ingest_corpus": "dasknmf.ingest",
    "ingest_mtx": "dasknmf.ingest",
    "ingest_triplets": "dasknmf.ingest",
    "MatrixInfo": "dasknmf.storage",
    "matrix_info": "dasknmf.storage",
    "open_matrix": "dasknmf.storage",
    "read_ids": "dasknmf.storage",
    "write_matrix": "dasknmf.storage",
    "SweepProgress": "dasknmf.sweep.loop",
    "SweepState": "dasknmf.sweep.loop",
}


def __getattr__(name: str) -> Any:
    module = _LAZY_ATTRIBUTES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_ATTRIBUTES, "ingest"})


class _Package(types.ModuleType):
    """The ``dasknmf`` module, whose attribute ``ingest`` is the function
    :func:`dasknmf.ingest.dispatch.ingest`, not the package of the same name.

    Importing the package ``dasknmf.ingest`` (for its importers, say) sets the
    attribute ``ingest`` of its parent to the package; the setter keeps the function.
    """

    @property
    def ingest(self) -> Any:
        from dasknmf.ingest import ingest

        return ingest

    @ingest.setter
    def ingest(self, value: Any) -> None:
        pass


sys.modules[__name__].__class__ = _Package

__all__ = [
    "NMF",
    "AnnDataIngest",
    "CorpusIngest",
    "CorruptStoreError",
    "DaskNMFError",
    "DeviceUnavailableError",
    "FitState",
    "InputFileNotFoundError",
    "InvalidInputError",
    "InvalidParameterError",
    "IterationInfo",
    "MatrixInfo",
    "NotAStoreError",
    "PrintProgress",
    "RankSweep",
    "StoreExistsError",
    "StoreNotFoundError",
    "SweepProgress",
    "SweepState",
    "TripletIngest",
    "UnsupportedFormatError",
    "__version__",
    "ingest",
    "ingest_anndata",
    "ingest_corpus",
    "ingest_mtx",
    "ingest_triplets",
    "matrix_info",
    "open_matrix",
    "read_ids",
    "write_matrix",
]
