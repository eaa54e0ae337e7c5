"""Distributed products of the NMF updates: dask graphs of the :mod:`dasknmf.kernels`.

``V`` is an ``m × n`` dask array of tiles with chunks ``(R, C)``; ``W`` is ``m × k``
with chunks ``(R, (k,))``; ``H`` is ``k × n`` with chunks ``((k,), C)``. Products
against ``V`` produce one small partial per tile and sum the partials with a tree
reduction (``split_every``), so a task never holds more than one tile of ``V`` and
no factor is ever gathered on one worker. ``W @ H`` is never formed.

Every function also accepts plain in-memory arrays (a NumPy array or SciPy matrix
for ``V``) and then calls the kernel directly: a matrix small enough to be a single
tile is cheaper to factorise without a scheduler, through the same solver code.
"""

from __future__ import annotations

import operator
from functools import partial

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from dasknmf.kernels import frobenius, stats, tiles
from dasknmf.kernels.stack import Stack

#: Fan-in of the tree reductions over tiles.
SPLIT_EVERY = 8

# ``da.blockwise`` reads its arguments as (array, index) pairs; its calls below keep
# each pair together on a line (``# fmt: skip``), which the formatter would split.


def _meta3(dtype: np.dtype) -> np.ndarray:
    return np.empty((0, 0, 0), dtype=dtype)


# Partials carry a length-1 axis for the tile index they come from, which the tree
# reduction then sums away. Module-level functions keep the graph picklable by name.
def _tile_times_ht_partial(tile, h):
    return tiles.tile_times_ht(tile, h)[:, :, None]


def _wt_times_tile_partial(w, tile):
    return tiles.wt_times_tile(w, tile)[None, :, :]


def _gram_rows_partial(w, stack=None):
    return (tiles.gram_rows(w) if stack is None else stack.gram_rows(w))[None, :, :]


def _gram_cols_partial(h, stack=None):
    return (tiles.gram_cols(h) if stack is None else stack.gram_cols(h))[None, :, :]


def _right_multiply(x, g):
    return x @ g


def is_lazy(*arrays) -> bool:
    """Whether any of ``arrays`` is a dask array (else all are in memory)."""
    return any(isinstance(a, da.Array) for a in arrays)


def v_times_ht(V: da.Array, H: da.Array) -> da.Array:
    """``V @ Hᵀ`` (``m × k``, chunked like ``V``'s rows, dtype of ``H``)."""
    if not is_lazy(V, H):
        return tiles.tile_times_ht(V, H)
    dtype = H.dtype
    partials = da.blockwise(
        _tile_times_ht_partial, "iaj", V, "ij", H, "aj",
        adjust_chunks={"j": 1}, dtype=dtype, meta=_meta3(dtype),
    )  # fmt: skip
    return partials.sum(axis=2, split_every=SPLIT_EVERY, dtype=dtype)


def few_column_tiles(V: da.Array) -> bool:
    """Whether a row block's tiles are few enough to be handled by one task."""
    return not is_lazy(V) or V.numblocks[1] <= SPLIT_EVERY


def map_row_blocks(fn, V: da.Array, W: da.Array, H: da.Array, G: da.Array) -> da.Array:
    """``fn(W_i, [V_i0, V_i1, ...], [H_0, H_1, ...], G)`` for every row block ``i``.

    The result is chunked like ``W``. Use only when :func:`few_column_tiles` holds: each
    task receives the whole row of tiles.
    """
    if not is_lazy(V, W, H, G):
        return fn(W, [V], [H], G)
    G = G.rechunk(G.shape)
    return da.blockwise(
        _row_block_task, "ia", fn, None, W, "ia", V, "ij", H, "aj", G, "bc",
        concatenate=False, dtype=W.dtype, meta=np.empty((0, 0), dtype=W.dtype),
    )  # fmt: skip


def _row_block_task(fn, w, tiles, hs, g):
    # Without concatenation, dask hands the one-chunk G over as a nested list [[G]].
    return fn(w, tiles, hs, g[0][0])


