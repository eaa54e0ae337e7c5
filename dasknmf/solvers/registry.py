"""Which solver class serves a fit: one table keyed by ``(loss, solver, masked)``.

Every caller that chooses an update rule (the estimator's ``fit`` and ``transform``,
the job configuration's checks) asks this table; none keeps an if-chain of its own.
The built-in solvers register themselves in :mod:`dasknmf.solvers`; another engine
(for instance one fitting many replicates at once) registers its classes the same
way, with :func:`register_solver`.

``loss`` is ``'frobenius'`` (β = 2), ``'kullback-leibler'`` (β = 1) or ``'beta'``
(any other β, Itakura–Saito included); ``masked`` is ``missing='ignore'``.

``solver='auto'`` names the default of each ``(loss, masked)``, set with
:func:`set_default_solver` beside the registrations (``'mu'`` where none is set).
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

import numpy as np

from dasknmf.errors import InvalidParameterError
from dasknmf.params import check_option
from dasknmf.solvers.base import Solver

__all__ = [
    "ALIASES",
    "AUTO",
    "LOSS_BETAS",
    "SolverKey",
    "UnsupportedSolverError",
    "beta_of",
    "canonical_solver",
    "default_solver",
    "get_solver",
    "loss_key",
    "register_solver",
    "registered",
    "set_default_solver",
    "solver_names",
    "solvers_for",
]

#: β of each named loss, as ``beta_loss`` accepts them.
LOSS_BETAS = {"frobenius": 2.0, "kullback-leibler": 1.0, "itakura-saito": 0.0}

#: Other names of registered solvers (scikit-learn calls HALS's sweeps ``'cd'``).
ALIASES = {"cd": "hals"}

#: The name of "the default solver for this loss and mask".
AUTO = "auto"

_LOSS_WORDS = {"frobenius": "Frobenius", "kullback-leibler": "Kullback–Leibler", "beta": "β"}


@dataclass(frozen=True)
class SolverKey:
    """One row of the table: a loss, a solver name and whether entries are masked."""

    loss: str
    solver: str
    masked: bool


_TABLE: dict[SolverKey, type[Solver]] = {}
_DEFAULTS: dict[tuple[str, bool], str] = {}


class UnsupportedSolverError(InvalidParameterError):
    """No registered solver serves the asked combination.

    Attributes
    ----------
    parameter : {'beta_loss', 'missing'}
        The parameter that rules the solver out.
    available : tuple of str
        The solvers that do serve that loss (and mask).
    """

    def __init__(self, message: str, *, parameter: str, available: tuple[str, ...]) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.available = available


def register_solver(loss: str, solver: str, masked: bool, cls: type[Solver]) -> None:
    """Make ``cls`` the solver of ``(loss, solver, masked)``.

    Registering a key again replaces its class (a later engine may supersede one).

    Examples
    --------
    >>> from dasknmf.solvers import HALS
    >>> register_solver("frobenius", "hals", False, HALS)
    >>> get_solver(2.0, "cd", False).__name__
    'HALS'
    """
    if loss not in _LOSS_WORDS:
        raise InvalidParameterError(
            f"register_solver: loss must be one of {sorted(_LOSS_WORDS)}; got {loss!r}."
        )
    _TABLE[SolverKey(loss, solver, bool(masked))] = cls


def set_default_solver(loss: str, masked: bool, solver: str) -> None:
    """Make ``solver`` the one ``solver='auto'`` picks for ``(loss, masked)``."""
    if loss not in _LOSS_WORDS:
        raise InvalidParameterError(
            f"set_default_solver: loss must be one of {sorted(_LOSS_WORDS)}; got {loss!r}."
        )
    _DEFAULTS[loss, bool(masked)] = solver


def default_solver(loss: str, masked: bool) -> str:
    """The solver ``'auto'`` stands for with ``loss`` and the mask.

    Examples
    --------
    >>> default_solver("frobenius", True), default_solver("kullback-leibler", True)
    ('als', 'mu')
    """
    return _DEFAULTS.get((loss, bool(masked)), "mu")


def registered() -> dict[SolverKey, type[Solver]]:
    """A copy of the table (for documentation and conformance tests)."""
    return dict(_TABLE)


def beta_of(beta_loss: object) -> float | None:
    """β of a ``beta_loss`` value, or ``None`` for a value that names none.

    Examples
    --------
    >>> beta_of("kullback-leibler"), beta_of(1.5), beta_of("huber"), beta_of(True)
    (1.0, 1.5, None, None)
    """
    if isinstance(beta_loss, str):
        return LOSS_BETAS.get(beta_loss)
    if isinstance(beta_loss, Real) and not isinstance(beta_loss, bool):
        return float(beta_loss) if np.isfinite(beta_loss) else None
    return None


def loss_key(beta: float) -> str:
    """The table's loss name for a β-divergence.

    Examples
    --------
    >>> loss_key(2.0), loss_key(1), loss_key(0.0), loss_key(1.5)
    ('frobenius', 'kullback-leibler', 'beta', 'beta')
    """
    return {2.0: "frobenius", 1.0: "kullback-leibler"}.get(float(beta), "beta")


def canonical_solver(solver: str, beta: float = 2.0, masked: bool = False) -> str:
    """The registered name of ``solver``: its alias resolved, ``'auto'`` the default
    for β and the mask."""
    if solver == AUTO:
        return default_solver(loss_key(beta), masked)
    return ALIASES.get(solver, solver)


def solver_names() -> tuple[str, ...]:
    """Every name the ``solver`` parameter accepts, in order of registration, aliases
    and ``'auto'`` last."""
    names = tuple(dict.fromkeys(key.solver for key in _TABLE))
    return (*names, *(a for a, target in ALIASES.items() if target in names), AUTO)


def solvers_for(loss: str, masked: bool) -> tuple[str, ...]:
    """The solvers registered for ``loss`` (with or without a mask)."""
    return tuple(sorted({k.solver for k in _TABLE if (k.loss, k.masked) == (loss, masked)}))


def get_solver(beta: float, solver: str, masked: bool, *, beta_loss: object = None) -> type:
    """The solver class for a β-divergence, a solver name and a mask.

    Parameters
    ----------
    beta : float
        β of the divergence (2: Frobenius, 1: Kullback–Leibler).
    solver : str
        A name of :func:`solver_names` (``'cd'`` is ``'hals'``; ``'auto'`` is
        :func:`default_solver`).
    masked : bool
        Whether only observed entries count (``missing='ignore'``).
    beta_loss : object, optional
        The value the user gave for the loss, quoted in the error instead of β.

    Raises
    ------
    InvalidParameterError
        ``solver`` is no registered name.
    UnsupportedSolverError
        No solver of that name serves the loss, or none of that name handles a mask;
        the message names the parameter, the value and the solvers that would do.

    Examples
    --------
    >>> get_solver(1.0, "mu", False).__name__
    'KullbackLeiblerMU'
    >>> try:
    ...     get_solver(1.0, "hals", False, beta_loss="kullback-leibler")
    ... except UnsupportedSolverError as exc:
    ...     print(exc.parameter, exc.available)
    beta_loss ('mu',)
    """
    check_option("solver", solver, solver_names())
    name, loss = canonical_solver(solver, beta, masked), loss_key(beta)
    cls = _TABLE.get(SolverKey(loss, name, bool(masked)))
    if cls is not None:
        return cls
    label = beta if beta_loss is None else beta_loss
    unmasked = solvers_for(loss, False)
    if not masked and not any(k.solver == name and not k.masked for k in _TABLE):
        raise UnsupportedSolverError(
            f"solver={solver!r} fits the observed entries only and needs missing='ignore'; "
            f"with every entry observed use {_either(unmasked)}.",
            parameter="missing",
            available=unmasked,
        )
    if name not in unmasked and name not in solvers_for(loss, True):
        handled = {_LOSS_WORDS[k.loss] for k in _TABLE if k.solver == name}
        raise UnsupportedSolverError(
            f"The 'beta_loss' parameter {label!r} needs {_either(solvers_for(loss, masked))}; "
            f"solver={solver!r} handles the {' and '.join(sorted(handled))} loss only.",
            parameter="beta_loss",
            available=solvers_for(loss, masked),
        )
    available = solvers_for(loss, True)
    raise UnsupportedSolverError(
        f"missing='ignore' needs {_either(available)}; solver={solver!r} has no update over "
        "the observed entries alone (it updates from Gram matrices of the full matrix, "
        "which a mask makes different per row).",
        parameter="missing",
        available=available,
    )


def _either(solvers: tuple[str, ...]) -> str:
    return " or ".join(f"solver={s!r}" for s in solvers) or "a solver registered for it"
