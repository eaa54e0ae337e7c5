"""The contract between the fit driver and an update rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import dask.array as da


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
    """

    W: da.Array
    H: da.Array
    error: Callable[[], da.Array]


class Solver(Protocol):
    """An update rule bound to one input matrix ``V``.

    A solver whose :meth:`step` only builds a graph (computes nothing) may say so
    with a true ``reusable`` attribute; the driver then builds that graph once.
    """

    reusable: bool

    def step(self, W: da.Array, H: da.Array) -> Step:
        """Build the graph of one full iteration (``W`` first, then ``H``)."""
        ...

    def error(self, W: da.Array, H: da.Array) -> da.Array:
        """Build the graph of the reconstruction error at ``(W, H)`` (0-d float64)."""
        ...
