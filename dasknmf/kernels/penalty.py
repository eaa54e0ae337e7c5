"""The elastic-net penalty on one factor, as the update rules consume it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Penalty:
    """Elastic-net penalty ``l1 ‖X‖₁ + ½ l2 ‖X‖²`` on one factor, already scaled, and
    the weighted-λ penalty ``½ l2_weighted Σ_r n_r ‖X_r‖²``.

    In a multiplicative update it adds ``l1 + l2 · X`` to the denominator (scikit-learn's
    ``alpha_W``/``alpha_H``/``l1_ratio`` become these numbers in the estimator).
    ``l2_weighted`` is ALS-WR's and Spark's regularisation: each row of ``W`` (column
    of ``H``) ``X_r`` is penalised in proportion to its number ``n_r`` of observed
    entries; with every entry observed, ``n_r`` is the length of the row and the
    estimator folds it into ``l2``.
    """

    l1: float = 0.0
    l2: float = 0.0
    l2_weighted: float = 0.0


NO_PENALTY = Penalty()
