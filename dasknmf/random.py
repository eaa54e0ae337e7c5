"""Random numbers that do not depend on how an array is chunked.

A fit must give the same result for the same ``random_state`` whatever the tiling of
``V`` and however many workers run it. Draws are therefore made in fixed blocks of
:data:`GEN_BLOCK` rows, each from its own generator seeded by ``(seed, stream,
block)``; a chunk regenerates the blocks it overlaps and slices its rows out.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

GEN_BLOCK = 8192

#: Independent streams, so that e.g. W and H never share draws.
STREAM_W, STREAM_H, STREAM_FILL_W, STREAM_FILL_H, STREAM_SKETCH, STREAM_VALIDATION = range(6)


def seed_from(random_state: int | np.random.RandomState | np.random.Generator | None) -> int:
    """An integer seed from anything scikit-learn accepts as ``random_state``."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int64).max))
    raise TypeError(f"random_state must be None, an int or a RandomState, got {random_state!r}")


def standard_normal_rows(seed: int, stream: int, start: int, stop: int, width: int) -> np.ndarray:
    """Rows ``start:stop`` of an endless ``? × width`` standard-normal matrix (float64)."""
    first, last = start // GEN_BLOCK, max(stop - 1, start) // GEN_BLOCK
    blocks = [
        np.random.default_rng([seed, stream, b, width]).standard_normal((GEN_BLOCK, width))
        for b in range(first, last + 1)
    ]
    offset = first * GEN_BLOCK
    return np.concatenate(blocks)[start - offset : stop - offset]


def _tall_block(seed, stream, dtype, block_info=None):
    (r0, r1), (_, width) = block_info[None]["array-location"]
    return standard_normal_rows(seed, stream, r0, r1, width).astype(dtype, copy=False)


def _wide_block(seed, stream, dtype, block_info=None):
    (_, height), (c0, c1) = block_info[None]["array-location"]
    return standard_normal_rows(seed, stream, c0, c1, height).T.astype(dtype, copy=False)


def standard_normal(
    shape: tuple[int, int], chunks, *, seed: int, stream: int, wide: bool = False, dtype=np.float64
) -> da.Array:
    """A chunking-independent standard-normal dask array.

    ``wide=False`` draws along rows (for ``m × k`` factors chunked by rows),
    ``wide=True`` along columns (for ``k × n`` factors chunked by columns); the values
    are a function of ``(seed, stream)`` and the element's position only.
    """
    fn = _wide_block if wide else _tall_block
    dtype = np.dtype(dtype)
    return da.map_blocks(
        fn,
        seed,
        stream,
        dtype,
        chunks=da.core.normalize_chunks(chunks, shape),
        dtype=dtype,
        meta=np.empty((0, 0), dtype=dtype),
    )


def _mix(z: np.ndarray) -> np.ndarray:
    # The splitmix64 finaliser: every input bit affects every output bit (uint64
    # arithmetic wraps on overflow, which is what it wants).
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform_at(rows: np.ndarray, cols: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """A uniform number in ``[0, 1)`` for each entry ``(rows[p], cols[p])`` of an endless
    matrix: a hash of the position, ``seed`` and ``stream``, so a tile draws the numbers
    of its own entries whatever the tiling.

    Examples
    --------
    >>> r = np.arange(100_000)
    >>> u = uniform_at(r, r[::-1], seed=0, stream=STREAM_VALIDATION)
    >>> float(u.mean().round(2)), bool((uniform_at(r[:5], r[::-1][:5], 0, 5) == u[:5]).all())
    (0.5, True)
    """
    with np.errstate(over="ignore"):
        key = np.asarray([seed, stream], dtype=np.uint64)
        salt = _mix(_mix(key[0] + np.uint64(0x9E3779B97F4A7C15)) ^ key[1])
        rows, cols = np.asarray(rows).astype(np.uint64), np.asarray(cols).astype(np.uint64)
        h = _mix(_mix(rows ^ salt) ^ cols)
    # The top 53 bits as a float in [0, 1).
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53
