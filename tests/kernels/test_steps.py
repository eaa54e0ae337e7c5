"""The multiplicative step: zero denominators and which inputs it may overwrite."""

from __future__ import annotations

import numpy as np

from dasknmf.kernels.steps import mu_step
from dasknmf.kernels.tiles import EPSILON


def test_mu_step_zero_denominator_gives_zero_not_nan():
    x = np.array([[1.0, 2.0], [0.0, 0.0]])
    numerator = np.array([[2.0, 1.0], [0.0, 0.0]])
    denominator = np.array([[4.0, 0.0], [0.0, 0.0]])
    out = mu_step(x, numerator, denominator)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0, 0], 0.5)
    # a zero denominator is replaced by EPSILON, as scikit-learn does
    np.testing.assert_allclose(out[0, 1], 2.0 * 1.0 / EPSILON)
    np.testing.assert_array_equal(out[1], 0.0)


def test_mu_step_leaves_inputs_other_than_denominator_alone():
    x, num, den = np.ones((2, 2)), np.full((2, 2), 3.0), np.full((2, 2), 2.0)
    mu_step(x, num, den)
    np.testing.assert_array_equal(x, 1.0)
    np.testing.assert_array_equal(num, 3.0)
