"""Initial factors: ``random``, ``nndsvd``, ``nndsvda``, ``nndsvdar`` and ``custom``.

All follow scikit-learn's definitions (Boutsidis & Gallopoulos 2008 for NNDSVD), built
lazily over ``V``'s tiling: ``W`` chunked like ``V``'s rows, ``H`` like its columns.
Random draws come from :mod:`dasknmf.random`, so an initialisation depends on
``random_state`` and never on the chunking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np

from dasknmf.errors import InvalidParameterError
from dasknmf.linalg import FirstPass, PassObserver, SketchStore, first_pass, randomized_svd
from dasknmf.random import (
    STREAM_FILL_H,
    STREAM_FILL_W,
    STREAM_H,
    STREAM_W,
    standard_normal,
)

INIT_METHODS = ("random", "nndsvd", "nndsvda", "nndsvdar", "custom")
#: The methods built on a randomized SVD of ``V``.
NNDSVD_METHODS = ("nndsvd", "nndsvda", "nndsvdar")

#: NNDSVD entries below this become exact zeros (scikit-learn's default).
NNDSVD_EPS = 1e-6

#: Power iterations of the randomized SVD behind ``nndsvd*`` when ``V`` is read from
#: its store on every pass (out of core): each costs a read of ``V``, as an iteration
#: does, and more of them barely change the factors a fit starts from
#: (docs/benchmarks.md, "Time to the answer"). In memory, scikit-learn's choice.
OUT_OF_CORE_POWER_ITERATIONS = 1


@dataclass(frozen=True)
class InitStores:
    """Factor stores (:class:`~dasknmf.storage.FactorStore`) an NNDSVD initialisation
    writes to instead of memory: ``W``, the fit's store of ``W`` (``None``: ``W₀`` is
    made in memory), and ``sketch``, one for the randomized SVD's sketch
    (:class:`~dasknmf.linalg.SketchStore`)."""

    W: Any
    sketch: SketchStore


def _factor_chunks(V: da.Array, k: int):
    return (V.chunks[0], (k,)), ((k,), V.chunks[1])


def random_init(
    V: da.Array, k: int, *, mean: float, seed: int, dtype: np.dtype
) -> tuple[da.Array, da.Array]:
    """Half-normal factors scaled by ``sqrt(mean(V) / k)``, as scikit-learn's ``random``."""
    w_chunks, h_chunks = _factor_chunks(V, k)
    scale = math.sqrt(mean / k)
    m, n = V.shape
    W = abs(scale * standard_normal((m, k), w_chunks, seed=seed, stream=STREAM_W))
    H = abs(scale * standard_normal((k, n), h_chunks, seed=seed, stream=STREAM_H, wide=True))
    return W.astype(dtype), H.astype(dtype)


def _nndsvd_factor(
    x: np.ndarray, sign: np.ndarray, scale: np.ndarray, fill: float = 0.0, dtype=None
) -> np.ndarray:
    """Column ``j`` keeps the positive part of ``sign_j · x_j`` (sign 0: ``|x_j|``),
    scaled by ``scale_j``; entries below :data:`NNDSVD_EPS` become ``fill``. One pass
    over the block, in ``x``'s precision, cast to ``dtype`` (default ``x``'s)."""
    sign, scale = sign.astype(x.dtype), scale.astype(x.dtype)
    out = np.maximum(x * sign, 0.0)
    np.copyto(out, np.abs(x), where=sign == 0)
    out *= scale
    out[out < NNDSVD_EPS] = fill
    return out.astype(dtype or x.dtype, copy=False)


def _part_squares(x: np.ndarray, axis: int) -> np.ndarray:
    """Sums of squares of ``x``'s positive and of its negative entries along
    ``axis``, in float64: a ``2 × k`` array (rows: positive, negative)."""
    x = x.astype(np.float64)
    pos = np.maximum(x, 0.0)
    squares = "ij,ij->j" if axis == 0 else "ij,ij->i"
    total, positive = np.einsum(squares, x, x), np.einsum(squares, pos, pos)
    return np.stack([positive, np.maximum(total - positive, 0.0)])