def row_block_pass(
    fn,
    V: da.Array,
    W: da.Array,
    H: da.Array | None = None,
    G: da.Array | None = None,
    small_shape: tuple[int, int] | None = None,
    partial_rows: int | None = None,
    scored: bool = False,
) -> tuple[da.Array, ...]:
    """One task per row block ``i`` running ``fn(W_i, [V_ij]_j, [H_j]_j, G)``, which
    returns a new ``W_i``, one ``k × c_j`` partial per tile and one small matrix
    (``k × k`` unless ``small_shape`` says otherwise; partials have ``k`` rows unless
    ``partial_rows`` says otherwise), and, when ``scored``, a ``1 × 1`` float64
    score. ``H`` and ``G`` are optional (``fn`` then receives ``None`` for them).

    This is the single pass over ``V`` of an iteration: each row of tiles is read
    once and everything the iteration needs from it comes out of the same task.

    Returns
    -------
    W_new : dask.array.Array
        Chunked like ``W``.
    partials : dask.array.Array
        ``(row blocks, k, n)``, chunked ``(1, k, C)``: sum over axis 0 for ``Σ_i P_ij``.
    smalls : dask.array.Array
        ``(row blocks, k, k)``: sum over axis 0 for ``Σ_i S_i``.
    score : dask.array.Array
        Only when ``scored``: the 0-d float64 sum of the row blocks' scores.
    """
    if not is_lazy(V, W, H, G):
        w, parts, small, *score = fn(W, [V], None if H is None else [H], G)
        return (w, parts[0][None], small[None], *(np.asarray(x.sum()) for x in score))
    k = W.shape[1]
    n_rows, n_cols = V.numblocks
    token = tokenize(fn, V, W, H, G)
    base = f"row-pass-{token}"
    h_keys = None if H is None else [(H.name, 0, j) for j in range(n_cols)]
    if G is not None:
        G = G.rechunk(G.shape)
    g_key = None if G is None else (G.name, 0, 0)
    tasks = {
        (base, i): (fn, (W.name, i, 0), [(V.name, i, j) for j in range(n_cols)], h_keys, g_key)
        for i in range(n_rows)
    }
    dependencies = [a for a in (W, V, H, G) if a is not None]
    graph = HighLevelGraph.from_collections(base, tasks, dependencies=dependencies)

    def output(name: str, layer: dict) -> HighLevelGraph:
        return HighLevelGraph({**graph.layers, name: layer}, {**graph.dependencies, name: {base}})

    w_name, p_name, s_name = (f"row-pass-{part}-{token}" for part in ("w", "p", "s"))
    W_new = da.Array(
        output(w_name, {(w_name, i, 0): (operator.getitem, (base, i), 0) for i in range(n_rows)}),
        w_name,
        chunks=W.chunks,
        meta=np.empty((0, 0), dtype=W.dtype),
    )
    partials = da.Array(
        output(
            p_name,
            {
                (p_name, i, 0, j): (_pass_partial, (base, i), j)
                for i in range(n_rows)
                for j in range(n_cols)
            },
        ),
        p_name,
        chunks=((1,) * n_rows, (partial_rows or k,), V.chunks[1]),
        meta=_meta3(W.dtype),
    )
    smalls = da.Array(
        output(s_name, {(s_name, i, 0, 0): (_pass_small, (base, i)) for i in range(n_rows)}),
        s_name,
        chunks=((1,) * n_rows, *((d,) for d in (small_shape or (k, k)))),
        meta=_meta3(W.dtype),
    )
    if not scored:
        return W_new, partials, smalls
    c_name = f"row-pass-c-{token}"
    scores = da.Array(
        output(c_name, {(c_name, i, 0): (operator.getitem, (base, i), 3) for i in range(n_rows)}),
        c_name,
        chunks=((1,) * n_rows, (1,)),
        meta=np.empty((0, 0), dtype=np.float64),
    )
    return W_new, partials, smalls, scores.sum()


def _pass_partial(result, j):
    return result[1][j][None, :, :]


def _pass_small(result):
    return result[2][None, :, :]


def wt_times_v(W: da.Array, V: da.Array) -> da.Array:
    """``Wᵀ @ V`` (``k × n``, chunked like ``V``'s columns, dtype of ``W``)."""
    if not is_lazy(W, V):
        return tiles.wt_times_tile(W, V)
    dtype = W.dtype
    partials = da.blockwise(
        _wt_times_tile_partial, "iaj", W, "ia", V, "ij",
        adjust_chunks={"i": 1}, dtype=dtype, meta=_meta3(dtype),
    )  # fmt: skip
    return sum_blocks(partials)


