"""The iteration loop: run a solver's steps, observe them, decide when to stop.

The loop knows nothing of storage or of the update rule: each iteration asks the
solver for a lazy :class:`~dasknmf.solvers.base.Step`, persists the new factors (on
the workers when a ``distributed.Client`` is active) and reads back one number, the
error. Stopping follows scikit-learn (:class:`dasknmf.stopping.ToleranceRule`).

A loop can be stopped and continued: :meth:`IterationInfo.state` captures where it
stands after an iteration (a :class:`FitState`: the factors and the few numbers the
loop carries), and :func:`resume` continues from there as if it had never stopped.
Keeping a state across processes (files, checkpoints) is the caller's business.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import dask
import dask.array as da

from dasknmf.fit_state import Callback, FitResult, FitState, IterationInfo
from dasknmf.lineage import MAX_REPLAYS, REROOT_EVERY, is_lost_data, planted, take_anchor
from dasknmf.resources import active_client, reusing_worker_heap, task_threads
from dasknmf.solvers.base import Solver
from dasknmf.steppers import ErrorWanted, Keepers, handed, handed_over, kept, stepper
from dasknmf.stopping import ToleranceRule

logger = logging.getLogger(__name__)


def run(
    solver: Solver,
    W: da.Array,
    H: da.Array,
    *,
    max_iter: int,
    tol: float,
    check_every: int = 10,
    callbacks: Sequence[Callback] = (),
    keepers: Keepers = (None, None),
) -> FitResult:
    """Iterate ``solver`` from ``(W, H)``.

    The error is computed only where it is used: at convergence checks, after the
    last iteration, and after every iteration when there are callbacks. The initial
    factors' error comes out of the first iteration's pass over ``V`` where the
    solver can give it (its ``scores_input``: out of core, the Frobenius solvers'
    one-pass update), else from a pass of its own before it. ``V``, ``W``
    and ``H`` may be dask arrays or, for a single-tile problem, in-memory arrays (the
    same solver code, run eagerly). How each iteration's graph is run is chosen by
    :func:`stepper`.

    Parameters
    ----------
    solver : Solver
        The update rule, bound to ``V``.
    W, H : dask.array.Array
        Initial factors, chunked like ``V``'s rows and columns.
    max_iter : int
        Most iterations to run (0 returns the initial factors).
    tol : float
        Relative decrease of the error below which the loop stops; 0 disables.
    check_every : int
        Iterations between two convergence checks.
    callbacks : sequence of callables
        Each called with an :class:`IterationInfo` after every iteration.
    keepers : (FactorKeeper or None, FactorKeeper or None), optional
        Keep ``W``, ``H`` (or both) in these factor stores between iterations instead
        of in memory; a factor not stored is then held by this process. The result's
        stored factors read their stores.

    Returns
    -------
    FitResult
    """
    handed = [W, H]
    del W, H  # this frame would hold the initial W to the end of the loop
    return run_handed(
        solver, handed, max_iter=max_iter, tol=tol, check_every=check_every,
        callbacks=callbacks, keepers=keepers,
    )  # fmt: skip


def run_handed(solver: Solver, handed: list, **options) -> FitResult:
    """:func:`run` from ``handed = [W, H]``, which it empties: the loop then owns the
    initial factors, and once it has moved past them nothing keeps them (a caller's
    frame holding them for the whole loop would hold a whole extra ``W``;
    docs/benchmarks.md, peak memory out of core). ``options`` are :func:`run`'s."""
    started = time.perf_counter()
    iterates = options["max_iter"] > 0

    def start() -> FitState:
        with task_threads():
            W_kept, H_kept = kept(*handed_over(handed), options.get("keepers", (None, None)))
            if iterates and getattr(solver, "scores_input", False):
                # Out of core a pass over V costs a read of every tile: the first
                # iteration's pass gives the initial error (see _one_iteration).
                return FitState(0, W_kept, H_kept, math.nan, math.nan, math.nan)
            error = float(dask.compute(solver.error(W_kept, H_kept))[0])
        return FitState(0, W_kept, H_kept, error, error, error)

    return _iterate(solver, start, started, **options)


def resume(
    solver: Solver,
    state: FitState,
    *,
    max_iter: int,
    tol: float,
    check_every: int = 10,
    callbacks: Sequence[Callback] = (),
    keepers: Keepers = (None, None),
) -> FitResult:
    """Continue the loop of :func:`run` from ``state``.

    Runs iterations ``state.iteration + 1`` to ``max_iter`` (none if ``state``
    converged) from ``state.W``, ``state.H``, with the stopping rule restored
    (``error_at_init`` and the last check's error, not recomputed) and the error
    curve continued. With the same solver, ``tol`` and ``check_every``, the result
    equals that of the uninterrupted :func:`run` (same factors, ``n_iter``,
    ``errors`` and ``converged``), whether or not errors were computed at every
    iteration.

    Parameters
    ----------
    solver : Solver
        The update rule, bound to the same ``V`` as the loop that made ``state``.
    state : FitState
        Where to continue; its ``W`` and ``H`` chunked like ``V``'s rows and columns.
    max_iter, tol, check_every, callbacks, keepers
        As for :func:`run`; ``max_iter`` counts from the start of the original loop
        and may not be below ``state.iteration``.

    Returns
    -------
    FitResult
    """
    handed = [state]
    del state  # as run(): the loop owns the state's factors
    return resume_handed(
        solver, handed, max_iter=max_iter, tol=tol, check_every=check_every,
        callbacks=callbacks, keepers=keepers,
    )  # fmt: skip


