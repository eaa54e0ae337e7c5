"""The iteration loop of a stacked fit: many replicates, one pass over ``V`` each time.

Each iteration runs one step of a stacked solver (its factors side by side, see
:mod:`dasknmf.kernels.stack`), so every tile of ``V`` is read once for all replicates.
Each replicate keeps its own stopping rule (:class:`~dasknmf.stopping.ToleranceRule`,
scikit-learn's, at the same iterations as a single fit): when it stops, its factors
are set aside and its columns leave the stack, so a converged replicate costs nothing
more. Replicate ``r`` therefore runs exactly the iterations, and reaches exactly the
factors, of the fit it stands for run alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np

from dasknmf.fit import stepper
from dasknmf.kernels.stack import Stack
from dasknmf.resources import single_threaded_blas
from dasknmf.solvers.base import Solver
from dasknmf.stopping import ToleranceRule


@dataclass(frozen=True)
class ReplicateResult:
    """How one replicate of a stacked fit ended.

    Attributes
    ----------
    W, H : numpy.ndarray or dask.array.Array
        Its factors (``m × k`` and ``k × n``; persisted dask arrays for a tiled input).
    n_iter : int
        Iterations it ran.
    error, error_at_init : float
        Its error at the end and of its initial factors (``‖V − WH‖_F``).
    errors : tuple of (int, float)
        ``(iteration, error)`` of each iteration whose error was computed.
    converged : bool
        Whether the ``tol`` rule stopped it.
    """

    W: Any = field(repr=False)
    H: Any = field(repr=False)
    n_iter: int
    error: float
    error_at_init: float
    errors: tuple[tuple[int, float], ...] = field(default=(), repr=False)
    converged: bool = False


@dataclass(frozen=True)
class SweepProgress:
    """What a progress callback sees after each iteration of a stacked fit.

    Attributes
    ----------
    iteration : int
        1-based number of the iteration just finished.
    running : int
        Replicates still iterating after it.
    total : int
        Replicates in the fit.
    elapsed : float
        Seconds since the loop started.
    """

    iteration: int
    running: int
    total: int
    elapsed: float

    @property
    def seconds_per_iteration(self) -> float:
        """Mean wall time of the iterations so far."""
        return self.elapsed / max(self.iteration, 1)


def _take_columns(W, columns: np.ndarray):
    if isinstance(W, da.Array):
        return W[:, columns]
    return np.ascontiguousarray(W[:, columns])


def _take_rows(H, rows: np.ndarray):
    if isinstance(H, da.Array):
        return H[rows]
    return np.ascontiguousarray(H[rows])


def run_stacked(
    build: Callable[[Stack], Solver],
    W,
    H,
    stack: Stack,
    *,
    max_iter: int,
    tol: float,
    check_every: int = 10,
    progress: Sequence[Callable[[SweepProgress], object]] = (),
) -> list[ReplicateResult]:
    """Iterate stacked replicates from ``(W, H)`` until each one stops.

    Parameters
    ----------
    build : callable
        ``build(stack)`` returns the stacked solver for the replicates of ``stack``
        (called again with fewer replicates when some stop).
    W, H : dask.array.Array or numpy.ndarray
        The stacked initial factors: ``m × Σk`` chunked like ``V``'s rows with one
        column chunk, and ``Σk × n`` chunked like ``V``'s columns.
    stack : Stack
        The replicates' ranks, in column order.
    max_iter, tol, check_every
        As for :func:`dasknmf.fit.run`, applied to every replicate on its own.
    progress : sequence of callables
        Each called with a :class:`SweepProgress` after every iteration.

    Returns
    -------
    list of ReplicateResult
        One per replicate, in ``stack`` order.
    """
    started = time.perf_counter()
    total = len(stack.ranks)
    results: list[ReplicateResult | None] = [None] * total
    with single_threaded_blas():
        W, H = dask.persist(W, H)
        solver = build(stack)
        at_init = np.atleast_1d(np.asarray(dask.compute(solver.error(W, H))[0], dtype=float))
        rules = [ToleranceRule(tol, check_every, float(e)) for e in at_init]
        curves: list[list[tuple[int, float]]] = [[] for _ in range(total)]
        active = list(range(total))  # replicate of each position in the current stack
        last = at_init.copy()
        advance = stepper(solver, W, H) if max_iter > 0 else None
        iteration = 0
        while active and iteration < max_iter:
            iteration += 1
            check = tol > 0 and iteration % check_every == 0
            want = check or iteration == max_iter
            W, H, err = advance(W, H, want)
            stopped: list[int] = []  # positions in the current stack
            if want:
                err = np.atleast_1d(err)
                for position, replicate in enumerate(active):
                    value = float(err[position])
                    last[replicate] = value
                    curves[replicate].append((iteration, value))
                    converged = check and rules[replicate].converged(value)
                    if converged or iteration == max_iter:
                        stopped.append(position)
                        results[replicate] = _result(
                            W, H, stack, position, iteration, value, at_init[replicate],
                            curves[replicate], converged,
                        )  # fmt: skip
            if stopped and len(stopped) < len(active):
                keep = [p for p in range(len(active)) if p not in stopped]
                W, H = dask.persist(
                    _take_columns(W, stack.columns(keep)), _take_rows(H, stack.columns(keep))
                )
                stack = stack.subset(keep)
                active = [active[p] for p in keep]
                solver = build(stack)
                advance = stepper(solver, W, H)
            elif stopped:
                active = []
            info = SweepProgress(iteration, len(active), total, time.perf_counter() - started)
            for callback in progress:
                callback(info)
        for position, replicate in enumerate(active):  # max_iter == 0
            results[replicate] = _result(
                W, H, stack, position, iteration, float(last[replicate]),
                at_init[replicate], curves[replicate], False,
            )  # fmt: skip
    return results  # type: ignore[return-value]


def _result(W, H, stack, position, n_iter, error, error_at_init, curve, converged):
    columns = stack.columns([position])
    W_r, H_r = dask.persist(_take_columns(W, columns), _take_rows(H, columns))
    return ReplicateResult(
        W_r, H_r, n_iter, float(error), float(error_at_init), tuple(curve), bool(converged)
    )
