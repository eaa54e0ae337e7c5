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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.base import get_scheduler, tokenize
from dask.core import flatten

from dasknmf.devices import to_host
from dasknmf.lineage import MAX_REPLAYS, REROOT_EVERY, is_lost_data, planted, take_anchor
from dasknmf.resources import active_client, reusing_worker_heap, single_threaded_blas
from dasknmf.solvers.base import Solver
from dasknmf.stopping import ToleranceRule

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitState:
    """Where the iteration loop stands after an iteration: enough to continue it exactly.

    Made by :meth:`IterationInfo.state` (in a callback) and continued by
    :func:`resume` or ``NMF.fit(X, resume=state)``: the iterations after
    :attr:`iteration` run from ``(W, H)`` with the stopping rule where it was, so the
    continued loop ends with the factors, iteration count, error curve and
    convergence of a loop that never stopped. It holds nothing of the input or the
    solver; the caller keeps it (``dasknmf run`` writes it to checkpoint files).

    Attributes
    ----------
    iteration : int
        Iterations done (0: the initial factors).
    W, H : numpy.ndarray or dask.array.Array
        The factors after them.
    error : float
        The error after them.
    error_at_init : float
        Error of the initial factors, the scale of the ``tol`` rule.
    check_error : float
        Error at the last convergence check (``error_at_init`` before the first):
        what the next check compares with.
    errors : tuple of (int, float)
        ``(iteration, error)`` of each iteration whose error was computed, up to this
        one.
    converged : bool
        Whether the ``tol`` rule stopped the loop at this iteration (continuing it
        runs no more iterations).
    elapsed : float
        Seconds the loop has run.

    Examples
    --------
    >>> import numpy as np, dasknmf
    >>> X = np.random.default_rng(0).random((30, 20))
    >>> states = []
    >>> params = dict(n_components=3, init="random", random_state=0, tol=0)
    >>> keep = lambda info: states.append(info.state())
    >>> W = dasknmf.NMF(**params, max_iter=8, callbacks=[keep]).fit_transform(X)
    >>> states[3].iteration
    4
    >>> W2 = dasknmf.NMF(**params, max_iter=8).fit_transform(X, resume=states[3])
    >>> np.allclose(W, W2, rtol=1e-6)
    True
    """

    iteration: int
    W: Any = field(repr=False)
    H: Any = field(repr=False)
    error: float
    error_at_init: float
    check_error: float
    errors: tuple[tuple[int, float], ...] = field(default=(), repr=False)
    converged: bool = False
    elapsed: float = 0.0


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
        Seconds since the loop started (counting the run of a resumed loop before
        it stopped).
    W, H : dask.array.Array
        The factors after this iteration (persisted; NumPy arrays for a single-tile
        input fitted in memory). With ``device='cuda'`` their blocks are CuPy arrays.
    check_error : float or None
        The stopping rule's reference after this iteration: the error at the last
        convergence check (``error_at_init`` before the first).
    converged : bool
        Whether the ``tol`` rule stops the loop at this iteration.
    errors : tuple of (int, float)
        The error curve up to this iteration.
    """

    iteration: int
    error: float
    error_at_init: float
    elapsed: float
    W: da.Array = field(repr=False)
    H: da.Array = field(repr=False)
    check_error: float | None = None
    converged: bool = False
    errors: tuple[tuple[int, float], ...] = field(default=(), repr=False)

    def state(self) -> FitState:
        """The loop's state after this iteration, for :func:`resume`.

        Its factors are on the host (NumPy blocks) even when the fit runs on a GPU, so
        that a state can be written to files or continued on another device.
        """
        check = self.error_at_init if self.check_error is None else self.check_error
        return FitState(
            self.iteration,
            to_host(self.W),
            to_host(self.H),
            self.error,
            self.error_at_init,
            check,
            tuple(self.errors),
            self.converged,
            self.elapsed,
        )


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

    Returns
    -------
    FitResult
    """
    started = time.perf_counter()
    with single_threaded_blas():
        W, H = dask.persist(W, H)
        error = float(dask.compute(solver.error(W, H))[0])
    state = FitState(0, W, H, error, error, error)
    return _iterate(solver, state, started, max_iter, tol, check_every, callbacks)