def resume_handed(solver: Solver, handed: list, **options) -> FitResult:
    """:func:`resume` from ``handed = [state]``, which it empties (as
    :func:`run_handed`). ``options`` are :func:`resume`'s."""
    iteration, max_iter = handed[0].iteration, options["max_iter"]
    if iteration > max_iter:
        raise ValueError(f"cannot resume at iteration {iteration} a loop of max_iter={max_iter}")
    started = time.perf_counter()

    def start() -> FitState:
        (resumed,) = handed_over(handed)
        with task_threads():
            W, H = kept(resumed.W, resumed.H, options.get("keepers", (None, None)))
        return replace(resumed, W=W, H=H)

    return _iterate(solver, start, started, **options)


def _iterate(
    solver: Solver,
    start: Callable[[], FitState],
    started: float,
    *,
    max_iter: int,
    tol: float,
    check_every: int = 10,
    callbacks: Sequence[Callback] = (),
    keepers: Keepers = (None, None),
) -> FitResult:
    """The loop from ``start()`` (a state of kept factors) to ``max_iter`` or
    convergence. The state is made here, so that no caller's frame keeps its factors
    (a stored ``W``'s first generation is freed once the loop has moved past it).

    On a ``distributed`` cluster the factors are re-rooted every
    :data:`~dasknmf.lineage.REROOT_EVERY` iterations (see :mod:`dasknmf.lineage`); if
    a worker dies with some of them, the loop goes back to the last re-root and
    replays the iterations since, so callbacks may see those iterations again. With
    stored factors there is nothing to re-root: a lost worker held no factor.
    """
    state = start()
    W, H, error, n_iter = state.W, state.H, state.error, state.iteration
    converged = state.converged
    errors = list(state.errors)
    # error_at_init is NaN until the first iteration has scored its input factors.
    stopping = ToleranceRule(tol, check_every, state.error_at_init, previous=state.check_error)
    elapsed_before = state.elapsed
    del state  # its factors would stay referenced (and a stored W's generation kept)
    if converged or n_iter >= max_iter:
        return FitResult(W, H, n_iter, error, stopping.error_at_init, errors, converged)
    stored = any(keeper is not None for keeper in keepers)
    client = active_client() if isinstance(W, da.Array) and not stored else None
    # Only while V is held in memory: an out-of-core fit's workers need their freed
    # memory back for the tiles they read (and gain little: decoding dominates).
    heap_client = client if getattr(solver, "in_memory", False) else None
    with task_threads(), reusing_worker_heap(heap_client):
        anchor, replays = None, 0
        if client is not None:
            anchor = take_anchor(
                n_iter, W, H, error=error, check=stopping.previous, errors=tuple(errors)
            )
            W, H = planted(client, anchor)
        advance = stepper(solver, W, H, keepers)
        while n_iter < max_iter:
            n_iter += 1
            # Handed over, not passed: no frame here keeps the current factors while
            # the step replaces them (steppers.handed).
            current = [W, H]
            del W, H
            try:
                W, H, error, converged = _one_iteration(
                    advance,
                    current,
                    n_iter,
                    max_iter,
                    stopping,
                    errors,
                    error,
                    lambda: elapsed_before + time.perf_counter() - started,
                    callbacks,
                    on_host=stored,
                )
                if anchor is not None and n_iter % REROOT_EVERY == 0 and not converged:
                    anchor = take_anchor(
                        n_iter, W, H, error=error, check=stopping.previous, errors=tuple(errors)
                    )
                    W, H = planted(client, anchor)
                    replays = 0
            except Exception as exc:
                if anchor is None or not is_lost_data(exc) or replays >= MAX_REPLAYS:
                    raise
                replays += 1
                logger.warning(
                    "factor blocks were lost with a worker (%s): replaying from iteration %d",
                    exc,
                    anchor.iteration,
                )
                W, H = planted(client, anchor)
                n_iter, error = anchor.iteration, anchor.carry["error"]
                check = anchor.carry["check"]
                stopping.previous = stopping.error_at_init if math.isnan(check) else check
                errors = list(anchor.carry["errors"])
                continue
            if converged:
                break
    return FitResult(W, H, n_iter, error, stopping.error_at_init, errors, converged)


def _one_iteration(
    advance,
    current: list,
    n_iter: int,
    max_iter: int,
    stopping: ToleranceRule,
    errors: list[tuple[int, float]],
    error: float,
    elapsed: Callable[[], float],
    callbacks: Sequence[Callback],
    on_host: bool = False,
):
    """Iteration ``n_iter`` from the factors in ``current`` (``[W, H]``, emptied):
    the new factors, the error (unchanged when not computed), and whether the ``tol``
    rule stops the loop here; callbacks are called. While ``stopping`` has no initial
    error yet (NaN), the iteration's pass scores its input factors and the rule
    starts from that."""
    check = stopping.is_check(n_iter)
    # Where the rule reads the error (and the last, the model's), to float64 accuracy.
    want_error = ErrorWanted.EXACT if check or n_iter == max_iter else ErrorWanted(bool(callbacks))
    score_input = math.isnan(stopping.error_at_init)
    W, H, err, start = handed(advance, current, want_error, score_input)
    if score_input:
        stopping.error_at_init = stopping.previous = float(start)
    if not want_error:
        return W, H, error, False
    err = float(err)
    errors.append((n_iter, err))
    logger.debug("iteration %d: error %.6g", n_iter, err)
    # The rule decides before the callbacks see the iteration, so that the state
    # they may keep includes the decision.
    converged = check and stopping.converged(err)
    if callbacks:
        info = IterationInfo(
            n_iter,
            err,
            stopping.error_at_init,
            elapsed(),
            W,
            H,
            check_error=stopping.previous,
            converged=converged,
            errors=tuple(errors),
            on_host=on_host,
        )
        for callback in callbacks:
            callback(info)
    return W, H, err, converged
