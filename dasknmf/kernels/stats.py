"""A tile's summary for validation and scaling: sums, counts and first offenders."""

from __future__ import annotations

import numpy as np

from dasknmf.devices import block_to_host
from dasknmf.kernels.tiles import Tile, is_sparse


def tile_stats(
    tile: Tile, row0: int, col0: int, n_cols: int, nan_is_missing: bool = False
) -> np.ndarray:
    """Summary of one tile used for validation and scaling.

    Returns a float64 vector ``[sum, sum of squares, nnz, n_negative,
    first_negative, n_nonfinite, first_nonfinite, n_observed]`` where the ``first_*``
    entries are the row-major linear index ``row * n_cols + col`` of the first
    offending entry in the whole matrix (``inf`` if none), so a tree of ``min``
    reductions finds the first one overall. ``n_observed`` counts the stored entries
    of a sparse tile (explicit zeros included) or all entries of a dense one; with
    ``nan_is_missing``, NaN in a dense tile are missing entries: neither observed nor
    reported as non-finite (a NaN stored in a sparse tile still is).
    """
    tile = block_to_host(tile)  # once per fit: not worth a device version
    clean = _clean_tile_stats(tile)
    if clean is not None:
        return clean
    if is_sparse(tile):
        coo = tile.tocoo()
        values, rows, cols = coo.data, coo.row, coo.col
        n_observed = coo.nnz
    else:
        rows, cols = np.nonzero(tile)
        values = tile[rows, cols]
        n_observed = tile.size
        if nan_is_missing:
            seen = ~np.isnan(values)
            rows, cols, values = rows[seen], cols[seen], values[seen]
            n_observed -= int(np.count_nonzero(~seen))
    values = np.asarray(values)
    finite = np.isfinite(values)
    negative = values < 0
    stats = np.empty(8, dtype=np.float64)
    stats[7] = n_observed
    stats[0] = values[finite].sum(dtype=np.float64)
    stats[1] = np.square(values[finite], dtype=np.float64).sum()
    stats[2] = np.count_nonzero(values)
    stats[3] = np.count_nonzero(negative)
    stats[5] = values.size - np.count_nonzero(finite)

    def first(mask: np.ndarray) -> float:
        if not mask.any():
            return np.inf
        lin = (np.asarray(rows[mask], dtype=np.int64) + row0) * n_cols + (
            np.asarray(cols[mask], dtype=np.int64) + col0
        )
        return float(lin.min())

    stats[4] = first(negative)
    stats[6] = first(~finite)
    return stats


#: Values converted to float64 at a time by :func:`_float64_sums`.
SLAB = 1 << 16


def _float64_sums(values: np.ndarray) -> tuple[float, float]:
    """``Σ v`` and ``Σ v²`` in float64, converting a slab at a time: a float64 copy of
    a whole tile's values would be 8 bytes a value (2× a float32 CSR tile's bytes)."""
    total = square = 0.0
    for start in range(0, values.size, SLAB):
        slab = values[start : start + SLAB].astype(np.float64)
        total += float(slab.sum())
        square += float(slab @ slab)
    return total, square


def _clean_tile_stats(tile: Tile) -> np.ndarray | None:
    """:func:`tile_stats` of a tile with no negative, NaN or infinite value, computed
    without copying it; ``None`` for any other tile (then the offenders are located).

    A sparse tile's ``tocoo`` and a dense one's ``nonzero`` allocate row and column
    indices for every value, several times the tile's bytes, which only the first
    offender's position needs.
    """
    values = tile.data[: tile.nnz] if is_sparse(tile) else np.asarray(tile).reshape(-1)
    if values.size and not values.min() >= 0:  # NaN fails the comparison too
        return None
    total, square = _float64_sums(values)
    if not np.isfinite(square):  # an infinity, or squares overflowing float64
        return None
    n_observed = values.size
    return np.asarray(
        [total, square, np.count_nonzero(values), 0, np.inf, 0, np.inf, n_observed],
        dtype=np.float64,
    )
