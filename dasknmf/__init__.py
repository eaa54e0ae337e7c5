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
    DeviceUnavailableError,
    InputFileNotFoundError,
    InvalidInputError,
    InvalidParameterError,
    NotAStoreError,
    StoreExistsError,
    StoreNotFoundError,
    UnsupportedFormatError,
)
from dasknmf.estimator import NMF, RankSweep
from dasknmf.fit import FitState, IterationInfo
from dasknmf.ingest import (
    AnnDataIngest,
    CorpusIngest,
    TripletIngest,
    ingest,
    ingest_anndata,
    ingest_corpus,
    ingest_mtx,
    ingest_triplets,
)
from dasknmf.storage import MatrixInfo, matrix_info, open_matrix, read_ids, write_matrix
from dasknmf.sweep.loop import SweepProgress, SweepState

__version__ = "0.1.0"

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
