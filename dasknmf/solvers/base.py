"""The contract between the fit driver and an update rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import dask.array as da

from dasknmf.kernels.penalty import NO_PENALTY, Penalty


@dataclass(frozen=True)
class Problem:
    """What a solver is built from: the tiled ``V``, its loss and the numbers the
    caller already knows about it.

    Attributes
    ----------
    V : dask.array.Array or array
        The ``m × n`` input (tiles, or one in-memory matrix).
    beta : float
        β of the divergence minimised.
    norm2, total : float
        ``‖V‖²`` and ``Σ V`` from the input statistics (the Frobenius and the
        Kullback–Leibler error need them; other losses ignore them).
    in_memory : bool
        Whether ``V``'s tiles are held in memory (persisted) or re-read per pass.
    penalty_w, penalty_h : Penalty
        Elastic-net penalties of ``W`` and ``H``, already scaled.
    hold_w : callable, optional
        Where a solver that runs its ``W`` update as a graph of its own keeps the new
        ``W`` before the ``H`` update reads it: ``hold_w(W) -> W`` (a factor store's
        :meth:`~dasknmf.storage.factors.FactorStore.hold`); ``None`` persists it.
    """

    V: Any
    beta: float = 2.0
    norm2: float = 0.0
    total: float = 0.0
    in_memory: bool = True
    penalty_w: Penalty = NO_PENALTY
    penalty_h: Penalty = NO_PENALTY
    hold_w: Callable[[Any], Any] | None = None

    @property
    def options(self) -> dict[str, Any]:
        """The keyword arguments every solver class takes: ``in_memory`` and the
        penalties."""
        return dict(in_memory=self.in_memory, penalty_w=self.penalty_w, penalty_h=self.penalty_h)


@dataclass(frozen=True)
class Step:
    """One lazy iteration: the next factors and how to get the error they reach.

    Attributes
    ----------
    W, H : dask.array.Array
        The updated factors (not yet computed).
    error : callable
        Builds (only when called: the driver asks every few iterations) the 0-d float64
        graph of the reconstruction error at the new ``(W, H)``, reusing this step's
        intermediate products, in the units of scikit-learn's ``reconstruction_err_``
        (``‖V − WH‖_F`` for the Frobenius loss).
    input_error : callable, optional
        Builds the 0-d graph of the error at the factors this step started from, out
        of the step's own pass over ``V`` (a solver's ``scored_step``); ``None``
        where the step does not make it.
    exact_error : callable, optional
        Builds the graph of the same error to float64 accuracy where :attr:`error`
        carries float32 rounding and a costlier graph removes it (asked for where the
        stopping rule reads the error); ``None``: :attr:`error` is the one.
    """

    W: da.Array
    H: da.Array
    error: Callable[[], da.Array]
    input_error: Callable[[], da.Array] | None = None
    exact_error: Callable[[], da.Array] | None = None


class Solver(Protocol):
    """An update rule bound to one input matrix ``V``.

    A solver whose :meth:`step` only builds a graph (computes nothing) may say so
    with a true ``reusable`` attribute; the driver then builds that graph once.
    ``transform_start`` says where :meth:`transform_w` should start ``W``:
    ``'mean'`` (a constant scaled to ``V``'s mean; multiplicative updates cannot
    leave zeros) or ``'zero'``.

    A solver whose step can also give the error at the factors it starts from, out
    of the same read of ``V``, has a true ``scores_input`` attribute and a
    ``scored_step(W, H)`` method returning a :class:`Step` with ``input_error``; the
    fit loop then makes no read of ``V`` for the initial error (see
    :func:`dasknmf.fit.run`).
    """

    reusable: bool
    transform_start: ClassVar[Literal["mean", "zero"]]

    @classmethod
    def build(cls, problem: Problem) -> Solver:
        """The solver for ``problem`` (each class reads the fields it needs)."""
        ...

    def step(self, W: da.Array, H: da.Array) -> Step:
        """Build the graph of one full iteration (``W`` first, then ``H``)."""
        ...

    def error(self, W: da.Array, H: da.Array) -> da.Array:
        """Build the graph of the reconstruction error at ``(W, H)`` (0-d float64)."""
        ...

    def transform_w(
        self, H: da.Array, W0: da.Array, *, max_iter: int, tol: float, check_every: int
    ) -> da.Array:
        """``W`` for this ``V`` with ``H`` fixed, from ``W0``, row block by row block
        (each block stops by the ``tol`` rule on its own error; ``penalty_w``
        applies)."""
        ...
