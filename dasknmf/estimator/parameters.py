"""The parameters of :class:`~dasknmf.estimator.nmf.NMF`: one rule table, checked once
at the edge, and the checks that need the input (its shape, a state to resume).

Each rule raises :class:`~dasknmf.errors.InvalidParameterError` naming the parameter,
the value given and what is allowed (scikit-learn's ``_parameter_constraints`` plays
the same part there); ``tests/test_estimator.py`` checks that the table covers every
parameter of ``NMF.__init__``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from numbers import Integral, Real
from typing import Any

from dasknmf.devices import DEVICES, OUTPUTS
from dasknmf.errors import InvalidParameterError
from dasknmf.fit_state import FitState
from dasknmf.init import INIT_METHODS
from dasknmf.params import check_chunks, check_int, check_option, check_random_state, check_real
from dasknmf.solvers import Solver, beta_of, get_solver, solver_names

__all__ = [
    "PARAMETER_RULES",
    "UNCHECKED",
    "check_parameters",
    "check_resume",
    "resolve_n_components",
    "solver_for",
]

Rule = Callable[[str, Any], object]


def _one_of(*allowed: Any) -> Rule:
    return lambda name, value: check_option(name, value, allowed)


def _or_word(word: str, rule: Rule) -> Rule:
    """``rule``, except that the string ``word`` is also allowed."""

    def check(name: str, value: Any) -> None:
        if not (isinstance(value, str) and value == word):
            rule(name, value)

    return check


def _solver(name: str, value: Any) -> None:
    # Read from the registry at check time: an engine may have registered a solver.
    check_option(name, value, solver_names())


def _beta_loss(name: str, value: Any) -> None:
    if beta_of(value) is None:
        raise InvalidParameterError(
            f"The {name!r} parameter must be 'frobenius' (2), 'kullback-leibler' (1), "
            f"'itakura-saito' (0) or a real number; got {value!r}."
        )


def _validation(name: str, value: Any) -> None:
    numeric = isinstance(value, Real) and not isinstance(value, bool)
    if value is not None and not (numeric and 0 < value < 0.5):
        raise InvalidParameterError(
            f"The {name!r} parameter must be None or a fraction in (0, 0.5) of the "
            f"observed entries to validate on; got {value!r}."
        )


def _path_or_none(name: str, value: Any) -> None:
    if value is not None and not (isinstance(value, (str, os.PathLike)) and os.fspath(value)):
        raise InvalidParameterError(
            f"The {name!r} parameter must be None or the path of a directory; got {value!r}."
        )


def _verbose(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        check_int(name, value, low=0)


#: The rule of each parameter, in the order :func:`check_parameters` applies them.
PARAMETER_RULES: dict[str, Rule] = {
    "n_components": _or_word("auto", partial(check_int, low=1, allow_none=True)),
    "init": _one_of(None, *INIT_METHODS),
    "n_init": partial(check_int, low=1),
    "solver": _solver,
    "beta_loss": _beta_loss,
    "max_iter": partial(check_int, low=0),
    "tol": partial(check_real, low=0.0),
    "check_every": partial(check_int, low=1),
    "chunks": check_chunks,
    "persist": _one_of("auto", True, False),
    "factors": _one_of("auto", "memory", "store"),
    "factor_store": _path_or_none,
    "random_state": check_random_state,
    "alpha_W": partial(check_real, low=0.0),
    "alpha_H": _or_word("same", partial(check_real, low=0.0)),
    "l1_ratio": partial(check_real, low=0.0, high=1.0),
    "alpha_weighted": partial(check_real, low=0.0),
    "validation": _validation,
    "clip": _one_of(True, False),
    "missing": _one_of(None, "ignore"),
    "verbose": _verbose,
    "device": _one_of(*DEVICES),
    "output": _one_of(*OUTPUTS),
}

#: Parameters without a rule, and why: each callback is called as it is.
UNCHECKED = {"callbacks": "any sequence of callables; each is called as it is"}


def solver_for(params: Mapping[str, Any]) -> type[Solver]:
    """The registry's solver class for ``beta_loss``, ``solver`` and ``missing``.

    Raises
    ------
    UnsupportedSolverError
        The solver does not serve that loss, or a mask.
    """
    beta_loss = params["beta_loss"]
    masked = params["missing"] == "ignore"
    return get_solver(beta_of(beta_loss), params["solver"], masked, beta_loss=beta_loss)


def check_parameters(params: Mapping[str, Any], names: Iterable[str] | None = None) -> None:
    """Apply the rules of ``names`` (all, in table order, by default) to ``params``;
    with all of them, also ask the solver registry whether the loss, the solver and
    the mask go together.

    Examples
    --------
    >>> from dasknmf import NMF
    >>> try:
    ...     check_parameters(NMF(tol=-1).get_params())
    ... except InvalidParameterError as exc:
    ...     print(exc)
    The 'tol' parameter must be a real number >= 0.0; got -1.
    """
    for name in PARAMETER_RULES if names is None else names:
        PARAMETER_RULES[name](name, params[name])
    if names is None:
        cls = solver_for(params)
        masked = params["missing"] == "ignore"
        if params["alpha_weighted"] and masked and not getattr(cls, "weighted_lambda", False):
            raise InvalidParameterError(
                f"The 'alpha_weighted' parameter {params['alpha_weighted']!r} needs "
                "solver='als' (or 'auto') with missing='ignore'; "
                f"solver={params['solver']!r} has no per-row counts of observed "
                "entries. Use alpha_W/alpha_H with it instead."
            )
        if params["validation"] is not None and not masked:
            raise InvalidParameterError(
                f"The 'validation' parameter {params['validation']!r} holds out observed "
                "entries to stop on: it needs missing='ignore'."
            )


def resolve_n_components(
    n_components: Any, m: int, n: int, W: Any, H: Any, *, custom: bool
) -> int:
    """The rank of a fit of an ``m × n`` input: ``n_components``, or inferred from
    custom factors (``custom``), or ``min(m, n)``; checked against the shape."""
    k = n_components
    if k is None or k == "auto":
        # A W or H that is not 2-D is reported by the initialisation.
        if custom and H is not None and H.ndim == 2:
            k = H.shape[0]
        elif custom and W is not None and W.ndim == 2:
            k = W.shape[1]
        else:
            k = min(m, n)
    if not isinstance(k, Integral) or not 1 <= k <= min(m, n):
        raise InvalidParameterError(
            f"The 'n_components' parameter must be an int in [1, min(n_samples, "
            f"n_features)] = [1, {min(m, n)}] for X of shape {(m, n)}; got {k!r}."
        )
    return int(k)


def check_resume(
    state: Any, W: Any, H: Any, m: int, n: int, *, max_iter: int, n_components: Any
) -> tuple[Any, Any]:
    """The factors of a :class:`~dasknmf.fit_state.FitState` to resume from, checked
    against the parameters (the arrays themselves are checked as custom ones)."""
    if not isinstance(state, FitState):
        raise InvalidParameterError(
            "The 'resume' parameter must be a dasknmf.FitState (from "
            f"IterationInfo.state()); got {type(state).__name__}."
        )
    if W is not None or H is not None:
        raise InvalidParameterError(
            "fit(resume=state) continues from the state's W and H; do not pass W or H too."
        )
    if state.iteration > max_iter:
        raise InvalidParameterError(
            f"The 'max_iter' parameter {max_iter} is below the iteration "
            f"{state.iteration} of the state to resume from (max_iter counts from the "
            "start of the fit)."
        )
    shapes = tuple(getattr(f, "shape", None) for f in (state.W, state.H))
    k = shapes[1][0] if shapes[1] is not None and len(shapes[1]) == 2 else None
    if k is None or shapes != ((m, k), (k, n)):
        raise InvalidParameterError(
            f"The state to resume from has W of shape {shapes[0]} and H of shape "
            f"{shapes[1]}; X of shape {(m, n)} needs ({m}, k) and (k, {n})."
        )
    if n_components not in (None, "auto") and n_components != k:
        raise InvalidParameterError(
            f"The 'n_components' parameter {n_components} differs from the "
            f"{k} components of the state to resume from."
        )
    return state.W, state.H