def _part_norms(X, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Norms of the positive and of the negative parts of ``X``'s columns
    (``axis=0``) or rows (``axis=1``), in float64, one pass over ``X``."""
    if not isinstance(X, da.Array):
        squares = _part_squares(np.asarray(X), axis)
    elif axis == 0:
        # A 2 × k block of sums per row block, added up here (a few kilobytes).
        partials = X.map_blocks(
            _part_squares, 0, chunks=((2,) * X.numblocks[0], X.shape[1:]), dtype=np.float64
        )
        squares = np.asarray(partials.compute()).reshape(-1, 2, X.shape[1]).sum(axis=0)
    else:
        squares = _part_squares(np.asarray(X.compute()), 1)
    return np.sqrt(squares[0]), np.sqrt(squares[1])


def _map(X, fn, *args):
    """``fn(block, *args)`` over a dask array's blocks (dtype: the last argument), or
    on an in-memory array."""
    if not isinstance(X, da.Array):
        return fn(X, *args)
    return X.map_blocks(fn, *args, dtype=args[-1])


def nndsvd_init(
    V: da.Array,
    k: int,
    *,
    variant: str,
    mean: float,
    seed: int,
    dtype: np.dtype,
    power_iterations: int | None = None,
    on_pass: PassObserver | None = None,
    first: FirstPass | None = None,
    stores: InitStores | None = None,
) -> tuple[da.Array, da.Array]:
    """NNDSVD from a randomized SVD of ``V``; ``variant`` is ``nndsvd``, ``nndsvda`` or
    ``nndsvdar`` (zeros kept, filled with ``mean(V)``, or with small random values).

    ``power_iterations`` (default scikit-learn's), ``on_pass`` and ``first`` go to
    :func:`dasknmf.linalg.randomized_svd`. With ``stores``, the SVD's sketch is kept
    in ``stores.sketch`` and ``W`` is written to ``stores.W`` block by block, so that
    neither is ever whole in memory.
    """
    U, s, Vt = randomized_svd(
        V, k, seed=seed, n_power_iter=power_iterations, on_pass=on_pass, first=first,
        store=None if stores is None else stores.sketch,
    )  # fmt: skip
    xp, xn = _part_norms(U, axis=0)
    yp, yn = _part_norms(Vt, axis=1)

    use_pos = xp * yp > xn * yn
    sigma = np.where(use_pos, xp * yp, xn * yn)
    lam = np.sqrt(s * sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        w_scale = np.where(use_pos, lam / xp, lam / xn)
        h_scale = np.where(use_pos, lam / yp, lam / yn)
    sign = np.where(use_pos, 1.0, -1.0)
    # The leading pair is taken in absolute value, scaled by sqrt(s_0).
    sign[0], w_scale[0], h_scale[0] = 0.0, math.sqrt(s[0]), math.sqrt(s[0])
    w_scale, h_scale = np.nan_to_num(w_scale), np.nan_to_num(h_scale)

    # nndsvda's fill goes in with the factor (one pass over U); nndsvdar's random
    # fill replaces the zeros after.
    fill = mean if variant == "nndsvda" else 0.0
    W = _map(U, _nndsvd_factor, sign[None, :], w_scale[None, :], fill, dtype)
    H = _map(Vt, _nndsvd_factor, sign[:, None], h_scale[:, None], fill, dtype)
    if variant == "nndsvdar":
        fill_w = abs(
            mean / 100 * standard_normal(W.shape, W.chunks, seed=seed, stream=STREAM_FILL_W)
        )
        fill_h = abs(
            mean
            / 100
            * standard_normal(H.shape, H.chunks, seed=seed, stream=STREAM_FILL_H, wide=True)
        )
        W = da.where(W == 0, fill_w, W).astype(dtype)
        H = da.where(H == 0, fill_h, H).astype(dtype)
    if isinstance(W, da.Array):
        # Computed here, so that the factors no longer hold the SVD's m × (k + 10)
        # sketch, which their graph reads: whoever keeps them during the fit (the
        # loop's first state) would keep it too (docs/benchmarks.md, peak memory).
        if stores is None or stores.W is None:
            W, H = dask.persist(W, H)
        else:
            W, (H,) = stores.W.put(W), dask.persist(H)
    return W, H


def _as_factor(X, expected: tuple[int, int], chunks, name: str, dtype: np.dtype) -> da.Array:
    shape = tuple(getattr(X, "shape", ()))
    if shape != expected:
        raise InvalidParameterError(
            f"Array with wrong shape passed to NMF (input {name}): expected {expected}, "
            f"got {shape}."
        )
    X = X if isinstance(X, da.Array) else da.from_array(np.asarray(X))
    X = X.astype(dtype).rechunk(chunks)
    lowest, highest, n_bad = dask.compute(X.min(), X.max(), (~da.isfinite(X)).sum())
    if n_bad:
        raise InvalidParameterError(
            f"Array passed to NMF (input {name}) contains {int(n_bad)} NaN or infinite values."
        )
    if lowest < 0:
        raise InvalidParameterError(
            f"Negative values in data passed to NMF (input {name}): minimum is {lowest}."
        )
    if highest == 0:
        raise InvalidParameterError(f"Array passed to NMF (input {name}) is full of zeros.")
    return X


def custom_init(V: da.Array, k: int, W, H, *, dtype: np.dtype) -> tuple[da.Array, da.Array]:
    """User-given ``W`` (``m × k``) and ``H`` (``k × n``), checked and rechunked like ``V``.

    Both are checked: shape, finite, non-negative and not all zero.
    """
    m, n = V.shape
    w_chunks, h_chunks = _factor_chunks(V, k)
    if W is None or H is None:
        raise InvalidParameterError("init='custom' needs both W and H to be passed to fit.")
    return (
        _as_factor(W, (m, k), w_chunks, "W", dtype),
        _as_factor(H, (k, n), h_chunks, "H", dtype),
    )


def first_read(V: da.Array, k: int, method: str, *, seed: int) -> FirstPass | None:
    """The first read of ``V`` that ``initialize(V, k, method, seed=seed)`` would make,
    as a graph to compute with the statistics pass (one read of ``V`` for both), or
    ``None`` where ``method`` reads nothing or the read cannot be shared."""
    if method not in NNDSVD_METHODS:
        return None
    return first_pass(V, k, seed=seed)


def initialize(
    V: da.Array,
    k: int,
    method: str,
    *,
    mean: float,
    seed: int,
    dtype: np.dtype,
    W=None,
    H=None,
    in_memory: bool = True,
    on_pass: PassObserver | None = None,
    first: FirstPass | None = None,
    stores: InitStores | None = None,
) -> tuple[da.Array, da.Array]:
    """Dispatch to the initialisation named by ``method`` (one of :data:`INIT_METHODS`).

    ``in_memory=False`` says ``V`` is read from its store on every pass: ``nndsvd*``
    then makes :data:`OUT_OF_CORE_POWER_ITERATIONS` power iterations instead of
    scikit-learn's. ``on_pass(done, total)`` hears of each of its reads of ``V``;
    ``first`` is its first read made already (:func:`first_read`); ``stores`` is
    where ``nndsvd*`` keeps its sketch and writes ``W`` (:func:`nndsvd_init`).
    """
    if method == "random":
        return random_init(V, k, mean=mean, seed=seed, dtype=dtype)
    if method in NNDSVD_METHODS:
        power = None if in_memory else OUT_OF_CORE_POWER_ITERATIONS
        return nndsvd_init(
            V,
            k,
            variant=method,
            mean=mean,
            seed=seed,
            dtype=dtype,
            power_iterations=power,
            on_pass=on_pass,
            first=first,
            stores=stores,
        )
    if method == "custom":
        return custom_init(V, k, W, H, dtype=dtype)
    raise InvalidParameterError(f"init must be one of {INIT_METHODS}, got {method!r}.")
