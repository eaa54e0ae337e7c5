"""scikit-learn's stopping rule for iterative NMF, in one place.

Every ``check_every`` iterations the error is compared with the one at the previous
check; the iterations stop when the decrease, relative to the error of the initial
factors, is below ``tol`` (``tol = 0`` never stops early). Used by the fit driver
and by the row-block loops of ``transform``. Its whole state is ``error_at_init`` and
``previous``, so a resumed fit restores it by passing both.
"""

from __future__ import annotations

from dataclasses import dataclass


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
