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

from dasknmf.callbacks import PrintProgress
from dasknmf.errors import (
    CorruptStoreError,
    DaskNMFError,
    InvalidInputError,
    InvalidParameterError,
    NotAStoreError,
    StoreExistsError,
    StoreNotFoundError,
    UnsupportedFormatError,
)
from dasknmf.estimator import NMF
from dasknmf.fit import IterationInfo

__version__ = "0.1.0"

__all__ = [
    "NMF",
    "CorruptStoreError",
    "DaskNMFError",
    "InvalidInputError",
    "InvalidParameterError",
    "IterationInfo",
    "NotAStoreError",
    "PrintProgress",
    "StoreExistsError",
    "StoreNotFoundError",
    "UnsupportedFormatError",
    "__version__",
]


def __getattr__(name: str):
    # The storage layer is imported on first use so `import dasknmf` stays light.
    from dasknmf import storage

    if name in {"write_matrix", "open_matrix", "matrix_info", "ingest", "MatrixInfo"}:
        return getattr(storage, name)
    raise AttributeError(f"module 'dasknmf' has no attribute {name!r}")
