"""Randomized truncated SVD of a tiled (sparse or dense) dask matrix.

Halko, Martinsson & Tropp's range finder with power iterations, the subspace
scikit-learn's ``randomized_svd`` finds, computed with one read of ``V`` per power
iteration instead of two: a task per row block forms ``Y_i = V_i Z`` and, from the
same tiles, ``V_iᵀ Y_i`` (``V``'s rows are whole within a row block, so
``Vᵀ V Z = Σ_i V_iᵀ V_i Z``). The last pass also sums ``Y_iᵀ Y_i``, from which
``B = Qᵀ V`` follows without reading ``V`` again (``YᵀY = E Λ Eᵀ``, ``Q = Y E Λ^-½``,
``B = Λ^-½ Eᵀ (Vᵀ Y)ᵀ``). The first pass can be built on its own
(:func:`first_pass`) and computed with the statistics pass, sharing its read.
Sparse products run in ``V``'s dtype (float32 stays float32); the small factors
(``n × l``, ``l × l``, ``l`` = rank + oversampling) are orthonormalised in memory with
LAPACK, never as a tall dask QR.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import dask
import dask.array as da
import numpy as np
import scipy.linalg

from dasknmf import products
from dasknmf.kernels import tiles
from dasknmf.random import STREAM_SKETCH, standard_normal
from dasknmf.resources import active_client

#: Told ``(passes done, passes in all)`` after each read of ``V``.
PassObserver = Callable[[int, int], None]


class SketchStore(Protocol):
    """Where the SVD keeps its ``m × l`` sketch ``Y = V Z`` instead of memory (a
    :class:`~dasknmf.storage.FactorStore`): ``write`` returns a pending write whose
    ``task`` writes each row block as it is computed, ``commit`` a dask array over it;
    ``put`` writes and commits at once."""

    def write(self, X: da.Array) -> Any: ...

    def commit(self, pending: Any, *, compute: bool = False) -> da.Array: ...

    def put(self, X: Any, chunks: Any = None) -> da.Array: ...


def default_power_iterations(rank: int, shape: tuple[int, int]) -> int:
    """scikit-learn's ``n_iter='auto'``: 7 when ``rank < 0.1 · min(m, n)``, else 4."""
    return 7 if rank < 0.1 * min(shape) else 4


def _range_pass(w, tiles_, zs, g, *, last: bool):
    """One row block's share of a pass: ``Y_i = Σ_j V_ij Z_j``, the partials
    ``(V_ijᵀ Y_i)ᵀ`` and, on the last pass, ``Y_iᵀ Y_i`` in float64."""
    y = tiles.tile_times_ht(tiles_[0], zs[0])
    for tile, z in zip(tiles_[1:], zs[1:], strict=True):
        y += tiles.tile_times_ht(tile, z)
    parts = [tiles.wt_times_tile(y, tile) for tile in tiles_]
    width = y.shape[1]
    gram = _gram64(y) if last else np.zeros((width, width))
    return y, parts, gram


def _gram64(y) -> np.ndarray:
    y64 = y.astype(np.float64)
    return y64.T @ y64


def _gram64_partial(y):
    return _gram64(y)[None]


def _eager(V) -> bool:
    """Whether to run the passes without a scheduler: one tile, no cluster."""
    return V.numblocks == (1, 1) and active_client() is None


#: The sketch is padded with zero columns to a multiple of this many: the sparse
#: products are memory-bound gathers of factor rows, faster for 32 float32 columns
#: than for 30 (docs/benchmarks.md, "Time to the answer"). Zeros change no result.
LANE = 8


