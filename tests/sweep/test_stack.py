"""The packed block-diagonal algebra of stacked replicates, against dense NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from dasknmf.kernels.frobenius import hals_rule, mu_rule
from dasknmf.kernels.penalty import Penalty
from dasknmf.kernels.stack import Stack, StackedRule

RANKS = (3, 1, 4)


@pytest.fixture
def blocks():
    rng = np.random.default_rng(0)
    return rng.random((9, sum(RANKS))), rng.random((sum(RANKS), 7))


def _unpack(stack: Stack, packed: np.ndarray) -> np.ndarray:
    return scipy.linalg.block_diag(*[stack.block(packed, r) for r in range(len(stack.ranks))])


def _block_diagonal_part(full: np.ndarray, stack: Stack) -> np.ndarray:
    out = np.zeros_like(full)
    for s, e in stack.bounds:
        out[s:e, s:e] = full[s:e, s:e]
    return out


def test_packed_grams_are_the_diagonal_blocks_of_the_full_ones(blocks):
    w, h = blocks
    stack = Stack(RANKS)
    assert stack.gram_rows(w).shape == stack.packed_shape == (8, 4)
    np.testing.assert_allclose(
        _unpack(stack, stack.gram_rows(w)), _block_diagonal_part(w.T @ w, stack)
    )
    np.testing.assert_allclose(
        _unpack(stack, stack.gram_cols(h)), _block_diagonal_part(h @ h.T, stack)
    )


def test_one_replicate_packs_the_plain_gram_matrix(blocks):
    w, h = blocks
    stack = Stack((w.shape[1],))
    np.testing.assert_array_equal(stack.gram_rows(w), w.T @ w)
    np.testing.assert_array_equal(stack.gram_cols(h), h @ h.T)


@pytest.mark.parametrize("rule", [mu_rule, hals_rule], ids=["mu", "hals"])
def test_a_stacked_rule_updates_each_replicate_as_alone(blocks, rule):
    w, h = blocks
    rng = np.random.default_rng(1)
    xht = rng.random(w.shape)
    stack = Stack(RANKS)
    g = stack.gram_cols(h)
    penalty = Penalty(l1=0.1, l2=0.2)
    got = StackedRule(rule, stack)(w, xht, g, penalty)
    for s, e in stack.bounds:
        alone = rule(w[:, s:e].copy(), xht[:, s:e], h[s:e] @ h[s:e].T, penalty)
        np.testing.assert_allclose(got[:, s:e], alone, rtol=1e-13)


def test_group_sums_columns_and_subsets():
    stack = Stack(RANKS)
    np.testing.assert_array_equal(stack.group_sums(np.arange(8.0)), [3.0, 3.0, 22.0])
    np.testing.assert_array_equal(stack.columns([2, 0]), [4, 5, 6, 7, 0, 1, 2])
    assert stack.subset([2, 0]) == Stack((4, 3))


@pytest.mark.parametrize("ranks", [(), (2, 0), (-1,)])
def test_a_stack_needs_positive_ranks(ranks):
    with pytest.raises(ValueError, match="ranks >= 1"):
        Stack(ranks)
