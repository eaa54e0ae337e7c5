"""How one iteration of the fit loop is run, and where its new factors are kept.

:func:`stepper` picks one of three ways for :mod:`dasknmf.fit`'s loop:

- ``_persist_step``: build the iteration's graph and persist the new factors (in
  the workers' memory on a ``distributed`` cluster);
- ``_CompiledStep``: under dask's local schedulers, build the graph once and re-run it
  with each iteration's factors substituted;
- ``StoredStep``: ``W`` (or ``H``, or both) lives in a :class:`FactorKeeper` (a factor
  store): each iteration reads its blocks from the current generation and writes the
  new ones to the next in the same pass over ``V``; a factor not stored comes back to
  this process, so that no worker holds a factor between iterations.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from functools import partial
from typing import Any, Protocol

import dask
import dask.array as da
import numpy as np
from dask.base import get_scheduler, tokenize
from dask.core import flatten

from dasknmf.resources import active_client
from dasknmf.solvers.base import Solver

__all__ = [
    "Advance",
    "ErrorWanted",
    "FactorKeeper",
    "Keepers",
    "StoredStep",
    "handed",
    "handed_over",
    "held",
    "kept",
    "stepper",
]


class FactorKeeper(Protocol):
    """What the loop needs of a place that keeps ``W`` between iterations
    (:class:`dasknmf.storage.factors.FactorStore` is one).

    A *pending* factor is one being written: its ``task`` attribute (a dask
    collection, or ``None`` once run) writes it when computed; :meth:`commit` makes it
    the kept factor.
    """

    def put(self, X: Any, chunks: Any = None) -> da.Array:
        """Keep ``X`` now; a dask array reading it."""
        ...

    def write(self, X: da.Array) -> Any:
        """The pending factor holding ``X`` once its task runs."""
        ...

    def commit(self, pending: Any) -> da.Array:
        """Make ``pending`` (its task run) the kept factor; a dask array reading it."""
        ...

    def hold(self, X: da.Array) -> da.Array:
        """Write ``X`` now, uncommitted (for a ``W`` update run as its own graph)."""
        ...

    def pending_for(self, X: Any) -> Any:
        """The pending factor :meth:`hold` wrote for ``X``, or ``None``."""
        ...

    def is_current(self, X: Any) -> bool:
        """Whether ``X`` reads the kept factor itself (nothing to write again)."""
        ...


class ErrorWanted(IntEnum):
    """What a step is asked for besides the factors: no error, the error as the step
    makes it (``True`` is this), or the error to float64 accuracy
    (:attr:`~dasknmf.solvers.base.Step.exact_error`, where the step has one), which
    the loop asks where the stopping rule reads it."""

    NONE = 0
    REPORT = 1
    EXACT = 2


#: ``advance(W, H, want_error, score_input=False) -> (W, H, error, input_error)``;
#: ``want_error`` a bool or an :class:`ErrorWanted`.
Advance = Callable[..., tuple[da.Array, da.Array, np.ndarray | None, np.ndarray | None]]


def stepper(solver: Solver, W: da.Array, H: da.Array, keepers: Keepers = (None, None)) -> Advance:
    """How to run one iteration: persist a freshly built graph (on a ``distributed``
    cluster, for in-memory arrays, or for solvers whose graph changes between
    iterations), or, under dask's local schedulers, build the graph once and re-run it
    with each iteration's factors substituted: building and scheduling a graph costs
    milliseconds, a tenth of an in-memory iteration on 2 cores.

    The returned ``advance(W, H, want_error, score_input=False)`` gives the next
    factors (persisted) and, when asked, the error as a float64 NumPy array (0-d, or
    one per replicate of a stacked solver), else ``None``; with ``score_input`` (for
    a solver whose ``scores_input`` holds), also the error at the ``W``, ``H`` given,
    from the same pass over ``V``, else ``None``. With ``keepers`` (for ``W`` and
    ``H``; ``None``: memory), stored factors are kept there (:class:`StoredStep`).
    """
    if any(keeper is not None for keeper in keepers):
        return StoredStep(solver, keepers, (W.chunks, H.chunks))
    reusable = getattr(solver, "reusable", False)
    if not reusable or active_client() is not None or not isinstance(W, da.Array):
        return partial(_persist_step, solver)
    return _CompiledStep(solver, W, H)


def _step(solver: Solver, W, H, score_input: bool):
    """The solver's step from ``(W, H)``, scoring its input when asked."""
    return solver.scored_step(W, H) if score_input else solver.step(W, H)