def resume(
    solver: Solver,
    state: FitState,
    *,
    max_iter: int,
    tol: float,
    check_every: int = 10,
    callbacks: Sequence[Callback] = (),
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
    max_iter, tol, check_every, callbacks
        As for :func:`run`; ``max_iter`` counts from the start of the original loop
        and may not be below ``state.iteration``.

    Returns
    -------
    FitResult
    """
    if state.iteration > max_iter:
        raise ValueError(
            f"cannot resume at iteration {state.iteration} a loop of max_iter={max_iter}"
        )
    started = time.perf_counter()
    with single_threaded_blas():
        W, H = dask.persist(state.W, state.H)
    state = replace(state, W=W, H=H)
    return _iterate(solver, state, started, max_iter, tol, check_every, callbacks)


def _iterate(
    solver: Solver,
    state: FitState,
    started: float,
    max_iter: int,
    tol: float,
    check_every: int,
    callbacks: Sequence[Callback],
) -> FitResult:
    """The loop from ``state`` (persisted factors) to ``max_iter`` or convergence.

    On a ``distributed`` cluster the factors are re-rooted every
    :data:`~dasknmf.lineage.REROOT_EVERY` iterations (see :mod:`dasknmf.lineage`); if
    a worker dies with some of them, the loop goes back to the last re-root and
    replays the iterations since, so callbacks may see those iterations again.
    """
    W, H, error, n_iter = state.W, state.H, state.error, state.iteration
    error_at_init, converged = state.error_at_init, state.converged
    errors = list(state.errors)
    stopping = ToleranceRule(tol, check_every, error_at_init, previous=state.check_error)
    if converged or n_iter >= max_iter:
        return FitResult(W, H, n_iter, error, error_at_init, errors, converged)
    client = active_client() if isinstance(W, da.Array) else None
    # Only while V is held in memory: an out-of-core fit's workers need their freed
    # memory back for the tiles they read (and gain little: decoding dominates).
    heap_client = client if getattr(solver, "in_memory", False) else None
    with single_threaded_blas(), reusing_worker_heap(heap_client):
        anchor, replays = None, 0
        if client is not None:
            anchor = take_anchor(
                n_iter, W, H, error=error, check=stopping.previous, errors=tuple(errors)
            )
            W, H = planted(client, anchor)
        advance = stepper(solver, W, H)
        while n_iter < max_iter:
            n_iter += 1
            try:
                W, H, error, converged = _one_iteration(
                    advance,
                    W,
                    H,
                    n_iter,
                    max_iter,
                    stopping,
                    errors,
                    error,
                    error_at_init,
                    lambda: state.elapsed + time.perf_counter() - started,
                    callbacks,
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
                stopping.previous = anchor.carry["check"]
                errors = list(anchor.carry["errors"])
                continue
            if converged:
                break
    return FitResult(W, H, n_iter, error, error_at_init, errors, converged)


def _one_iteration(
    advance,
    W,
    H,
    n_iter: int,
    max_iter: int,
    stopping: ToleranceRule,
    errors: list[tuple[int, float]],
    error: float,
    error_at_init: float,
    elapsed: Callable[[], float],
    callbacks: Sequence[Callback],
):
    """Iteration ``n_iter``: the new factors, the error (unchanged when not computed),
    and whether the ``tol`` rule stops the loop here; callbacks are called."""
    check = stopping.is_check(n_iter)
    want_error = bool(callbacks) or check or n_iter == max_iter
    W, H, err = advance(W, H, want_error)
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
            error_at_init,
            elapsed(),
            W,
            H,
            check_error=stopping.previous,
            converged=converged,
            errors=tuple(errors),
        )
        for callback in callbacks:
            callback(info)
    return W, H, err, converged


Advance = Callable[[da.Array, da.Array, bool], tuple[da.Array, da.Array, np.ndarray | None]]


def stepper(solver: Solver, W: da.Array, H: da.Array) -> Advance:
    """How to run one iteration: persist a freshly built graph (on a ``distributed``
    cluster, for in-memory arrays, or for solvers whose graph changes between
    iterations), or, under dask's local schedulers, build the graph once and re-run it
    with each iteration's factors substituted: building and scheduling a graph costs
    milliseconds, a tenth of an in-memory iteration on 2 cores.

    The returned ``advance(W, H, want_error)`` gives the next factors (persisted) and,
    when asked, the error as a float64 NumPy array (0-d, or one per replicate of a
    stacked solver), else ``None``.
    """
    reusable = getattr(solver, "reusable", False)
    if not reusable or active_client() is not None or not isinstance(W, da.Array):
        return partial(_persist_step, solver)
    return _CompiledStep(solver, W, H)


def _persist_step(solver: Solver, W, H, want_error: bool):
    step = solver.step(W, H)
    # The solvers fuse their tasks themselves; dask's graph optimisation would only
    # add milliseconds to every iteration.
    if not want_error:
        W, H = dask.persist(step.W, step.H, optimize_graph=False)
        return W, H, None
    W, H, err = dask.persist(step.W, step.H, step.error(), optimize_graph=False)
    return W, H, np.asarray(dask.compute(err)[0], dtype=np.float64)


class _CompiledStep:
    """One iteration's graph, built once from the initial factors' keys.

    Each call puts the current factor blocks under those keys and runs the graph with
    the local scheduler; the new blocks come back as in-memory dask arrays. Tiles of a
    persisted ``V`` sit in the graph as data; an unpersisted ``V``'s read tasks run
    again each iteration, as out of core requires.
    """

    def __init__(self, solver: Solver, W: da.Array, H: da.Array) -> None:
        step = solver.step(W, H)
        error = step.error()
        self._inputs = _keys(W) + _keys(H)
        self._w_out, self._h_out = _keys(step.W), _keys(step.H)
        (self._error_key,) = _keys(error)
        plain = {**step.W.__dask_graph__(), **step.H.__dask_graph__()}
        self._graphs = {False: plain, True: {**plain, **error.__dask_graph__()}}
        self._get = get_scheduler(collections=[step.W])
        # Only the layout of the initial factors is kept, not their blocks.
        self._layouts = _Layout.of(W), _Layout.of(H)
        self._count = 0

    def __call__(self, W: da.Array, H: da.Array, want_error: bool):
        graph = dict(self._graphs[want_error])
        graph.update(zip(self._inputs, _blocks(W) + _blocks(H), strict=True))
        outputs = [self._w_out, self._h_out] + ([self._error_key] if want_error else [])
        results = self._get(graph, outputs)
        self._count += 1
        W_new = self._layouts[0].array(results[0], f"fit-W-{self._count}")
        H_new = self._layouts[1].array(results[1], f"fit-H-{self._count}")
        error = np.asarray(results[2], dtype=np.float64) if want_error else None
        return W_new, H_new, error


def _keys(X: da.Array) -> list:
    return list(flatten(X.__dask_keys__()))


def _blocks(X: da.Array) -> list:
    graph = X.__dask_graph__()
    return [graph[key] for key in _keys(X)]


@dataclass(frozen=True)
class _Layout:
    """Name, chunks, block indices and meta of a dask array, without its data."""

    name: str
    chunks: tuple
    indices: list
    meta: object

    @classmethod
    def of(cls, X: da.Array) -> _Layout:
        return cls(X.name, X.chunks, [key[1:] for key in _keys(X)], X._meta)

    def array(self, blocks: list, label: str) -> da.Array:
        """An in-memory dask array of this layout holding ``blocks``."""
        name = f"{label}-{tokenize(self.name, label)}"
        graph = {(name, *index): block for index, block in zip(self.indices, blocks, strict=True)}
        return da.Array(graph, name, chunks=self.chunks, meta=self.meta)
