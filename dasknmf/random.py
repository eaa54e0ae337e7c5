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
STREAM_W, STREAM_H, STREAM_FILL_W, STREAM_FILL_H, STREAM_SKETCH = range(5)


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
