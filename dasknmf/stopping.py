"""scikit-learn's stopping rule for iterative NMF, in one place.

Every ``check_every`` iterations the error is compared with the one at the previous
check; the iterations stop when the decrease, relative to the error of the initial
factors, is below ``tol`` (``tol = 0`` never stops early). Used by the fit driver
and by the row-block loops of ``transform``. Its whole state is ``error_at_init`` and
``previous``, so a resumed fit restores it by passing both.

The rule is also said in words, from here only, so that what is printed stays what is
applied: before a fit (:func:`describe_rule`, ``dasknmf validate``) and after it
(:class:`StopReason`, the last line of ``dasknmf run`` and ``dasknmf demo``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ToleranceRule:
    """Stateful check of the relative decrease of the error.

    Parameters
    ----------
    tol : float
        Relative decrease below which :meth:`converged` says stop; 0 never stops.
    check_every : int
        Iterations between two checks.
    error_at_init : float
        Error of the initial factors: the scale of the decrease.
    previous : float or None
        Error at the previous check; ``None`` (a new rule): ``error_at_init``. Give
        the value of a rule that ran before to continue it.

    Examples
    --------
    >>> rule = ToleranceRule(tol=0.01, check_every=2, error_at_init=10.0)
    >>> rule.is_check(1), rule.is_check(2)
    (False, True)
    >>> rule.converged(9.0), rule.converged(8.95)
    (False, True)
    >>> ToleranceRule(0.01, 2, 10.0, previous=rule.previous).converged(8.95)
    True
    """

    tol: float
    check_every: int
    error_at_init: float
    previous: float | None = None

    def __post_init__(self) -> None:
        if self.previous is None:
            self.previous = self.error_at_init

    def is_check(self, iteration: int) -> bool:
        """Whether ``iteration`` (1-based) is one at which the error is checked."""
        return self.tol > 0 and iteration % self.check_every == 0

    def converged(self, error: float) -> bool:
        """Record the error of a check and say whether to stop."""
        if self.error_at_init == 0 or (self.previous - error) / self.error_at_init < self.tol:
            return True
        self.previous = error
        return False


@dataclass(frozen=True)
class StopReason:
    """Why a fit's iterations ended, in numbers and in words (:meth:`describe`).

    Parameters
    ----------
    rule : {'tol', 'validation', 'max_iter'}
        The rule that ended them: :class:`ToleranceRule`, the validation RMSE
        (:class:`dasknmf.validation.EarlyStopping`), or ``max_iter``.
    iteration : int
        Iterations run.
    max_iter : int
        Iterations asked for.
    tol : float
        The ``tol`` of the rules.
    decrease : float or None
        With ``rule='tol'``: the decrease of the error at the stopping check since the
        previous one, divided by the initial error (``None``: not known, as for a
        resumed fit that had stopped already, or an initial error of 0).
    patience : int
        With ``rule='validation'``: iterations in a row without an improvement.
    best_iteration : int or None
        With validation entries: the iteration whose factors were kept.

    Examples
    --------
    >>> reason = StopReason("tol", 20, 30, 1e-4, decrease=6e-5)
    >>> print(reason.describe("set tol: 0"))  # doctest: +NORMALIZE_WHITESPACE
    stopped at iteration 20 of 30: relative decrease 6.00e-05 < tol 0.0001
    (set tol: 0 to run every iteration)
    >>> print(StopReason("max_iter", 30, 30, 1e-4).describe())
    ran all 30 iterations (max_iter)
    """

    rule: str
    iteration: int
    max_iter: int
    tol: float
    decrease: float | None = None
    patience: int = 0
    best_iteration: int | None = None

    def describe(self, tol_off: str = "tol=0") -> str:
        """One line; ``tol_off`` is how the caller's user sets ``tol`` to 0 (a YAML key,
        a command-line option, a parameter)."""
        kept = ""
        if self.best_iteration is not None and self.best_iteration != self.iteration:
            kept = (
                f"; the factors of iteration {self.best_iteration} are kept (best validation RMSE)"
            )
        if self.rule == "max_iter":
            return f"ran all {self.max_iter} iterations (max_iter){kept}"
        where = f"stopped at iteration {self.iteration} of {self.max_iter}: "
        if self.rule == "validation":
            by = f"by a relative {self.tol:g}" if self.tol > 0 else "at all"
            return (
                f"{where}the validation RMSE has not improved {by} for {self.patience} "
                f"iterations in a row{kept}"
            )
        decrease = "" if self.decrease is None else f" {self.decrease:.2e}"
        return (
            f"{where}relative decrease{decrease} < tol {self.tol:g} "
            f"({tol_off} to run every iteration){kept}"
        )

    def to_dict(self, tol_off: str = "tol=0") -> dict[str, Any]:
        """The numbers and :meth:`describe`'s line (``text``), for a JSON summary."""
        return {
            "rule": self.rule,
            "iteration": self.iteration,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "relative_decrease": self.decrease,
            "best_iteration": self.best_iteration,
            "text": self.describe(tol_off),
        }


def describe_rule(
    max_iter: int,
    tol: float,
    check_every: int,
    *,
    patience: int | None = None,
) -> str:
    """The stopping rules of a fit in words, as :class:`ToleranceRule` (and, with
    ``patience``, the validation RMSE) apply them.

    Examples
    --------
    >>> print(describe_rule(30, 1e-4, 10))  # doctest: +NORMALIZE_WHITESPACE
    stops at a check (every 10 iterations) where the error fell by less than 0.0001
    times the initial error since the previous check (the first: since the initial
    factors), or after 30 iterations
    >>> print(describe_rule(30, 0, 10))
    runs all 30 iterations (tol 0: no early stop)
    """
    if tol > 0 and check_every <= max_iter:
        text = (
            f"stops at a check (every {check_every} iterations) where the error fell by less "
            f"than {tol:g} times the initial error since the previous check (the first: since "
            f"the initial factors), or after {max_iter} iterations"
        )
    elif tol > 0:
        text = (
            f"runs all {max_iter} iterations (the first check of the tol rule would come at "
            f"iteration {check_every})"
        )
    else:
        text = f"runs all {max_iter} iterations (tol 0: no early stop)"
    if patience is None:
        return text
    by = f"by a relative {tol:g}" if tol > 0 else "at all"
    return (
        f"{text}; also stops once the validation RMSE has not improved {by} for {patience} "
        "iterations in a row, keeping the factors of the best iteration"
    )
