"""What the iteration loop (:mod:`dasknmf.fit`) reports and how it can be continued.

:class:`IterationInfo` is what a callback sees after each iteration;
:meth:`IterationInfo.state` captures where the loop stands (a :class:`FitState`: the
factors and the few numbers the loop carries), from which :func:`dasknmf.fit.resume`
continues as if it had never stopped; :class:`FitResult` is what a loop returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dask.array as da

from dasknmf.devices import to_host


@dataclass(frozen=True)
class FitState:
    """Where the iteration loop stands after an iteration: enough to continue it exactly.

    Made by :meth:`IterationInfo.state` (in a callback) and continued by
    :func:`~dasknmf.fit.resume` or ``NMF.fit(X, resume=state)``: the iterations after
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
    on_host : bool
        Whether ``W`` and ``H`` have NumPy blocks already (factors kept in stores,
        which are never on a GPU): :meth:`state` then passes the arrays on as they
        are, still reading their stores (a checkpoint links those files).
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
    on_host: bool = False

    def state(self) -> FitState:
        """The loop's state after this iteration, for :func:`~dasknmf.fit.resume`.

        Its factors are on the host (NumPy blocks) even when the fit runs on a GPU, so
        that a state can be written to files or continued on another device.
        """
        check = self.error_at_init if self.check_error is None else self.check_error
        host = (lambda X: X) if self.on_host else to_host
        return FitState(
            self.iteration,
            host(self.W),
            host(self.H),
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
    """Outcome of :func:`~dasknmf.fit.run`: final factors (persisted), iterations run, final and
    initial error, ``(iteration, error)`` for every iteration whose error was
    computed, and whether the ``tol`` rule stopped the loop."""

    W: da.Array
    H: da.Array
    n_iter: int
    error: float
    error_at_init: float
    errors: list[tuple[int, float]]
    converged: bool
