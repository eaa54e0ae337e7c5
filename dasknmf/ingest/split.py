"""The hold-out split of triplet ingest: which entries are held out, and where.

An entry's side is a hash of its row key, column key and the seed, compared with the
hold-out fraction; keys are integer ids themselves or a hash of string ids
(:class:`~dasknmf.storage.AxisIds`), so the split depends on the ids and the
seed only: not on block sizes, batch boundaries or the order of lines.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

__all__ = ["default_holdout_path", "held_out", "split_matrix"]


def default_holdout_path(dst: str | os.PathLike[str]) -> str:
    """Where the hold-out store of ``dst`` goes: ``<stem>.holdout.zarr`` beside it.

    Examples
    --------
    >>> default_holdout_path("s3://bucket/ratings.zarr")
    's3://bucket/ratings.holdout.zarr'
    """
    text = os.fspath(dst)
    if "://" in text:
        head, _, name = text.rstrip("/").rpartition("/")
        return f"{head}/{_holdout_name(name)}"
    path = Path(text).expanduser().absolute()
    return str(path.with_name(_holdout_name(path.name)))


def _holdout_name(name: str) -> str:
    stem = name[: -len(".zarr")] if name.lower().endswith(".zarr") else name
    return f"{stem}.holdout.zarr"


def _mix(z: np.ndarray) -> np.ndarray:
    # The splitmix64 finaliser: every input bit affects every output bit (uint64
    # arrays wrap on overflow, which is what it wants).
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def held_out(row_keys: np.ndarray, col_keys: np.ndarray, seed: int, fraction: float) -> np.ndarray:
    """Whether each entry goes to the hold-out side: a hash of its keys and the seed.

    Keys are the integer ids themselves, or a hash of string ids, so an entry's side
    depends on its ids and the seed only, not on where it is in the file.

    Examples
    --------
    >>> keys = np.arange(100_000, dtype=np.uint64)
    >>> float(held_out(keys, keys[::-1], 0, 0.25).mean().round(2))
    0.25
    """
    salt = _mix(np.asarray([seed], dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15))
    h = _mix(_mix(row_keys.astype(np.uint64) ^ salt) ^ col_keys.astype(np.uint64))
    # The top 53 bits as a uniform float in [0, 1).
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53 < fraction


def split_matrix(
    X: sp.spmatrix, fraction: float, seed: int
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """An in-memory sparse matrix split as triplet ingest splits a file with integer
    ids: ``(train, held_out)``, both of ``X``'s shape, stored zeros kept.

    Examples
    --------
    >>> X = sp.random(300, 200, density=0.1, format="csr", random_state=0)
    >>> train, test = split_matrix(X, 0.2, seed=0)
    >>> train.nnz + test.nnz == X.nnz, round(test.nnz / X.nnz, 1)
    (True, 0.2)
    """
    coo = sp.coo_matrix(X)
    out = held_out(coo.row, coo.col, seed, fraction)

    def part(keep: np.ndarray) -> sp.csr_matrix:
        # Built from COO without summing duplicates or dropping zeros: a stored zero is
        # an observed entry.
        rows, cols, data = coo.row[keep], coo.col[keep], coo.data[keep]
        order = np.lexsort((cols, rows))
        indptr = np.zeros(X.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=X.shape[0]), out=indptr[1:])
        return sp.csr_matrix((data[order], cols[order], indptr), shape=X.shape)

    return part(~out), part(out)
