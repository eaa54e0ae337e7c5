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
from dataclasses import dataclass, field, replace
from typing import Any

import dask
import dask.array as da
import numpy as np

from dasknmf.devices import to_host
from dasknmf.kernels.stack import Stack
from dasknmf.resources import task_threads
from dasknmf.solvers.base import Solver
from dasknmf.steppers import FactorKeeper, Keepers, handed, kept, stepper
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
class SweepState:
    """Where a stacked fit stands after an iteration: enough to continue it exactly.

    Made by :meth:`SweepProgress.state` (in a progress callback) and continued by
    :func:`resume_stacked`: every replicate still running goes on from its factors
    with its stopping rule where it was, and the result is that of a loop that never
    stopped. Factors are host arrays (NumPy blocks), so that a state can be written
    to files.

    Attributes
    ----------
    iteration : int
        Iterations done.
    ranks : tuple of int
        Every replicate's rank, in the order of the results.
    active : tuple of int
        Replicates still running, in the column order of ``W`` and ``H``.
    W, H : numpy.ndarray or dask.array.Array
        The running replicates' stacked factors.
    error_at_init, check_error, error : tuple of float
        Per replicate: the error of its initial factors, at its last convergence
        check, and the last one computed.
    errors : tuple of tuples of (int, float)
        Per replicate, its error curve so far.
    finished : tuple of ReplicateResult or None
        Per replicate, its result once it has stopped.
    elapsed : float
        Seconds the loop has run.
    seed : int or None
        Left to the caller (a rank sweep records its base seed here, so that a
        resumed sweep draws the same held-out rows and columns).
    """

    iteration: int
    ranks: tuple[int, ...]
    active: tuple[int, ...]
    W: Any = field(repr=False)
    H: Any = field(repr=False)
    error_at_init: tuple[float, ...] = field(repr=False)
    check_error: tuple[float, ...] = field(repr=False)
    error: tuple[float, ...] = field(repr=False)
    errors: tuple[tuple[tuple[int, float], ...], ...] = field(repr=False)
    finished: tuple[ReplicateResult | None, ...] = field(repr=False)
    elapsed: float = 0.0
    seed: int | None = None


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
        Seconds since the loop started (counting a resumed loop's earlier run).
    """

    iteration: int
    running: int
    total: int
    elapsed: float
    _snapshot: Callable[[], SweepState] | None = field(default=None, repr=False)

    @property
    def seconds_per_iteration(self) -> float:
        """Mean wall time of the iterations so far."""
        return self.elapsed / max(self.iteration, 1)

    def state(self) -> SweepState:
        """The loop's state after this iteration, for :func:`resume_stacked`."""
        if self._snapshot is None:
            raise ValueError("this progress report carries no state")
        return self._snapshot()


def chunked(X, chunks) -> da.Array:
    """``X`` (a NumPy or dask array) as a dask array of ``chunks``: stacked factors
    chunked like the matrix they are multiplied with."""
    return X.rechunk(chunks) if isinstance(X, da.Array) else da.from_array(X, chunks=chunks)


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
    seed: int | None = None,
    stores: Stores | None = None,
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
    seed : int, optional
        Recorded in every :class:`SweepState` (:attr:`SweepState.seed`).
    stores : Stores, optional
        Keep the stacked ``W`` in a factor store between iterations, and each
        finished replicate's ``W`` in one of its own, instead of in memory: memory
        then holds ``H``, tiles and blocks in flight, whatever ``m × Σk``.

    Returns
    -------
    list of ReplicateResult
        One per replicate, in ``stack`` order.
    """
    with task_threads():
        W, H = kept(W, H, _keepers(stores))
        errors = np.atleast_1d(np.asarray(dask.compute(build(stack).error(W, H))[0], float))
    at_init = tuple(float(e) for e in errors)
    total = len(stack.ranks)
    state = SweepState(
        0, stack.ranks, tuple(range(total)), W, H, at_init, at_init, at_init,
        ((),) * total, (None,) * total, seed=seed,
    )  # fmt: skip
    return _iterate(build, state, max_iter, tol, check_every, progress, stores)


def resume_stacked(
    build: Callable[[Stack], Solver],
    state: SweepState,
    *,
    max_iter: int,
    tol: float,
    check_every: int = 10,
    progress: Sequence[Callable[[SweepProgress], object]] = (),
    stores: Stores | None = None,
) -> list[ReplicateResult]:
    """Continue :func:`run_stacked` from ``state``: the same results as the loop
    that never stopped, with the same ``build``, ``tol`` and ``check_every``
    (``max_iter`` counts from the start), keeping the factors as ``stores`` says."""
    if state.iteration > max_iter:
        raise ValueError(
            f"cannot resume at iteration {state.iteration} a loop of max_iter={max_iter}"
        )
    with task_threads():
        W, H = kept(state.W, state.H, _keepers(stores))
    state = replace(state, W=W, H=H)
    return _iterate(build, state, max_iter, tol, check_every, progress, stores)


@dataclass(frozen=True)
class Stores:
    """Where a stacked fit keeps ``W`` out of memory: ``stacked`` holds the running
    replicates' ``W`` (a new generation each iteration, written by the pass over
    ``V`` that computes it), and ``finished(r)`` gives the store that keeps replicate
    ``r``'s ``W`` once it stops. ``H`` (``Σk × n``) is held by this process."""

    stacked: FactorKeeper
    finished: Callable[[int], FactorKeeper]


