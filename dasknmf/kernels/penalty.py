"""The elastic-net penalty on one factor, as the update rules consume it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Penalty:
    """Elastic-net penalty ``l1 ‖X‖₁ + ½ l2 ‖X‖²`` on one factor, already scaled.

    In a multiplicative update it adds ``l1 + l2 · X`` to the denominator (scikit-learn's
    ``alpha_W``/``alpha_H``/``l1_ratio`` become these numbers in the estimator).
    """

    l1: float = 0.0
    l2: float = 0.0


NO_PENALTY = Penalty()
