"""Replicates of a solver that cannot stack, run side by side all the same.

The Frobenius solvers stack replicates inside their kernels
(:mod:`dasknmf.kernels.stack`): one sparse product serves all of them. The other
update rules (Kullback–Leibler and β multiplicative updates, the masked solvers)
need ``W_r H_r`` at each entry, a different sampled product per replicate, so their
arithmetic is per replicate whatever the layout. :class:`ReplicateSolvers` runs them
as one solver over the stacked factors: each iteration builds every replicate's step
from its columns of ``W`` and rows of ``H`` and runs them as one graph, in which the
tasks that read ``V``'s tiles are shared (same keys), so a tile is read once per
iteration for all replicates in memory and out of core alike; the results are each
replicate's single fit, by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import dask.array as da
import numpy as np

from dasknmf.kernels.stack import Stack
from dasknmf.solvers.base import Solver, Step


def _join(parts: list, axis: int):
    if any(isinstance(p, da.Array) for p in parts):
        joined = da.concatenate(parts, axis=axis)
        return joined.rechunk({axis: -1})
    return np.concatenate(parts, axis=axis)


def _errors(parts: list):
    if any(isinstance(p, da.Array) for p in parts):
        # One chunk: the fit loop reads a step's error as one block.
        stacked = da.stack([da.asarray(p, dtype=np.float64).reshape(()) for p in parts])
        return stacked.rechunk(-1)
    return np.asarray([float(p) for p in parts])


@dataclass(frozen=True)
class ReplicateSolvers:
    """Stacked replicates of ``solver`` (any :class:`~dasknmf.solvers.base.Solver`),
    one step per replicate, run together.

    Parameters
    ----------
    solver : Solver
        The single-fit solver, bound to ``V``.
    stack : Stack
        The replicates' ranks in the column order of ``W``.
    """

    solver: Solver
    stack: Stack

    @property
    def reusable(self) -> bool:
        return bool(getattr(self.solver, "reusable", False))

    def _slices(self, W, H):
        return [(W[:, s:e], H[s:e]) for s, e in self.stack.bounds]

    def step(self, W, H) -> Step:
        steps = [self.solver.step(w, h) for w, h in self._slices(W, H)]
        return Step(
            _join([s.W for s in steps], axis=1),
            _join([s.H for s in steps], axis=0),
            lambda: _errors([s.error() for s in steps]),
        )

    def error(self, W, H):
        return _errors([self.solver.error(w, h) for w, h in self._slices(W, H)])

    def restacked(self, stack: Stack) -> ReplicateSolvers:
        """The same solver over the replicates of ``stack``."""
        return replace(self, stack=stack)
