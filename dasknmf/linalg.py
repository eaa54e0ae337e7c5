"""Randomized truncated SVD of a tiled (sparse or dense) dask matrix.

Halko, Martinsson & Tropp's range finder with power iterations, built only from the
tile products of :mod:`dasknmf.products` and dask's tall-skinny QR, so it works on
sparse tiles and never gathers more than an ``m × l`` or ``l × n`` factor (``l`` =
rank + oversampling), chunked like ``V``.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from dasknmf import products
from dasknmf.random import STREAM_SKETCH, standard_normal


def _orthonormal_rows(X: da.Array) -> da.Array:
    """An orthonormal basis of the row space of a wide ``l × n`` array, as ``l × n``."""
    q, _ = da.linalg.qr(X.T)
    return q.T


def randomized_svd(
    V: da.Array,
    rank: int,
    *,
    seed: int,
    n_oversamples: int = 10,
    n_power_iter: int | None = None,
) -> tuple[da.Array, np.ndarray, da.Array]:
    """Approximate leading singular triplets of ``V`` (float64).

    Parameters
    ----------
    V : dask.array.Array
        ``m × n`` tiled matrix.
    rank : int
        Number of singular triplets wanted.
    seed : int
        Seed of the Gaussian sketch (chunking-independent, see :mod:`dasknmf.random`).
    n_oversamples : int
        Extra sketch columns; the sketch has ``min(rank + n_oversamples, m, n)``.
    n_power_iter : int, optional
        Power iterations (two passes over ``V`` each). Default as scikit-learn's
        ``randomized_svd``: 7 when ``rank < 0.1 · min(m, n)``, else 4.

    Returns
    -------
    U : dask.array.Array
        ``m × rank``, chunked like ``V``'s rows.
    s : numpy.ndarray
        ``rank`` singular values, descending.
    Vt : dask.array.Array
        ``rank × n``, chunked like ``V``'s columns.
    """
    m, n = V.shape
    width = min(rank + n_oversamples, m, n)
    if n_power_iter is None:
        n_power_iter = 7 if rank < 0.1 * min(m, n) else 4
    sketch = standard_normal(
        (width, n), ((width,), V.chunks[1]), seed=seed, stream=STREAM_SKETCH, wide=True
    )
    Q, _ = da.linalg.qr(products.v_times_ht(V, sketch))
    (Q,) = dask.persist(Q)
    # One pass over V per graph: a graph that read V twice would hold every tile
    # from its first read until its second, i.e. all of V, when V is out of core.
    for _ in range(n_power_iter):
        (Z,) = dask.persist(_orthonormal_rows(products.wt_times_v(Q, V)))
        Q, _ = da.linalg.qr(products.v_times_ht(V, Z))
        (Q,) = dask.persist(Q)
    # B = Qᵀ V is small in one dimension; its SVD through the tall Bᵀ = u s vt.
    u, s, vt = da.linalg.svd(products.wt_times_v(Q, V).T)
    U = products.times_small(Q, vt.T)
    U, s, Vt = dask.persist(U[:, :rank], s[:rank], u.T[:rank])
    return U, np.asarray(s.compute()), Vt
