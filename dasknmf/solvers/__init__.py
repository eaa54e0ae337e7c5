"""Update rules, one module each, on a shared traversal of the tiled ``V``.

A solver never opens files, prints or creates clusters: it turns the current
``(W, H)`` into a lazy graph for the next one (:class:`~dasknmf.solvers.base.Step`),
and :mod:`dasknmf.fit` decides when to run it. Which class serves which
``(loss, solver, masked)`` is one table, :mod:`dasknmf.solvers.registry`, filled
below and read by every caller.
"""

from __future__ import annotations

from dasknmf.solvers.als import MaskedALS
from dasknmf.solvers.base import Problem, Solver, Step
from dasknmf.solvers.beta import BetaMU
from dasknmf.solvers.hals import HALS
from dasknmf.solvers.kl import KullbackLeiblerMU
from dasknmf.solvers.masked import MaskedMU
from dasknmf.solvers.mu import FrobeniusMU
from dasknmf.solvers.penalty import Penalty, elastic_net, weighted_lambda
from dasknmf.solvers.registry import (
    LOSS_BETAS,
    UnsupportedSolverError,
    beta_of,
    canonical_solver,
    get_solver,
    loss_key,
    register_solver,
    set_default_solver,
    solver_names,
    solvers_for,
)

register_solver("frobenius", "mu", False, FrobeniusMU)
register_solver("frobenius", "hals", False, HALS)
register_solver("kullback-leibler", "mu", False, KullbackLeiblerMU)
register_solver("beta", "mu", False, BetaMU)
# Over observed entries, one class serves every β.
for _loss in ("frobenius", "kullback-leibler", "beta"):
    register_solver(_loss, "mu", True, MaskedMU)
register_solver("frobenius", "als", True, MaskedALS)
# Ratings (squared error over observed entries): exact alternating least squares
# lands where MU takes hundreds of iterations in ten or twenty sweeps.
set_default_solver("frobenius", True, "als")

__all__ = [
    "HALS",
    "LOSS_BETAS",
    "BetaMU",
    "FrobeniusMU",
    "KullbackLeiblerMU",
    "MaskedALS",
    "MaskedMU",
    "Penalty",
    "Problem",
    "Solver",
    "Step",
    "UnsupportedSolverError",
    "beta_of",
    "canonical_solver",
    "elastic_net",
    "get_solver",
    "loss_key",
    "register_solver",
    "set_default_solver",
    "solver_names",
    "solvers_for",
    "weighted_lambda",
]