def _errors(step, want_error: bool, score_input: bool) -> list:
    """The error graphs asked for: the new factors' error, then the input's."""
    return ([_error(step, want_error)] if want_error else []) + (
        [step.input_error()] if score_input else []
    )


def _error(step, want_error: bool | ErrorWanted) -> Any:
    """The graph of the new factors' error, exact where asked and the step can."""
    exact = want_error == ErrorWanted.EXACT and step.exact_error is not None
    return step.exact_error() if exact else step.error()


def _split_errors(values, want_error: bool, score_input: bool):
    """``(error, input_error)`` from the computed :func:`_errors` (``None`` where not
    asked), as float64 NumPy arrays."""
    values = iter(np.asarray(v, dtype=np.float64) for v in values)
    error = next(values) if want_error else None
    return error, (next(values) if score_input else None)


def _persist_step(solver: Solver, W, H, want_error: bool, score_input: bool = False):
    step = _step(solver, W, H, score_input)
    # The solvers fuse their tasks themselves; dask's graph optimisation would only
    # add milliseconds to every iteration.
    W, H, *errors = dask.persist(
        step.W, step.H, *_errors(step, want_error, score_input), optimize_graph=False
    )
    values = dask.compute(*errors) if errors else ()
    return W, H, *_split_errors(values, want_error, score_input)


class _CompiledStep:
    """One iteration's graph, built once from the initial factors' keys.

    Each call puts the current factor blocks under those keys and runs the graph with
    the local scheduler; the new blocks come back as in-memory dask arrays. Tiles of a
    persisted ``V`` sit in the graph as data; an unpersisted ``V``'s read tasks run
    again each iteration, as out of core requires.
    """

    def __init__(self, solver: Solver, W: da.Array, H: da.Array) -> None:
        self._solver = solver
        step = solver.step(W, H)
        report = step.error()
        # A step without an exact error serves EXACT with the same graph.
        exact = report if step.exact_error is None else step.exact_error()
        errors = {ErrorWanted.REPORT: report, ErrorWanted.EXACT: exact}
        self._inputs = _keys(W) + _keys(H)
        self._w_out, self._h_out = _keys(step.W), _keys(step.H)
        self._error_keys = {wanted: _keys(error)[0] for wanted, error in errors.items()}
        plain = {**step.W.__dask_graph__(), **step.H.__dask_graph__()}
        self._graphs = {ErrorWanted.NONE: plain}
        for wanted, error in errors.items():
            self._graphs[wanted] = {**plain, **error.__dask_graph__()}
        # The inputs' blocks are put in at each call: the graphs must not keep the
        # initial factors' blocks alive (a whole W) for the fit's lifetime.
        for graph in self._graphs.values():
            for key in self._inputs:
                graph.pop(key, None)
        self._get = get_scheduler(collections=[step.W])
        # Only the layout of the initial factors is kept, not their blocks.
        self._layouts = _Layout.of(W), _Layout.of(H)
        self._count = 0

    def __call__(self, W: da.Array, H: da.Array, want_error: bool, score_input: bool = False):
        return self.take([W, H], want_error, score_input)

    def take(self, current: list, want_error: bool, score_input: bool = False):
        """The step from the factors in ``current`` (``[W, H]``), which it empties.

        The input blocks enter the graph through tasks that hand each one over once
        (:class:`_Box`), so that the scheduler lets a block of the current ``W`` go as
        soon as the tasks reading it have run: the new ``W`` replaces the current one
        row block by row block instead of the two being whole at once.
        """
        W, H = handed_over(current)
        layouts = (_Layout.of(W), _Layout.of(H)) if score_input else None
        box = _Box(_blocks(W) + _blocks(H))
        del W, H
        if layouts is not None:
            # Once per fit (the first iteration): not worth a graph of its own.
            n_w = len(layouts[0].indices)
            W, H = layouts[0].taken(box, 0, "W"), layouts[1].taken(box, n_w, "H")
            return _persist_step(self._solver, W, H, want_error, score_input)
        wanted = ErrorWanted(want_error)
        graph = dict(self._graphs[wanted])
        graph.update({key: (box.take, i) for i, key in enumerate(self._inputs)})
        outputs = [self._w_out, self._h_out] + ([self._error_keys[wanted]] if want_error else [])
        results = self._get(graph, outputs)
        self._count += 1
        W_new = self._layouts[0].array(results[0], f"fit-W-{self._count}")
        H_new = self._layouts[1].array(results[1], f"fit-H-{self._count}")
        error = np.asarray(results[2], dtype=np.float64) if want_error else None
        return W_new, H_new, error, None


