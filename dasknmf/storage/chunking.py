"""Choice of the tile shape of a stored matrix."""

from __future__ import annotations

import math

__all__ = ["default_chunks"]

TARGET_TILE_BYTES = 64 * 2**20
"""In-memory size aimed at for one tile: big enough that per-task overhead (scheduler
round trip, one zarr read per array) is amortised, small enough that a worker holds
several tiles at once."""

FULL_WIDTH_MAX_COLS = 100_000
MIN_FULL_WIDTH_ROWS = 128
MIN_ROW_BLOCKS = 2
ALIGN = 1024


def _align_down(x: int) -> int:
    """Round down to a multiple of 1024 (or of 64 for small values); at least 1."""
    if x >= ALIGN:
        return x - x % ALIGN
    if x >= 64:
        return x - x % 64
    return max(1, x)


def _align_up(x: int) -> int:
    return -(-x // ALIGN) * ALIGN


def default_chunks(shape: tuple[int, int], *, nnz: int | None, itemsize: int) -> tuple[int, int]:
    """Choose a tile shape ``(rows, cols)`` for a matrix.

    The rule, in order:

    1. Bytes per matrix element in memory: ``itemsize`` for dense data
       (``nnz=None``); for sparse data ``nnz / (m * n) * (itemsize + 4)`` (value plus
       int32 column index, density assumed uniform).
    2. Target about 64 MiB per tile (``TARGET_TILE_BYTES``).
    3. Full-width tiles (a single column of tiles) when ``n <= 100_000`` and a
       full-width tile of the target size still has at least 128 rows, or whenever
       1024 full-width rows fit in the target (very sparse, very wide data): row-block
       tilings make the distributed products cheapest. Otherwise columns are cut into
       roughly square tiles.
    4. Rows fill the target, rounded down to a multiple of 1024 (of 64 below 1024).
    5. A matrix larger than a quarter of the target gets at least 2 row blocks (when
       it has enough rows), so two workers or threads share the work. (More row
       blocks than the target asks for were slower in every measured setting, on
       2 cores: ``docs/benchmarks.md``, tile shapes.)
    6. Never more rows or columns than the matrix has.

    Parameters
    ----------
    shape : tuple of int
        ``(m, n)``, both positive.
    nnz : int or None
        Number of non-zeros for sparse storage, ``None`` for dense storage.
    itemsize : int
        Bytes per stored value (4 for float32, 8 for float64).

    Returns
    -------
    tuple of int
        Tile shape ``(rows, cols)``.

    Examples
    --------
    >>> default_chunks((1_000_000, 20_000), nnz=10_000_000, itemsize=4)
    (500736, 20000)
    >>> default_chunks((500, 300), nnz=None, itemsize=8)
    (500, 300)
    """
    m, n = (int(s) for s in shape)
    if m <= 0 or n <= 0:
        raise ValueError(f"shape must be two positive integers, got {shape!r}")
    if itemsize <= 0:
        raise ValueError(f"itemsize must be positive, got {itemsize!r}")
    if nnz is None:
        bytes_per_elem = float(itemsize)
    else:
        # Treat an all-zero matrix as holding one value, so the target stays finite.
        bytes_per_elem = max(int(nnz), 1) / (m * n) * (itemsize + 4)
    target_elems = TARGET_TILE_BYTES / bytes_per_elem

    full_width = (
        n <= FULL_WIDTH_MAX_COLS and target_elems / n >= MIN_FULL_WIDTH_ROWS
    ) or ALIGN * n <= target_elems
    square_side = _align_down(math.isqrt(int(target_elems)))
    cols = n if full_width else min(n, max(ALIGN, square_side))

    fit_rows = target_elems / cols
    rows = m if fit_rows >= m else _align_down(int(fit_rows))
    if m * n * bytes_per_elem > TARGET_TILE_BYTES / 4 and m >= MIN_ROW_BLOCKS * ALIGN:
        rows = min(rows, _align_up(-(-m // MIN_ROW_BLOCKS)))
    return min(rows, m), min(cols, n)
