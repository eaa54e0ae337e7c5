"""Update rules, one module each, on a shared traversal of the tiled ``V``.

A solver never opens files, prints or creates clusters: it turns the current
``(W, H)`` into a lazy graph for the next one (:class:`~dasknmf.solvers.base.Step`),
and :mod:`dasknmf.fit` decides when to run it.
"""

from __future__ import annotations

from dasknmf.solvers.base import Solver, Step
from dasknmf.solvers.hals import HALS
from dasknmf.solvers.mu import FrobeniusMU

SOLVERS = {"mu": FrobeniusMU, "hals": HALS}

__all__ = ["HALS", "SOLVERS", "FrobeniusMU", "Solver", "Step"]