class _Box:
    """Blocks handed to a graph: :meth:`take` gives block ``i`` and forgets it, so
    that the scheduler's reference is the last one."""

    def __init__(self, blocks: list) -> None:
        self._blocks = blocks

    def take(self, i: int):
        block, self._blocks[i] = self._blocks[i], None
        return block


def handed(advance: Advance, current: list, want_error: bool, score_input: bool = False):
    """``advance`` on the factors in ``current`` (``[W, H]``), which it empties: a
    step that can (:meth:`_CompiledStep.take`) frees each block of the current
    factors once it is used, which only works if the caller keeps no other
    reference to them."""
    take = getattr(advance, "take", None)
    if take is not None:
        return take(current, want_error, score_input)
    W, H = handed_over(current)
    return advance(W, H, want_error, score_input)


def handed_over(holder: list) -> list:
    """The items of ``holder``, which is left empty (ownership passes to the caller)."""
    items = list(holder)
    holder.clear()
    return items


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

    def taken(self, box: _Box, first: int, label: str) -> da.Array:
        """A dask array of this layout whose blocks are taken from ``box``, from its
        block ``first`` on."""
        name = f"taken-{label}-{id(box):x}"
        graph = {(name, *index): (box.take, first + i) for i, index in enumerate(self.indices)}
        return da.Array(graph, name, chunks=self.chunks, meta=self.meta)

    def array(self, blocks: list, label: str) -> da.Array:
        """An in-memory dask array of this layout holding ``blocks``."""
        name = f"{label}-{tokenize(self.name, label)}"
        graph = {(name, *index): block for index, block in zip(self.indices, blocks, strict=True)}
        return da.Array(graph, name, chunks=self.chunks, meta=self.meta)


class StoredStep:
    """One iteration with ``W``, ``H`` or both in a :class:`FactorKeeper`.

    Each new stored factor is written into its keeper's next generation by the graph
    that computes it (in a one-pass solver, ``W``'s row block by the same task that
    reads the tiles of that row block), beside the other factor and the error; the
    generations are committed once all of it has run. A solver that runs its ``W``
    update as a graph of its own writes that generation itself (its ``hold_w``),
    which this step then commits. A factor without a keeper comes back to this process
    (:func:`held`).
    """

    def __init__(self, solver: Solver, keepers: Keepers, chunks: tuple[tuple, tuple]) -> None:
        self.solver = solver
        self.keepers = keepers
        self.chunks = chunks
        self._count = itertools.count(1)

    def __call__(self, W: da.Array, H: da.Array, want_error: bool, score_input: bool = False):
        step = _step(self.solver, W, H, score_input)
        pending = [
            None if keeper is None else (keeper.pending_for(X) or keeper.write(X))
            for keeper, X in zip(self.keepers, (step.W, step.H), strict=True)
        ]
        work = [X if p is None else p.task for X, p in zip((step.W, step.H), pending, strict=True)]
        errors = _errors(step, want_error, score_input)
        results = dask.compute(*work, *errors, optimize_graph=False)
        computed, values = results[:2], results[2:]
        label = next(self._count)
        W_new, H_new = (
            held(X, chunks, label) if p is None else keeper.commit(p)
            for X, p, keeper, chunks in zip(
                computed, pending, self.keepers, self.chunks, strict=True
            )
        )
        return W_new, H_new, *_split_errors(values, want_error, score_input)


#: Where each factor is kept: ``(W's keeper, H's keeper)``, ``None`` for memory.
Keepers = tuple["FactorKeeper | None", "FactorKeeper | None"]


def kept(W, H, keepers: Keepers) -> tuple[da.Array, da.Array]:
    """Starting factors where a loop keeps them: persisted, or each in its keeper (a
    factor without one computed and held here, :func:`held`; one its keeper holds
    already, as an NNDSVD initialisation writes ``W``, as it is)."""
    if all(keeper is None for keeper in keepers):
        return dask.persist(W, H)
    return tuple(_kept(X, keeper) for X, keeper in zip((W, H), keepers, strict=True))


def _kept(X, keeper: FactorKeeper | None) -> da.Array:
    if keeper is None:
        return held(dask.compute(X)[0], _chunks(X))
    return X if keeper.is_current(X) else keeper.put(X, _chunks(X))


def _chunks(X) -> tuple:
    return X.chunks if isinstance(X, da.Array) else tuple((size,) for size in X.shape)


def held(X, chunks: tuple, label: object = 0) -> da.Array:
    """A computed factor (NumPy) as a dask array of ``chunks`` whose blocks are held by
    this process: nothing a worker keeps, so a lost worker loses no factor."""
    return da.from_array(np.asarray(X), chunks=chunks, name=f"held-{label}-{id(X):x}")
