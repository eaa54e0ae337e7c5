"""The multiplicative step every MU rule ends with: ``x ∘ numerator / denominator``.

The Frobenius and Kullback–Leibler rules take it as is (:func:`mu_step`); the general
β-divergence and masked rules raise the ratio to scikit-learn's exponent ``γ``
(:func:`beta_step`). Both add the penalty to the denominator and guard its zeros.
"""

from __future__ import annotations

import numpy as np

from dasknmf.devices import array_module
from dasknmf.kernels.penalty import NO_PENALTY, Penalty
from dasknmf.kernels.tiles import EPSILON, Array


def mu_step(
    x: Array, numerator: Array, denominator: Array, penalty: Penalty = NO_PENALTY
) -> Array:
    """Multiplicative update ``x ∘ numerator / (denominator + l1 + l2 · x)``, a new array.

    Zero denominators become :data:`~dasknmf.kernels.tiles.EPSILON`, so all-zero rows or
    columns of ``V`` give zeros instead of NaN. ``denominator`` is consumed (overwritten).
    """
    if penalty.l1:
        denominator += penalty.l1
    if penalty.l2:
        denominator += penalty.l2 * x
    if not denominator.all():  # a cheap reduction; the masked write is rarely needed
        denominator[denominator == 0] = EPSILON
    out = array_module(denominator).divide(numerator, denominator, out=denominator)
    out *= x
    return out


def beta_gamma(beta: float) -> float:
    """scikit-learn's exponent of the MU step, which keeps the updates monotone."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


def beta_step(
    x: Array,
    numerator: Array,
    denominator: Array,
    beta: float,
    penalty: Penalty,
    zero_small: bool,
) -> Array:
    """``x ∘ (numerator / (denominator + l1 + l2 x))^γ``, zero denominators as
    EPSILON, and (``zero_small``) entries below float64 epsilon set to zero: scikit-learn
    does so after W updates for β < 1 and after H updates for β ≤ 1."""
    denominator = denominator + penalty.l1 + penalty.l2 * x
    denominator[denominator == 0] = EPSILON
    delta = numerator / denominator
    gamma = beta_gamma(beta)
    if gamma != 1:
        delta **= gamma
    out = x * delta
    if zero_small:
        out[out < np.finfo(np.float64).eps] = 0.0
    return out
