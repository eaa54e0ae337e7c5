"""Top-``n`` items per user of a ratings model, row block by row block.

A user's scores are their row of ``W H``; the ``m × n`` matrix is never formed: one
task per row block of ``V`` computes its rows' scores a batch of rows at a time
(about :data:`BATCH_FLOATS` numbers), hides the items each user rated (the stored
entries of its tiles) and keeps the ``n`` best of each row.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp

from dasknmf import devices, products
from dasknmf.kernels.tiles import is_sparse

__all__ = ["BATCH_FLOATS", "top_items", "top_items_by_row_block"]

#: Scores held at once by a task (float64 numbers): a batch of rows times ``n``.
BATCH_FLOATS = 2**22


def top_items(
    w: np.ndarray,
    tiles: list[Any],
    H: np.ndarray,
    col_starts: list[int],
    n_top: int,
    *,
    exclude_seen: bool,
    bounds: tuple[float, float] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_top`` best items of each row of ``w`` (``r × k``) against ``H``
    (``k × n``): ``(items, scores)``, both ``r × n_top``, best first (ties by item).

    ``tiles`` are the rows' tiles of the ratings (sparse: stored entries are rated,
    explicit zeros included; dense: non-NaN entries), the ``j``-th starting at column
    ``col_starts[j]``; with ``exclude_seen`` their rated items are not recommended.
    ``bounds`` clips the scores (``None``: not clipped). Where fewer than ``n_top``
    items are left, the rest of the row is item ``-1`` with score NaN.
    """
    w = np.asarray(devices.block_to_host(w), dtype=np.float64)
    H = np.asarray(devices.block_to_host(H), dtype=np.float64)
    r, n = w.shape[0], H.shape[1]
    tiles = [_host_tile(t) for t in tiles] if exclude_seen else []
    items = np.full((r, n_top), -1, dtype=np.int64)
    scores = np.full((r, n_top), np.nan)
    batch = max(1, BATCH_FLOATS // max(n, 1))
    for b0 in range(0, r, batch):
        b1 = min(r, b0 + batch)
        s = w[b0:b1] @ H
        if bounds is not None:
            np.clip(s, *bounds, out=s)
        for tile, c0 in zip(tiles, col_starts, strict=True):
            part = tile[b0:b1]
            if sp.issparse(part):
                coo = part.tocoo()
                s[coo.row, coo.col + c0] = -np.inf
            else:
                block = s[:, c0 : c0 + part.shape[1]]
                block[~np.isnan(part)] = -np.inf
        best = np.argpartition(-s, n_top - 1, axis=1)[:, :n_top] if n_top < n else None
        if best is None:
            best = np.broadcast_to(np.arange(n), s.shape)
        picked = np.take_along_axis(s, best, axis=1)
        order = np.lexsort((best, -picked), axis=1)
        best = np.take_along_axis(best, order, axis=1)
        picked = np.take_along_axis(picked, order, axis=1)
        seen = np.isneginf(picked)
        items[b0:b1] = np.where(seen, -1, best)
        scores[b0:b1] = np.where(seen, np.nan, picked)
    return items, scores


def _host_tile(tile):
    tile = devices.block_to_host(tile)
    return tile.tocsr() if is_sparse(tile) else np.asarray(tile)


def top_items_by_row_block(
    V: Any,
    W: Any,
    H: np.ndarray,
    n_top: int,
    *,
    exclude_seen: bool,
    bounds: tuple[float, float] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_items` for every row of ``V``, one task per row block (computed:
    ``m × n_top`` arrays of items and scores)."""
    if not products.is_lazy(V):
        return top_items(W, [V], H, [0], n_top, exclude_seen=exclude_seen, bounds=bounds)
    if not isinstance(W, da.Array):
        W = da.from_array(np.asarray(W), chunks=(V.chunks[0], -1))
    W = W.rechunk((V.chunks[0], -1))
    H_one = da.from_array(np.asarray(H), chunks=H.shape)
    col_starts = np.concatenate([[0], np.cumsum(V.chunks[1])[:-1]]).tolist()
    options = (n_top, exclude_seen, bounds, col_starts)
    out = da.blockwise(
        _row_block_task, "iz", options, None, W, "iz", V, "ij", H_one, "bc",
        concatenate=False, adjust_chunks={"z": 2 * n_top}, dtype=np.float64,
        meta=np.empty((0, 0), dtype=np.float64),
    )  # fmt: skip
    (out,) = dask.compute(out)
    return out[:, :n_top].astype(np.int64), out[:, n_top:]


def _row_block_task(options, w, tiles, H):
    n_top, exclude_seen, bounds, col_starts = options
    # Without concatenation dask hands the one-chunk H over as a nested list [[H]].
    items, scores = top_items(
        w, tiles, H[0][0], col_starts, n_top, exclude_seen=exclude_seen, bounds=bounds
    )
    return np.hstack([items.astype(np.float64), scores])