def sum_blocks(stacked: da.Array) -> da.Array:
    """Tree-sum of a stack of partials over its leading axis (in memory: drop it).

    ``stacked`` has one block per partial along axis 0. Each task adds up to
    :data:`SPLIT_EVERY` blocks in one pass over them (dask's generic ``sum`` takes two
    tasks and two passes for the same job, several times slower for the partials of
    an in-memory iteration; docs/benchmarks.md).
    """
    if not is_lazy(stacked):
        return stacked.sum(axis=0)
    token = tokenize(stacked, SPLIT_EVERY)
    rest = list(np.ndindex(*stacked.numblocks[1:]))
    level_keys = [(stacked.name, b) for b in range(stacked.numblocks[0])]
    layers, dependencies, previous = {}, {}, stacked.name
    graph = stacked.__dask_graph__()
    level = 0
    while True:
        groups = [level_keys[g : g + SPLIT_EVERY] for g in range(0, len(level_keys), SPLIT_EVERY)]
        last = len(groups) == 1
        name = f"sum-blocks-{token}" if last else f"sum-blocks-{level}-{token}"
        add = _add_squeezed if last else _add_kept
        layer = {}
        for g, group in enumerate(groups):
            for r in rest:
                key = (name, *r) if last else (name, g, *r)
                layer[key] = (add, [(*prefix, *r) for prefix in group])
        layers[name], dependencies[name] = layer, {previous}
        if last:
            break
        level_keys, previous, level = [(name, g) for g in range(len(groups))], name, level + 1
    hlg = HighLevelGraph({**graph.layers, **layers}, {**graph.dependencies, **dependencies})
    meta = np.empty((0,) * (stacked.ndim - 1), dtype=stacked.dtype)
    return da.Array(hlg, name, chunks=stacked.chunks[1:], meta=meta)


def _add_kept(blocks):
    return _add_squeezed(blocks)[None]


def _add_squeezed(blocks):
    out = blocks[0][0] + blocks[1][0] if len(blocks) > 1 else blocks[0][0].copy()
    for block in blocks[2:]:
        out += block[0]
    return out


def h_update_sums(
    V: da.Array, W: da.Array, stack: Stack | None = None
) -> tuple[da.Array, da.Array]:
    """``WᵀV`` and ``WᵀW`` (packed per replicate for a ``stack``): one task per row
    block emits both partials, so the sparse products are not queued behind the small
    Gram products."""
    if not few_column_tiles(V):
        return wt_times_v(W, V), gram_rows(W, stack)
    terms = frobenius.h_update_terms if stack is None else partial(_stacked_terms, stack)
    small = None if stack is None else stack.packed_shape
    _, partials, grams = row_block_pass(terms, V, W, small_shape=small)
    return sum_blocks(partials), sum_blocks(grams)


def _stacked_terms(stack, w, tiles_, hs=None, g=None):
    return frobenius.h_update_terms(w, tiles_, gram=stack.gram_rows)


def gram_rows(W: da.Array, stack: Stack | None = None) -> da.Array:
    """``Wᵀ W`` (``k × k``, one chunk), or its blocks packed per replicate of a
    ``stack`` (:class:`~dasknmf.kernels.stack.Stack`)."""
    if not is_lazy(W):
        return _gram_rows_partial(W, stack)[0]
    k = W.shape[1] if stack is None else stack.width
    partials = da.blockwise(
        _gram_rows_partial, "iab", W, "ia", stack, None,
        new_axes={"b": k}, adjust_chunks={"i": 1}, dtype=W.dtype, meta=_meta3(W.dtype),
    )  # fmt: skip
    return sum_blocks(partials)


def gram_cols(H: da.Array, stack: Stack | None = None) -> da.Array:
    """``H Hᵀ`` (``k × k``, one chunk), or its blocks packed per replicate of a
    ``stack``."""
    if not is_lazy(H):
        return _gram_cols_partial(H, stack)[0]
    k = H.shape[0] if stack is None else stack.width
    partials = da.blockwise(
        _gram_cols_partial, "jab", H, "aj", stack, None,
        new_axes={"b": k}, adjust_chunks={"j": 1}, dtype=H.dtype, meta=_meta3(H.dtype),
    )  # fmt: skip
    return sum_blocks(partials)


def times_small(W: da.Array, G: da.Array) -> da.Array:
    """``W @ G`` for a tall ``W`` (chunks ``(R, (k,))``) and a one-chunk ``k × l`` ``G``."""
    if not is_lazy(W, G):
        return W @ G
    G = G.rechunk(G.shape)
    l = G.shape[1]  # noqa: E741
    return da.blockwise(
        _right_multiply, "il", W, "ia", G, "al", dtype=W.dtype, concatenate=True,
        adjust_chunks={"l": l},
    )  # fmt: skip


