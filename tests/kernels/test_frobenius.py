"""The Frobenius row-block update against its dense formula."""

from __future__ import annotations

import numpy as np

from dasknmf.kernels.frobenius import mu_rule, update_rows
from dasknmf.kernels.penalty import NO_PENALTY
from tests.helpers import make_matrix


def test_update_rows_sums_tiles():
    rng = np.random.default_rng(3)
    tiles = [make_matrix(5, 4, seed=s) for s in range(3)]
    hs = [rng.random((2, 4)) for _ in range(3)]
    w, hht = rng.random((5, 2)), rng.random((2, 2)) + 0.1
    num = sum(t.toarray() @ h.T for t, h in zip(tiles, hs, strict=True))
    out = update_rows(mu_rule, NO_PENALTY, w, tiles, hs, hht)
    np.testing.assert_allclose(out, w * num / (w @ hht))
