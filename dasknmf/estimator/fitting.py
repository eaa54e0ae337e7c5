"""``NMF.fit_transform`` and ``NMF.transform``, step by step: from the user's input
to the fitted attributes, and to ``W`` for new rows with ``H`` fixed.

In a fit, the input is tiled and read once for its statistics (with the nndsvd*
initialisation's first read), placed in memory or out of core, split for validation
and initialised (or taken from a resumed state, or from the best of ``n_init``
starts); the fit loop (:mod:`dasknmf.fit`) then runs with its solver, factor stores
and callbacks, and its result becomes the estimator's attributes. The estimator is
duck-typed here: this module sits below :class:`~dasknmf.estimator.nmf.NMF`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import dask
import dask.array as da
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from dasknmf import devices, inputs, validation
from dasknmf import fit as fit_loop
from dasknmf.callbacks import PrintProgress, phase_reporter, relative_error, tell_norm
from dasknmf.errors import warn_user
from dasknmf.estimator.parameters import (
    check_parameters,
    check_resume,
    resolve_n_components,
    solver_for,
)
from dasknmf.estimator.placement import (
    as_result,
    components_like,
    init_stores,
    is_lazy,
    keeps_in_memory,
    on_device,
    runs_eagerly,
    zero_missing,
)
from dasknmf.estimator.preparation import (
    as_tiled,
    build_solver,
    check_device,
    checked_stats,
    first_read_of,
    resolve_init,
    scale_mean,
    stores_for,
)
from dasknmf.estimator.ratings import warn_underdetermined
from dasknmf.estimator.replicates import best_start
from dasknmf.fit_state import FitResult, FitState
from dasknmf.init import initialize
from dasknmf.random import seed_from
from dasknmf.solvers import beta_of
from dasknmf.storage import FactorStore

__all__ = ["Start", "fit_transform", "transform"]


@dataclass
class Start:
    """Where a fit starts: the tiles ``V`` it fits (``V_valid``: the held-out entries,
    or ``None``), their ``stats``, the rank ``k``, the initial factors, each factor's
    store (``None``: in memory), and the state it resumes (``None``: none).

    The fit loop takes the initial factors (:meth:`take_factors`), so that no frame
    here keeps a whole ``W`` alive while it iterates."""

    V: Any
    V_valid: Any
    stats: inputs.MatrixStats
    k: int
    W0: Any
    H0: Any
    stores: dict[str, FactorStore | None]
    resume: FitState | None

    def take_factors(self) -> tuple[Any, Any]:
        """``(W0, H0)``, no longer held by this start."""
        factors = self.W0, self.H0
        self.W0 = self.H0 = None
        return factors


def fit_transform(model: Any, X: Any, W: Any, H: Any, resume: FitState | None) -> Any:
    """Fit ``model`` to ``X`` (see ``NMF.fit_transform`` for the arguments): set its
    fitted attributes and return ``W`` (also ``model.W_``)."""
    check_parameters(model.get_params())
    check_device(model)
    # Nested lists are accepted for W and H, as by scikit-learn (never copied here).
    W, H = (f if f is None or isinstance(f, da.Array) else np.asarray(f) for f in (W, H))
    start = _start(model, X, W, H, resume)
    callbacks, stopper = _observers(model, start)
    result = _loop(model, start, callbacks, stopper)
    _set_fitted(model, start, result, stopper)
    lazy = is_lazy(X) or start.stores["W"] is not None
    model.W_ = as_result(result.W, lazy=lazy, device=model.device, output=model.output)
    return model.W_


def _start(model: Any, X: Any, W: Any, H: Any, resume: FitState | None) -> Start:
    """Tile ``X``, read its statistics, place it and initialise the factors; sets
    ``init_errors_``/``init_seeds_`` (``n_init > 1``), ``persisted_`` and
    ``_ratings``."""
    # With several starts, the best one continues (and ends) as a resumed fit, on
    # the tiles and statistics the starts were fitted with.
    starts = best_start(model, X, W, H, resume) if model.n_init > 1 else None
    if starts is not None:
        resume, model.init_errors_, model.init_seeds_ = starts.state, starts.errors, starts.seeds
    else:
        model.__dict__.pop("init_errors_", None)
        model.__dict__.pop("init_seeds_", None)
    V = as_tiled(model, X, reset=True) if starts is None else starts.V
    m, n = V.shape
    if resume is not None:
        W, H = check_resume(
            resume, W, H, m, n, max_iter=model.max_iter, n_components=model.n_components
        )
    progress = phase_reporter(model.callbacks, model.verbose)
    seed = seed_from(model.random_state)
    first = None if resume is not None else first_read_of(model, V, W, H, seed)
    with progress.phase("statistics"):
        stats = checked_stats(model, V, first) if starts is None else starts.stats
    custom = resume is not None or model.init == "custom"
    k = resolve_n_components(model.n_components, m, n, W, H, custom=custom)
    model.persisted_ = keeps_in_memory(V, stats, model.persist, model.device)
    model._ratings = V  # lazy: the rated items that recommend() leaves out
    V, V_valid = model._hold_validation(V, seed)
    if model.persisted_ and model.device == "cpu":
        (V,) = dask.persist(V)

    method = "custom" if resume is not None else resolve_init(model, W, H)
    stores = stores_for(model, V, stats, {"W": (m, k), "H": (k, n)}, persisted=model.persisted_)
    with (
        progress.phase(f"initialization ({method})"),
        init_stores(stores["W"], method, persisted=model.persisted_) as at,
    ):
        W0, H0 = initialize(
            zero_missing(V) if model._masked else V,
            k,
            method,
            mean=scale_mean(model, stats),
            seed=seed,
            dtype=V.dtype,
            W=W,
            H=H,
            in_memory=model.persisted_,
            on_pass=progress.passes,
            first=first,
            stores=at,
        )
        if runs_eagerly(V) and (stores["W"], stores["H"]) == (None, None):
            V, W0, H0, V_valid = dask.compute(V, W0, H0, V_valid)
    V, W0, H0 = on_device(V, W0, H0, device=model.device, persist=model.persisted_)
    return Start(V, V_valid, stats, k, W0, H0, stores, resume)


def _observers(model: Any, start: Start) -> tuple[list, validation.EarlyStopping | None]:
    """The loop's callbacks: the user's, ``verbose``'s progress lines and, last, the
    validation's early stopping (also returned); sets ``_x_norm`` and
    ``rating_range_``."""
    callbacks = list(model.callbacks or [])
    if model.verbose:
        callbacks.append(PrintProgress())
    frobenius = beta_of(model.beta_loss) == 2 and start.V_valid is None
    model._x_norm = math.sqrt(start.stats.norm2) if frobenius else None
    tell_norm(callbacks, model._x_norm)  # for the relative error on progress lines
    model.rating_range_ = (start.stats.observed_min, start.stats.observed_max)
    stopper = model._early_stopping(start.V_valid)
    if stopper is not None:
        callbacks.append(stopper)  # last: the others see the iteration it stops at
    return callbacks, stopper


def _loop(
    model: Any, start: Start, callbacks: list, stopper: validation.EarlyStopping | None
) -> FitResult:
    """Run (or resume) the fit loop; the best validation iteration's factors with
    ``stopper``. Warns when ``max_iter`` stopped it."""
    options = dict(
        max_iter=model.max_iter,
        tol=model.tol,
        check_every=model.check_every,
        callbacks=callbacks,
        keepers=(start.stores["W"], start.stores["H"]),
    )
    V = start.V
    solver = build_solver(
        model, V, start.stats, in_memory=model.persisted_, w_store=start.stores["W"]
    )
    warn_underdetermined(V, start.k, solver)
    try:
        # Handed over in lists the loop empties: nothing here holds the initial W
        # while it iterates (fit_loop.run_handed).
        if start.resume is not None:
            handed = [replace(start.resume, W=start.W0, H=start.H0)]
            start.take_factors()
            start.resume = None
            result = fit_loop.resume_handed(solver, handed, **options)
        else:
            result = fit_loop.run_handed(solver, list(start.take_factors()), **options)
    except validation.ValidationStop:
        result = None
    if stopper is not None:
        result = model._keep_best(stopper, result)
    if model.tol > 0 and not result.converged and model.max_iter > 0:
        warn_user(
            f"Maximum number of iterations {model.max_iter} reached. Increase it to "
            "improve convergence.",
            ConvergenceWarning,
        )
    return result


def _set_fitted(
    model: Any,
    start: Start,
    result: FitResult,
    stopper: validation.EarlyStopping | None,
) -> None:
    """Set ``model``'s fitted attributes (all but ``W_``) from the loop's result."""
    stores = start.stores
    model.factors_stored_ = tuple(name for name, store in stores.items() if store)
    if stores["H"] is not None:
        model.components_ = result.H  # a dask array reading the store
    else:
        H = as_result(result.H, lazy=False, device=model.device, output="numpy")
        H = np.ascontiguousarray(H)
        model.components_ = H if model.output == "numpy" else devices.to_device(H, "cuda")
    m, n = start.V.shape
    model.n_components_ = start.k
    model.n_iter_ = result.n_iter
    model.reconstruction_err_ = result.error
    model.relative_error_ = relative_error(result.error, model._x_norm)
    model.error_curve_ = result.errors
    model.n_observed_ = start.stats.n_observed if model._masked else m * n
    model.converged_ = bool(result.converged)
    if stopper is not None:
        model.n_observed_ -= stopper.count
    if model._masked and model.verbose:
        model._print_rmse(stopper)


def transform(model: Any, X: Any) -> Any:
    """``W`` for the rows of ``X`` with ``H`` fixed to the fitted ``model``'s
    ``components_`` (see ``NMF.transform``)."""
    check_device(model)
    V = as_tiled(model, X, reset=False)
    stats = checked_stats(model, V)
    k = model.n_components_
    H = components_like(model.components_, V)
    # scikit-learn's starts: MU cannot move away from zeros, coordinate descent can.
    mean_start = solver_for(model.get_params()).transform_start == "mean"
    start = math.sqrt(scale_mean(model, stats) / k) if mean_start else 0.0
    W0 = da.full((V.shape[0], k), start, dtype=V.dtype, chunks=(V.chunks[0], (k,)))
    shapes = {"transform": (V.shape[0], k)}
    store = stores_for(model, V, stats, shapes, persisted=False)["transform"]
    if runs_eagerly(V) and store is None:
        V, H, W0 = dask.compute(V, H, W0)
    V, W0, H = on_device(V, W0, H, device=model.device, persist=False)
    solver = build_solver(model, V, stats, in_memory=False)
    W = solver.transform_w(
        H, W0, max_iter=model.max_iter, tol=model.tol, check_every=model.check_every
    )
    # Computed here, under NMF.transform's BLAS limit.
    W = dask.persist(W)[0] if store is None else store.put(W)
    lazy = is_lazy(X) or store is not None
    return as_result(W, lazy=lazy, device=model.device, output=model.output)