def tile_sums(terms, W: da.Array, V: da.Array, H: da.Array, n_terms: int) -> da.Array:
    """``Σ_ij terms(W_i, V_ij, H_j)``: ``n_terms`` float64 numbers per tile (the terms
    of a divergence, counts), added up over the tiles.

    ``terms(w, tile, h)`` returns an array of ``n_terms`` numbers in any shape (a
    ``1 × n_terms`` row, say). In memory, one call on the whole matrix.
    """
    if not is_lazy(W, V, H):
        return terms(W, V, H).reshape(n_terms)
    return da.blockwise(
        _tile_terms_partial, "ijz", terms, None, W, "ia", V, "ij", H, "aj",
        new_axes={"z": n_terms}, adjust_chunks={"i": 1, "j": 1}, dtype=np.float64,
        meta=_meta3(np.float64), concatenate=True,
    ).sum(axis=(0, 1))  # fmt: skip


def _tile_terms_partial(terms, w, tile, h):
    return terms(w, tile, h).reshape(1, 1, -1)


def map_factor_blocks(fn, X: da.Array, A: da.Array, G: da.Array) -> da.Array:
    """``fn(X_b, A_b, G)`` for every block ``b`` of a factor ``X`` (tall ``m × k`` or
    wide ``k × n``), ``A`` chunked like ``X`` and a one-chunk ``G``; chunked like ``X``."""
    if not is_lazy(X, A, G):
        return fn(X, A, G)
    G = G.rechunk(G.shape)
    return da.blockwise(
        fn, "xy", X, "xy", A, "xy", G, "bc", dtype=X.dtype, concatenate=True,
        meta=np.empty((0, 0), dtype=X.dtype),
    )  # fmt: skip


def map_column_blocks(fn, H: da.Array, terms: da.Array) -> da.Array:
    """``fn(H_j, T_j)`` for every column block ``j`` of a wide factor ``H``, where
    ``terms`` (any number of rows × ``n``, e.g. stacked numerators and denominators)
    is chunked like ``H``'s columns; chunked like ``H``."""
    if not is_lazy(H, terms):
        return fn(H, terms)
    return da.blockwise(
        fn, "aj", H, "aj", terms.rechunk({0: -1}), "bj",
        dtype=H.dtype, concatenate=True, meta=np.empty((0, 0), dtype=H.dtype),
    )  # fmt: skip


def inner(A: da.Array, B: da.Array) -> da.Array:
    """``Σ A ∘ B`` in float64 as a 0-d dask array (``A`` and ``B`` chunked alike)."""
    if not is_lazy(A, B):
        return tiles.inner(A, B)
    return da.map_blocks(
        _inner_partial, A, B, dtype=np.float64, chunks=(1, 1), meta=np.empty((0, 0))
    ).sum()


def row_inner(A: da.Array, B: da.Array) -> da.Array:
    """``Σ_j A_ij B_ij`` for each row ``i``, in float64 (``A`` and ``B`` chunked alike,
    one chunk along the rows)."""
    if not is_lazy(A, B):
        return tiles.row_inner(A, B)
    return da.map_blocks(
        _row_inner_partial, A, B, dtype=np.float64, chunks=(A.shape[0], 1),
        meta=np.empty((0, 0)),
    ).sum(axis=1)  # fmt: skip


def _row_inner_partial(a, b):
    return tiles.row_inner(a, b)[:, None]


def _inner_partial(a, b):
    return tiles.inner(a, b).reshape(1, 1)


def tile_stats(V: da.Array, nan_is_missing: bool = False) -> da.Array:
    """Per-tile :func:`~dasknmf.kernels.stats.tile_stats`, summarised over ``V`` (a
    length-8 float64 array).

    Entries 4 and 6 (first offending index) take the minimum, the others are summed.
    """
    n = V.shape[1]

    def stats_block(tile, block_info=None):
        (r0, _), (c0, _) = block_info[0]["array-location"]
        return stats.tile_stats(tile, r0, c0, n, nan_is_missing)[None, None, :]

    per_tile = da.map_blocks(
        stats_block, V, dtype=np.float64, chunks=(1, 1, 8), new_axis=2, meta=_meta3(np.float64)
    )
    per_tile = per_tile.reshape(-1, 8)
    sums = per_tile.sum(axis=0, split_every=SPLIT_EVERY)
    mins = per_tile.min(axis=0, split_every=SPLIT_EVERY)
    return da.where(np.isin(np.arange(8), [4, 6]), mins, sums)
