"""What a fit or a transform of :class:`~dasknmf.estimator.nmf.NMF` needs from its
input and parameters: the tiles, the statistics (with the initialisation's first read
of ``V``), the initialisation, the solver and the factors' stores.

Plain functions of the estimator (duck-typed here: this module sits below the
estimators that use it), shared by ``fit``, ``transform``, the ratings methods, the
multi-start fit and :class:`~dasknmf.RankSweep`.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import dask.array as da
from sklearn.utils.validation import validate_data

from dasknmf import devices, inputs
from dasknmf.errors import InvalidInputError, warn_user
from dasknmf.estimator.parameters import check_parameters, resolve_n_components, solver_for
from dasknmf.estimator.placement import factor_stores, is_lazy
from dasknmf.init import NNDSVD_METHODS, first_read
from dasknmf.linalg import FirstPass
from dasknmf.resources import active_client, total_threads
from dasknmf.solvers import (
    Penalty,
    Problem,
    Solver,
    beta_of,
    canonical_solver,
    elastic_net,
    weighted_lambda,
)
from dasknmf.storage import FactorStore

__all__ = [
    "as_tiled",
    "build_solver",
    "check_device",
    "checked_stats",
    "first_read_of",
    "penalties",
    "resolve_init",
    "scale_mean",
    "stores_for",
]


def check_device(model: Any) -> None:
    """Raise unless ``model.device`` and ``model.output`` are valid and usable by the
    scheduler in use (called by ``fit`` and ``transform``)."""
    check_parameters(model.get_params(), ("device", "output"))
    if model.device == "cuda":
        devices.require_gpu(active_client())
    elif model.output == "cupy":
        devices.require_gpu(None)  # the results are moved to this process's GPU


def as_tiled(model: Any, X: Any, *, reset: bool, k: int | None = None) -> da.Array:
    """``X`` as a tiled dask array, checked as scikit-learn checks inputs; with
    ``reset``, ``model``'s ``n_features_in_`` (and feature names) are set from it, else
    ``X`` must have as many features as ``model`` was fitted on.

    ``k``, the factors' width (default: ``model.n_components`` where it is an int),
    lets an in-memory sparse input's tiles be cut to it (:func:`inputs.auto_chunks`).
    """
    if k is None and isinstance(model.n_components, Integral):
        k = int(model.n_components)
    if is_lazy(X):
        V = inputs.as_tiled(X, chunks=model.chunks, threads=total_threads())
        inputs.check_shape(V.shape)
        if reset:
            model.n_features_in_ = V.shape[1]
            if hasattr(model, "feature_names_in_"):
                del model.feature_names_in_
        elif V.shape[1] != model.n_features_in_:
            raise ValueError(
                f"X has {V.shape[1]} features, but NMF is expecting "
                f"{model.n_features_in_} features as input."
            )
        return V
    # A CuPy input is checked and tiled like any other, on the host: the checks and
    # the tiling are NumPy/SciPy code, and the tiles go back to the GPU afterwards.
    X = devices.block_to_host(X)
    # dtype="numeric": keep what NumPy infers (a list of floats is float64, which
    # is preserved); as_tiled then casts everything but float64 to float32.
    X = validate_data(
        model,
        X,
        accept_sparse=("csr", "csc", "coo"),
        dtype="numeric",
        ensure_all_finite=False,
        reset=reset,
    )
    if model.device == "cpu":
        return inputs.as_tiled(X, chunks=model.chunks, threads=total_threads(), k=k)
    # A GPU gains nothing from splitting a tile among threads; one tile per worker
    # (per GPU) up to GPU_SINGLE_TILE_BYTES runs the fewest, largest kernels.
    client = active_client()
    gpus = 1 if client is None else len(client.nthreads())
    return inputs.as_tiled(
        X,
        chunks=model.chunks,
        threads=gpus,
        single_tile_bytes=devices.GPU_SINGLE_TILE_BYTES if gpus == 1 else 0,
    )


def first_read_of(model: Any, V: da.Array, W: Any, H: Any, seed: int) -> FirstPass | None:
    """The nndsvd* initialisation's first read of ``V``, to be made by the
    statistics pass (where the init reads the ``V`` the statistics read)."""
    method = model.init or "nndsvda"
    if model._masked or method not in NNDSVD_METHODS:
        return None
    try:
        k = resolve_n_components(model.n_components, *V.shape, W, H, custom=False)
    except ValueError:
        return None  # raised again, in its turn, after the input's own checks
    return first_read(V, k, method, seed=seed)


def checked_stats(model: Any, V: da.Array, first: FirstPass | None = None) -> inputs.MatrixStats:
    """The statistics of ``V`` (computed with ``first``, the initialisation's first
    read, when given), checked for what ``model``'s loss and mask need."""
    inputs.check_shape(V.shape)
    alongside = () if first is None else [(first.lazy, first.receive)]
    stats = inputs.compute_stats(V, nan_is_missing=model._masked, alongside=alongside)
    inputs.check_stats(stats)
    if model._masked and beta_of(model.beta_loss) <= 0 and stats.n_observed_zeros:
        raise InvalidInputError(
            f"X has {stats.n_observed_zeros} observed zero(s): with missing='ignore' "
            f"and beta_loss={model.beta_loss!r} (β ≤ 0) the divergence at a zero is "
            "infinite. Use a positive beta_loss, or leave zeros unobserved."
        )
    return stats


