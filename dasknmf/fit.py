"""The iteration loop: run a solver's steps, observe them, decide when to stop.

The loop knows nothing of storage or of the update rule: each iteration asks the
solver for a lazy :class:`~dasknmf.solvers.base.Step`, persists the new factors (on
the workers when a ``distributed.Client`` is active) and reads back one number, the
error. Stopping follows scikit-learn: every ``check_every`` iterations, stop when
``(previous_error - error) / error_at_init < tol``, where ``previous_error`` is the
error at the previous check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dask
import dask.array as da

from dasknmf.resources import single_threaded_blas
from dasknmf.solvers.base import Solver

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IterationInfo:
    """What a callback sees after each iteration.

    Attributes
    ----------
    iteration : int
        1-based number of the iteration just finished.
    error : float
        Reconstruction error after it (``‖V − WH‖_F`` for the Frobenius loss).
    error_at_init : float
        Error of the initial factors.
    elapsed : float
        Seconds since the loop started.
    W, H : dask.array.Array
        The factors after this iteration (persisted).
    """

    iteration: int
    error: float
    error_at_init: float
    elapsed: float
    W: da.Array = field(repr=False)
    H: da.Array = field(repr=False)


Callback = Callable[[IterationInfo], object]


@dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`run`: final factors (persisted), iterations run, final and
    initial error, ``(iteration, error)`` for every iteration whose error was
    computed, and whether the ``tol`` rule stopped the loop."""

    W: da.Array
    H: da.Array
    n_iter: int
    error: float
    error_at_init: float
    errors: list[tuple[int, float]]
    converged: bool


def run(
    solver: Solver,
    W: da.Array,
    H: da.Array,
    *,
    max_iter: int,
    tol: float,
    check_every: int = 10,
    callbacks: Sequence[Callback] = (),
) -> FitResult:
    """Iterate ``solver`` from ``(W, H)``.

    The error is computed only where it is used: at convergence checks, after the
    last iteration, and after every iteration when there are callbacks. ``V``, ``W``
    and ``H`` may be dask arrays (one graph per iteration) or, for a single-tile
    problem, in-memory arrays (the same solver code, run eagerly).

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

    Returns
    -------
    FitResult
    """
    start = time.perf_counter()
    with single_threaded_blas():
        W, H = dask.persist(W, H)
        error_at_init = previous = error = float(dask.compute(solver.error(W, H))[0])
        errors: list[tuple[int, float]] = []
        converged, n_iter = False, 0
        for n_iter in range(1, max_iter + 1):
            step = solver.step(W, H)
            check = tol > 0 and n_iter % check_every == 0
            # The solvers fuse their tasks themselves; dask's graph optimisation would
            # only add milliseconds to every iteration.
            if callbacks or check or n_iter == max_iter:
                W, H, err = dask.persist(step.W, step.H, step.error(), optimize_graph=False)
                error = float(dask.compute(err)[0])
                errors.append((n_iter, error))
                logger.debug("iteration %d: error %.6g", n_iter, error)
            else:
                W, H = dask.persist(step.W, step.H, optimize_graph=False)
                continue
            info = IterationInfo(n_iter, error, error_at_init, time.perf_counter() - start, W, H)
            for callback in callbacks:
                callback(info)
            if check:
                if error_at_init == 0 or (previous - error) / error_at_init < tol:
                    converged = True
                    break
                previous = error
    return FitResult(W, H, n_iter, error, error_at_init, errors, converged)
