"""Many starts of one factorisation fitted together: what :class:`~dasknmf.RankSweep`
and ``NMF(n_init=R)`` share.

The starts' factors are stacked side by side (``W``: ``m × Σk``) and advance through
:func:`dasknmf.sweep.loop.run_stacked`, one read of each tile per iteration for all of
them. Start ``(k, seed)`` is the fit ``NMF(k, random_state=seed)`` with the template's
other parameters. The template is an :class:`~dasknmf.NMF` (duck-typed here: this
module sits below the estimators that use it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from numbers import Integral
from typing import Any

import dask
import dask.array as da
import numpy as np

from dasknmf.errors import InvalidParameterError
from dasknmf.estimator.parameters import resolve_n_components
from dasknmf.estimator.placement import (
    factor_stores,
    keeps_in_memory,
    runs_eagerly,
    zero_missing,
)
from dasknmf.estimator.preparation import (
    as_tiled,
    build_solver,
    checked_stats,
    scale_mean,
    stores_for,
)
from dasknmf.fit_state import FitState
from dasknmf.init import initialize
from dasknmf.random import seed_from
from dasknmf.sweep import Stack
from dasknmf.sweep.composite import ReplicateSolvers
from dasknmf.sweep.loop import (
    ReplicateResult,
    Stores,
    SweepState,
    chunked,
    resume_stacked,
    run_stacked,
)

__all__ = ["BestStart", "best_start", "fit_replicates", "replicate_seeds"]


def replicate_seeds(random_state: Any, n_replicates: int) -> tuple[int, np.ndarray]:
    """A base seed and one seed per replicate, drawn from ``random_state``.

    Replicate ``r`` of every rank uses seed ``r``: it is the fit
    ``NMF(k, random_state=seeds[r])``.
    """
    base = seed_from(random_state)
    seeds = np.random.default_rng([base, 0xC0FFEE]).integers(0, 2**31 - 1, size=n_replicates)
    return base, seeds


def fit_replicates(
    template: Any,
    V: da.Array,
    stats: Any,
    starts: list[tuple[int, int]],
    *,
    init: str,
    base_seed: int,
    progress: list,
    resume: SweepState | None = None,
) -> list[ReplicateResult]:
    """Fit the starts ``(k, seed)`` of ``template`` on ``V`` together.

    Parameters
    ----------
    template : NMF
        Its loss, solver, penalties, mask, ``max_iter``, ``tol``, ``check_every`` and
        ``persist`` apply to every start.
    V : dask.array.Array
        The tiled input (:func:`~dasknmf.estimator.preparation.as_tiled`), ``stats``
        its statistics.
    starts : list of (int, int)
        Each start's rank and seed, in the order of the results.
    init : {'random', 'nndsvdar'}
        How each start begins from its seed.
    base_seed : int
        Recorded in the states that ``progress`` callbacks may take.
    progress : list of callables
        Called with a :class:`~dasknmf.sweep.loop.SweepProgress` after each iteration.
    resume : SweepState, optional
        Continue from there instead of starting.
    """
    persisted = keeps_in_memory(V, stats, template.persist, "cpu")
    if persisted:
        (V,) = dask.persist(V)
    stack = Stack(tuple(k for k, _ in starts))
    options = dict(
        max_iter=template.max_iter,
        tol=template.tol,
        check_every=template.check_every,
        progress=progress,
    )
    if resume is None:
        W0, H0 = _initial_factors(template, V, stats, starts, init)
    else:
        W0 = chunked(resume.W, (V.chunks[0], -1))
        H0 = chunked(resume.H, (-1, V.chunks[1]))
    stores = _stores(template, V, stats, starts, persisted=persisted)
    if resume is not None:
        resume = _finished_kept(resume, stores)
    if stores is None and runs_eagerly(V):
        V, W0, H0 = dask.compute(V, W0, H0)
    options["stores"] = stores
    solver = build_solver(template, V, stats, in_memory=persisted)

    def build(st):
        # Stacked in the kernels where the solver can; else side by side.
        if getattr(solver, "stackable", False):
            return replace(solver, stack=st)
        return ReplicateSolvers(solver, st)

    if resume is None:
        return run_stacked(build, W0, H0, stack, seed=base_seed, **options)
    return resume_stacked(build, replace(resume, W=W0, H=H0), **options)


def _stores(template: Any, V, stats, starts, *, persisted: bool) -> Stores | None:
    """Where the starts keep ``W`` (``None``: in memory), by the template's
    ``factors`` and ``factor_store``, for the stacked ``W`` (``m × Σk``) as for one
    fit's: in ``factor_store/W``, each finished start's in ``factor_store/W-<r>``
    (temporary directories without a ``factor_store``)."""
    m, total = V.shape[0], sum(k for k, _ in starts)
    stacked = stores_for(template, V, stats, {"W": (m, total)}, persisted=persisted)["W"]
    if stacked is None:
        return None

    def finished(r: int) -> Any:
        name = f"W-{r}"
        shape = (m, starts[r][0])
        return factor_stores(
            "store", template.factor_store, {name: shape}, dtype=V.dtype, v_bytes=0, device="cpu"
        )[name]

    return Stores(stacked, finished)


def _finished_kept(state: SweepState, stores: Stores | None) -> SweepState:
    """``state`` with its finished replicates' ``W`` where this fit keeps them: in
    their factor stores, or in memory. A checkpoint's are read lazily from files that
    its successor deletes."""

    def kept(r: int, result: ReplicateResult | None) -> ReplicateResult | None:
        if result is None or not isinstance(result.W, da.Array):
            return result
        W = stores.finished(r).put(result.W) if stores else np.asarray(result.W.compute())
        return replace(result, W=W)

    return replace(state, finished=tuple(kept(r, x) for r, x in enumerate(state.finished)))


def _initial_factors(template: Any, V, stats, starts, init: str) -> tuple[Any, Any]:
    source = zero_missing(V) if template._masked else V
    Ws, Hs = [], []
    for k, seed in starts:
        W, H = initialize(
            source, k, init, mean=scale_mean(template, stats), seed=int(seed), dtype=V.dtype
        )
        Ws.append(W)
        Hs.append(H)
    W = da.concatenate(Ws, axis=1).rechunk({1: -1})
    H = da.concatenate(Hs, axis=0).rechunk({0: -1})
    return W, H


@dataclass(frozen=True)
class BestStart:
    """What :func:`best_start` found: the best start's ``state``, every start's final
    ``errors`` and ``seeds``, and the tiled input ``V`` with its ``stats`` (the fit
    that continues the best start reuses them rather than tiling and reading ``X``
    again)."""

    state: FitState
    errors: np.ndarray
    seeds: np.ndarray
    V: Any
    stats: Any


def best_start(model: Any, X: Any, W: Any, H: Any, resume: Any) -> BestStart:
    """``NMF(n_init=R)``: fit ``R`` random starts of ``model`` together and return the
    state of the one with the lowest final error (for ``fit(X, resume=state)``, which
    then ends at once with that start's factors, iterations and error curve), the
    final error of every start and their seeds.

    Raises
    ------
    InvalidParameterError
        A parameter that a multi-start fit cannot honour (named with the reason).
    """
    _check_starts(model, W, H, resume)
    rank = model.n_components
    stacked = int(rank) * model.n_init if isinstance(rank, Integral) else None  # tiles' width
    V = as_tiled(model, X, reset=True, k=stacked)
    m, n = V.shape
    k = resolve_n_components(model.n_components, m, n, None, None, custom=False)
    stats = checked_stats(model, V)
    base, seeds = replicate_seeds(model.random_state, model.n_init)
    progress = [partial(_print_starts, model.check_every)] if model.verbose else []
    init = "random" if model.init is None else model.init
    starts = [(k, int(seed)) for seed in seeds]
    results = fit_replicates(model, V, stats, starts, init=init, base_seed=base, progress=progress)
    errors = np.array([r.error for r in results])
    r = results[int(np.argmin(errors))]
    state = FitState(r.n_iter, r.W, r.H, r.error, r.error_at_init, r.error, r.errors, r.converged)
    return BestStart(state, errors, seeds, V, stats)


def _check_starts(model: Any, W: Any, H: Any, resume: Any) -> None:
    why = None
    if model.init not in (None, "random", "nndsvdar"):
        why = (
            f"init={model.init!r} starts every fit alike; use init='random' or "
            "'nndsvdar' (or None, which is 'random' here)"
        )
    elif W is not None or H is not None or resume is not None:
        why = "W, H and resume give one start; do not pass them with n_init > 1"
    elif model.validation is not None:
        why = "validation early stopping runs one fit; use n_init=1 with it"
    elif model.device != "cpu":
        why = "the starts run on the CPU; use device='cpu'"
    elif model.callbacks:
        why = (
            "callbacks see one fit's iterations (IterationInfo); the starts advance "
            "together (use verbose, or dasknmf.RankSweep with callbacks)"
        )
    if why is not None:
        raise InvalidParameterError(f"The 'n_init' parameter {model.n_init!r}: {why}.")


def _print_starts(every: int, info: Any) -> None:
    """``verbose``'s line, every ``check_every`` iterations and at the end (as
    :class:`~dasknmf.RankSweep` prints)."""
    if info.iteration % every == 0 or info.running == 0:
        print(
            f"iter {info.iteration:5d}  running {info.running:4d} of {info.total} starts  "
            f"{info.seconds_per_iteration:.3g} s/iter",
            flush=True,
        )