def resolve_init(model: Any, W: Any, H: Any) -> str:
    """The initialisation ``model`` starts from, after warning of ``W``/``H`` it
    ignores and of ``init='nndsvd'`` with multiplicative updates."""
    if model.init != "custom" and (W is not None or H is not None):
        warn_user(
            "When init!='custom', provided W or H are ignored. Set init='custom' to "
            "use them as initialization.",
            RuntimeWarning,
        )
    solver = canonical_solver(model.solver, beta_of(model.beta_loss), model._masked)
    if model.init == "nndsvd" and solver == "mu":
        warn_user(
            "The multiplicative update solver cannot update zeros present in the "
            "initialization, and so leads to poorer results when used jointly with "
            "init='nndsvd'. You may try init='nndsvda' or init='nndsvdar' instead.",
            UserWarning,
        )
    return model.init or ("random" if model._masked else "nndsvda")


def scale_mean(model: Any, stats: inputs.MatrixStats) -> float:
    """The mean that scales starting factors: over observed entries when some are
    missing, else over all ``m · n``."""
    return stats.observed_mean if model._masked else stats.mean


def penalties(model: Any, m: int, n: int) -> tuple[Penalty, Penalty]:
    """The penalties of ``W`` and ``H`` for an ``m × n`` input."""
    alpha_h = model.alpha_W if model.alpha_H == "same" else model.alpha_H
    pair = elastic_net(model.alpha_W, alpha_h, model.l1_ratio, m, n)
    return weighted_lambda(*pair, model.alpha_weighted, m, n, masked=model._masked)


def build_solver(
    model: Any,
    V: da.Array,
    stats: inputs.MatrixStats,
    *,
    in_memory: bool,
    w_store: FactorStore | None = None,
) -> Solver:
    """The registry's solver for ``model``'s loss, solver and mask, built for ``V``."""
    penalty_w, penalty_h = penalties(model, *V.shape)
    problem = Problem(
        V,
        beta=beta_of(model.beta_loss),
        norm2=stats.norm2,
        total=stats.total,
        in_memory=in_memory,
        penalty_w=penalty_w,
        penalty_h=penalty_h,
        hold_w=None if w_store is None else w_store.hold,
    )
    return solver_for(model.get_params()).build(problem)


def stores_for(
    model: Any,
    V: da.Array,
    stats: inputs.MatrixStats,
    shapes: dict[str, tuple[int, int]],
    *,
    persisted: bool,
) -> dict[str, FactorStore | None]:
    """Where each factor of ``shapes`` is kept (``None``: in memory); see
    ``factors``. ``persisted``: whether ``V`` is kept in memory beside them."""
    v_bytes = inputs.in_memory_bytes(V, stats) if persisted else 0
    return factor_stores(
        model.factors,
        model.factor_store,
        shapes,
        dtype=V.dtype,
        v_bytes=v_bytes,
        device=model.device,
    )