def _padded(width: int) -> int:
    return -(-width // LANE) * LANE


def _sketch(n: int, col_chunks: tuple[int, ...], width: int, seed: int, dtype) -> da.Array:
    """The Gaussian ``Ωᵀ`` (``width × n``, chunked ``col_chunks`` along the columns),
    padded with zero rows to :func:`_padded` ``(width)``."""
    omega = standard_normal(
        (width, n), ((width,), col_chunks), seed=seed, stream=STREAM_SKETCH, wide=True,
        dtype=dtype,
    )  # fmt: skip
    extra = _padded(width) - width
    if not extra:
        return omega
    zeros = da.zeros((extra, n), chunks=((extra,), col_chunks), dtype=dtype)
    return da.concatenate([omega, zeros]).rechunk({0: width + extra})


def _row_pass_graph(V: da.Array, Zt: da.Array, *, last: bool):
    """Lazy ``(Y, Zᵀ_new, G)`` of a pass as one task per row block."""
    width = Zt.shape[0]
    # The pass takes no W (_range_pass ignores it): its blocks are placeholders in the
    # graph, not tasks, which dask would order after the other consumers of V's tiles
    # when this pass shares them (first_pass). Declared dtype of the float64 Gram
    # partials is V's: only the values matter.
    name = f"no-w-{uuid.uuid4().hex}"
    dummy = da.Array(
        {(name, i, 0): None for i in range(V.numblocks[0])},
        name,
        chunks=(V.chunks[0], (width,)),
        meta=np.empty((0, 0), dtype=V.dtype),
    )
    Y, partials, grams = products.row_block_pass(
        partial(_range_pass, last=last),
        V,
        dummy,
        Zt,
        small_shape=(width, width),
        partial_rows=width,
    )
    return Y, products.sum_blocks(partials), products.sum_blocks(grams)


@dataclass
class FirstPass:
    """The randomized SVD's first read of ``V`` (``(Vᵀ V Ω)ᵀ``), built to be computed
    in the graph of another pass over ``V`` (the statistics, :func:`inputs.compute_stats`
    ``alongside``) and then handed to :func:`randomized_svd`."""

    lazy: da.Array
    shape: tuple[int, int]
    width: int
    seed: int
    value: np.ndarray | None = None

    def receive(self, value) -> None:
        """Keep the computed pass."""
        self.value = np.asarray(value)


def first_pass(V: da.Array, rank: int, *, seed: int, n_oversamples: int = 10) -> FirstPass | None:
    """The first pass of :func:`randomized_svd` as a lazy graph, or ``None`` where it
    could not share another graph's read of ``V`` (a one-tile ``V`` runs without a
    scheduler; a row of tiles too wide for one task takes two graphs)."""
    if not products.is_lazy(V) or _eager(V) or not products.few_column_tiles(V):
        return None
    m, n = V.shape
    width = min(rank + n_oversamples, m, n)
    # Drawn now (width × n, a few MB): as a graph, dask ordered its draw after the
    # other pass's tasks on every tile, so that pass read all of V, holding each tile
    # until the row pass could run on it (docs/benchmarks.md, peak memory).
    sketch = da.from_array(
        _sketch(n, V.chunks[1], width, seed, V.dtype).compute(),
        chunks=(_padded(width), V.chunks[1]),
        name=False,
    )
    _, Zt, _ = _row_pass_graph(V, sketch, last=False)
    return FirstPass(Zt, (m, n), width, seed)


def _one_pass(V, Zt, *, last: bool, store: SketchStore | None = None):
    """``(Y, Zᵀ_new, G)``: ``Y = V Z`` (kept only on the last pass: persisted, or
    written to ``store`` row block by row block and read from there),
    ``Zᵀ_new = (Vᵀ Y)ᵀ`` and ``G = YᵀY`` (last pass) as NumPy arrays."""
    width = Zt.shape[0]
    if not products.is_lazy(V):
        y, parts, gram = _range_pass(None, [V], [Zt], None, last=last)
        return y, np.asarray(parts[0]), gram
    if not isinstance(Zt, da.Array):
        Zt = da.from_array(Zt, chunks=((width,), V.chunks[1]))
    if products.few_column_tiles(V):
        Y, Zt_new, G = _row_pass_graph(V, Zt, last=last)
        if not last:
            return None, np.asarray(Zt_new.compute()), None
        if store is not None:
            pending = store.write(Y)
            Zt_new, G, _ = dask.compute(Zt_new, G, pending.task)
            return store.commit(pending), np.asarray(Zt_new), np.asarray(G)
        Y, Zt_new, G = dask.persist(Y, Zt_new, G)
        Zt_new, G = dask.compute(Zt_new, G)
        return Y, np.asarray(Zt_new), np.asarray(G)
    # A row of tiles too wide for one task: two graphs, one read of V each (a graph
    # that read V twice would hold every tile from its first read to its second).
    Y = products.v_times_ht(V, Zt)
    Y = dask.persist(Y)[0] if store is None else store.put(Y)
    Zt_new, G = dask.compute(products.wt_times_v(Y, V), _gram64_lazy(Y) if last else None)
    return (Y if last else None), np.asarray(Zt_new), (np.asarray(G) if last else None)


def _gram64_lazy(Y: da.Array) -> da.Array:
    """``YᵀY`` in float64 for a tall ``Y`` chunked by rows."""
    width = Y.shape[1]
    partials = Y.map_blocks(
        _gram64_partial,
        chunks=((1,) * Y.numblocks[0], (width,), (width,)),
        new_axis=2,
        dtype=np.float64,
    )
    return products.sum_blocks(partials)


def _orthonormal_rows(Zt: np.ndarray, width: int) -> np.ndarray:
    """An orthonormal basis of the row space of the first ``width`` rows of a wide
    array, the padding rows zero (Householder QR in the array's dtype, as
    scikit-learn normalises in float32). Stored as the transpose of an ``n × l``
    C-ordered array, so that a column block's ``Zᵀ`` is contiguous."""
    # SciPy's economic QR, not NumPy's: the same LAPACK factorisation, a quarter of
    # the time on this tall, Fortran-ordered view (docs/benchmarks.md).
    q, _ = scipy.linalg.qr(Zt[:width].T, mode="economic", check_finite=False)
    Z = np.zeros((Zt.shape[1], Zt.shape[0]), dtype=Zt.dtype)
    Z[:, :width] = q
    return Z.T


def randomized_svd(
    V: da.Array,
    rank: int,
    *,
    seed: int,
    n_oversamples: int = 10,
    n_power_iter: int | None = None,
    on_pass: PassObserver | None = None,
    first: FirstPass | None = None,
    store: SketchStore | None = None,
) -> tuple[da.Array, np.ndarray, da.Array]:
    """Approximate leading singular triplets of ``V``.

    Parameters
    ----------
    V : dask.array.Array
        ``m × n`` tiled matrix (float32 or float64).
    rank : int
        Number of singular triplets wanted.
    seed : int
        Seed of the Gaussian sketch (chunking-independent, see :mod:`dasknmf.random`).
    n_oversamples : int
        Extra sketch columns; the sketch has ``min(rank + n_oversamples, m, n)``.
    n_power_iter : int, optional
        Power iterations, one read of ``V`` each; the SVD reads ``V``
        ``n_power_iter + 1`` times. Default :func:`default_power_iterations`, as
        scikit-learn's ``randomized_svd``, whose subspace this is.
    on_pass : callable, optional
        Called as ``on_pass(done, total)`` after each read of ``V``.
    first : FirstPass, optional
        The first pass, computed already (:func:`first_pass`): ``V`` is read once
        less. Ignored when it was made for other parameters or never computed.
    store : SketchStore, optional
        Keep the sketch ``Y = V Z`` (``m × (rank + n_oversamples)``, the largest array
        of the SVD) there instead of in memory; ``U`` then reads it. Needs ``V``'s row
        blocks regular, as a factor store's are. Unused for a one-tile ``V``.

    Returns
    -------
    U : dask.array.Array
        ``m × rank`` in ``V``'s dtype, chunked like ``V``'s rows.
    s : numpy.ndarray
        ``rank`` singular values, descending.
    Vt : dask.array.Array
        ``rank × n`` float64, chunked like ``V``'s columns.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> X = np.outer(np.arange(1.0, 7.0), np.arange(1.0, 5.0))
    >>> U, s, Vt = randomized_svd(da.from_array(X, chunks=(3, 4)), 1, seed=0)
    >>> bool(np.allclose(s, np.linalg.norm(X)))
    True
    """
    m, n = V.shape
    width = min(rank + n_oversamples, m, n)
    if n_power_iter is None:
        n_power_iter = default_power_iterations(rank, (m, n))
    lazy = products.is_lazy(V)
    sketch = _sketch(n, V.chunks[1] if lazy else (n,), width, seed, V.dtype)
    if not lazy or _eager(V):
        # One tile: no scheduler between the passes (the tile is in memory already
        # when V is persisted, or one read of it when not).
        V, sketch = dask.compute(V, sketch)
    col_chunks = V.chunks[1] if products.is_lazy(V) else (n,)
    total, start, Zt = n_power_iter + 1, 0, sketch
    if (
        n_power_iter
        and first is not None
        and first.value is not None
        and (first.shape, first.width, first.seed) == ((m, n), width, seed)
    ):
        start, Zt = 1, _orthonormal_rows(first.value, width)
        if on_pass is not None:
            on_pass(start, total)
    for done in range(start + 1, total + 1):
        last = done == total
        Y, Zt, G = _one_pass(V, Zt, last=last, store=store)
        if on_pass is not None:
            on_pass(done, total)
        if not last:
            Zt = _orthonormal_rows(Zt, width)
    U, s, Vt = _factor(Y, Zt, G, rank)
    if not lazy:
        return U, s, Vt
    if not isinstance(U, da.Array):
        U = da.from_array(U, chunks=(V.chunks[0] if products.is_lazy(V) else (m,), (rank,)))
    return U, s, da.from_array(Vt, chunks=((rank,), col_chunks))


def _left_singular(B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors and the singular values of a wide float64 ``B``
    (``l × n``, ``l ≪ n``), those above ``√eps`` of the largest only, from the
    eigendecomposition of ``B Bᵀ``: an ``l × l`` problem where LAPACK's SVD of ``B``
    works on all ``n`` columns (5× the time at ``l = 32``, ``n = 50,000``).
    Squaring costs accuracy only in directions below ``√eps`` of the largest,
    which are dropped (as :func:`_factor` drops them in ``YᵀY``)."""
    lam, Ub = np.linalg.eigh(B @ B.T)
    lam, Ub = lam[::-1], Ub[:, ::-1]
    keep = lam > max(lam[0], 0.0) * np.finfo(np.float64).eps
    return Ub[:, keep], np.sqrt(lam[keep])


def _factor(Y, Zt: np.ndarray, G: np.ndarray, rank: int):
    """``U, s, Vt`` from ``Y = V Z``, ``Zᵀ = (Vᵀ Y)ᵀ`` and ``G = YᵀY``.

    With ``G = E Λ Eᵀ``, ``Q = Y E Λ^-½`` is an orthonormal basis of ``Y``'s range
    (to float64 rounding, ``G`` being formed in float64) and ``B = Qᵀ V = Λ^-½ Eᵀ Zᵀ``.
    Directions of ``Y`` below ``√eps`` of its largest are dropped: their ``B`` rows
    would be rounding noise of ``Vᵀ Y`` divided by almost nothing.
    """
    lam, E = np.linalg.eigh((G + G.T) / 2)
    lam, E = lam[::-1], E[:, ::-1]
    floor = max(lam[0], 0.0) * np.finfo(Zt.dtype).eps
    keep = lam > floor if lam[0] > 0 else np.zeros(lam.shape, dtype=bool)
    lam, E = lam[keep], E[:, keep]
    scale = E / np.sqrt(lam)
    B = scale.T @ Zt.astype(np.float64)
    Ub, s = _left_singular(B)
    r = min(rank, s.size)
    mix = np.zeros((G.shape[0], rank))
    mix[:, :r] = scale @ Ub[:, :r]
    s_out, Vt = np.zeros(rank), np.zeros((rank, Zt.shape[1]))
    s_out[:r] = s[:r]
    # Bᵀ's singular vectors from the left ones: Vᵀ = Σ⁻¹ Uᵀ B, for the r kept only.
    Vt[:r] = (Ub[:, :r] / s[:r]).T @ B
    mix = mix.astype(Y.dtype)
    U = products.times_small(Y, da.from_array(mix)) if products.is_lazy(Y) else Y @ mix
    return U, s_out, Vt