def _keepers(stores: Stores | None) -> Keepers:
    """The loop's keepers of ``(W, H)``: the stacked store for ``W``, if any; ``H``
    in memory."""
    return (None, None) if stores is None else (stores.stacked, None)


def _iterate(build, state: SweepState, max_iter, tol, check_every, progress, stores=None):
    started = time.perf_counter() - state.elapsed
    ranks, total = state.ranks, len(state.ranks)
    results = list(state.finished)
    at_init, last = list(state.error_at_init), list(state.error)
    rules = [
        ToleranceRule(tol, check_every, at_init[r], previous=state.check_error[r])
        for r in range(total)
    ]
    curves = [list(curve) for curve in state.errors]
    active = list(state.active)  # replicate of each position in the current stack
    stack = Stack(tuple(ranks[r] for r in active)) if active else None
    W, H, iteration = state.W, state.H, state.iteration

    # A stored W stays where it is: its state reads the store (a checkpoint links it).
    host = to_host if stores is None else _as_is

    def snapshot() -> SweepState:
        return SweepState(
            iteration, ranks, tuple(active), host(W), to_host(H), tuple(at_init),
            tuple(rule.previous for rule in rules), tuple(last),
            tuple(tuple(curve) for curve in curves),
            tuple(None if r is None else _on_host(r, host) for r in results),
            time.perf_counter() - started, state.seed,
        )  # fmt: skip

    keepers = _keepers(stores)

    def advancing(stack):
        return stepper(build(stack), W, H, keepers)

    def finish(replicate, position, value, converged):
        results[replicate] = _result(
            W, H, stack, position, iteration, value, at_init[replicate], curves[replicate],
            converged, None if stores is None else stores.finished(replicate),
        )  # fmt: skip

    with task_threads():
        advance = advancing(stack) if active and iteration < max_iter else None
        while active and iteration < max_iter:
            iteration += 1
            check = tol > 0 and iteration % check_every == 0
            want = check or iteration == max_iter
            # Handed over: the step frees the current stack's blocks as it goes.
            current = [W, H]
            del W, H
            W, H, err, _ = handed(advance, current, want)
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
                        finish(replicate, position, value, converged)
            if stopped and len(stopped) < len(active):
                keep = [p for p in range(len(active)) if p not in stopped]
                W, H = kept(
                    _take_columns(W, stack.columns(keep)),
                    _take_rows(H, stack.columns(keep)),
                    keepers,
                )
                stack = stack.subset(keep)
                active = [active[p] for p in keep]
                advance = advancing(stack)
            elif stopped:
                active = []
            info = SweepProgress(
                iteration, len(active), total, time.perf_counter() - started, snapshot
            )
            for callback in progress:
                callback(info)
        for position, replicate in enumerate(active):  # max_iter == 0
            finish(replicate, position, float(last[replicate]), False)
    return results


def _as_is(X):
    return X


def _on_host(result: ReplicateResult, host=to_host) -> ReplicateResult:
    return replace(result, W=host(result.W), H=to_host(result.H))


def _result(W, H, stack, position, n_iter, error, error_at_init, curve, converged, store=None):
    columns = stack.columns([position])
    if store is None:
        W_r, H_r = dask.persist(_take_columns(W, columns), _take_rows(H, columns))
    else:
        W_r = store.put(_take_columns(W, columns))
        (H_r,) = dask.persist(_take_rows(H, columns))
    return ReplicateResult(
        W_r, H_r, n_iter, float(error), float(error_at_init), tuple(curve), bool(converged)
    )
