"""Several factorisations side by side: the block-diagonal algebra of a stacked fit.

A rank sweep fits replicates of ranks ``k_1, …, k_R`` together by stacking their
factors: ``W = [W_1 … W_R]`` (``m × Σk``) and ``H = [H_1; …; H_R]`` (``Σk × n``). The
products with ``V`` (``V Hᵀ``, ``Wᵀ V``) then serve every replicate in one pass, while
everything that couples the columns of one factor (Gram matrices, the per-block update
rules, errors) must stay within a replicate: the Gram matrix of the stack is
block-diagonal, and computing or storing it whole would cost ``(Σk)²`` where the
replicates need only ``Σ k_r²``.

A :class:`Stack` therefore keeps the Gram blocks *packed*: a ``Σk × max(k)`` array
whose rows ``s_r:e_r`` hold replicate ``r``'s ``k_r × k_r`` block in their first
``k_r`` columns (the rest is zero). A stack of one replicate packs its Gram matrix as
the plain ``k × k`` matrix, so one fit is the special case, with the same arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from dasknmf.devices import array_module
from dasknmf.kernels.penalty import NO_PENALTY, Penalty
from dasknmf.kernels.tiles import Array, aligned


@dataclass(frozen=True)
class Stack:
    """The ranks of stacked replicates, in the order of their factor columns.

    Parameters
    ----------
    ranks : tuple of int
        ``k_r`` of each replicate.

    Examples
    --------
    >>> import numpy as np
    >>> stack = Stack((2, 1))
    >>> stack.bounds, stack.packed_shape
    (((0, 2), (2, 3)), (3, 2))
    >>> w = np.arange(6.0).reshape(2, 3)
    >>> stack.gram_rows(w)  # rows 0:2 hold the 2 × 2 block, row 2 the 1 × 1 block
    array([[ 9., 12.],
           [12., 17.],
           [29.,  0.]])
    """

    ranks: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.ranks or any(int(k) < 1 for k in self.ranks):
            raise ValueError(f"a stack needs ranks >= 1, got {self.ranks!r}")
        object.__setattr__(self, "ranks", tuple(int(k) for k in self.ranks))

    @cached_property
    def bounds(self) -> tuple[tuple[int, int], ...]:
        """``(start, stop)`` of each replicate's columns in the stacked ``W``."""
        stops = np.cumsum(self.ranks)
        return tuple((int(e - k), int(e)) for k, e in zip(self.ranks, stops, strict=True))

    @property
    def total(self) -> int:
        """``Σ k``: the width of the stacked ``W``."""
        return sum(self.ranks)

    @property
    def width(self) -> int:
        """``max k``: the width of a packed Gram matrix."""
        return max(self.ranks)

    @property
    def packed_shape(self) -> tuple[int, int]:
        """Shape of a packed Gram matrix: ``(Σk, max k)``."""
        return self.total, self.width

    def _packed(self, x: Array, blocks) -> Array:
        if len(self.ranks) == 1:
            return blocks(x, 0, self.total)
        xp = array_module(x)
        out = xp.zeros(self.packed_shape, dtype=x.dtype)
        for (s, e), k in zip(self.bounds, self.ranks, strict=True):
            out[s:e, :k] = blocks(x, s, e)
        return out

    def gram_rows(self, w: Array) -> Array:
        """Packed ``W_rᵀ W_r`` of a tall stacked block ``w`` (rows × Σk)."""
        return self._packed(aligned(w), lambda x, s, e: x[:, s:e].T @ x[:, s:e])

    def gram_cols(self, h: Array) -> Array:
        """Packed ``H_r H_rᵀ`` of a wide stacked block ``h`` (Σk × columns)."""
        return self._packed(aligned(h), lambda x, s, e: x[s:e] @ x[s:e].T)

    def block(self, g: Array, r: int) -> Array:
        """Replicate ``r``'s ``k_r × k_r`` block of a packed Gram matrix."""
        s, e = self.bounds[r]
        return g[s:e, : self.ranks[r]]

    def apply(self, rule, x: Array, xht: Array, g: Array, penalty: Penalty = NO_PENALTY):
        """``rule(x_r, xht_r, g_r, penalty)`` on each replicate's columns of a tall
        block ``x``, with its block ``g_r`` of the packed Gram matrix ``g``."""
        if len(self.ranks) == 1:
            return rule(x, xht, g, penalty)
        # C order, as every rule returns: update_cols relies on it (its transpose is
        # then what SciPy's sparse products take without a copy).
        out = array_module(x).empty(x.shape, dtype=x.dtype)
        for r, (s, e) in enumerate(self.bounds):
            out[:, s:e] = rule(x[:, s:e], xht[:, s:e], self.block(g, r), penalty)
        return out

    def group_sums(self, values: np.ndarray) -> np.ndarray:
        """Sums of a length-``Σk`` vector over each replicate's entries (length ``R``)."""
        starts = np.asarray([s for s, _ in self.bounds])
        return np.add.reduceat(np.asarray(values, dtype=np.float64), starts)

    def columns(self, replicates) -> np.ndarray:
        """Indices of the stacked columns of ``replicates`` (positions in this stack)."""
        return np.concatenate([np.arange(*self.bounds[r]) for r in replicates])

    def subset(self, replicates) -> Stack:
        """The stack of ``replicates`` only, in the order given."""
        return Stack(tuple(self.ranks[r] for r in replicates))


class StackedRule:
    """A per-block update rule applied replicate by replicate (picklable by value)."""

    def __init__(self, rule, stack: Stack) -> None:
        self.rule, self.stack = rule, stack

    def __call__(self, x: Array, xht: Array, g: Array, penalty: Penalty = NO_PENALTY):
        return self.stack.apply(self.rule, x, xht, g, penalty)

    def __reduce__(self):
        return StackedRule, (self.rule, self.stack)
