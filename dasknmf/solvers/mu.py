"""Lee & Seung multiplicative updates for the Frobenius loss ``½‖V − WH‖²``.

Per iteration, in scikit-learn's order (penalties, when set, join the denominators)::

    W ← W ∘ (V Hᵀ) / (W (H Hᵀ))
    H ← H ∘ (Wᵀ V) / ((Wᵀ W) H)

Zero denominators become float32 epsilon, so all-zero rows or columns give zeros.
The traversal of ``V`` is :mod:`dasknmf.solvers.frobenius`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from dasknmf.kernels.frobenius import mu_rule
from dasknmf.solvers.frobenius import AlternatingFrobenius


@dataclass(frozen=True)
class FrobeniusMU(AlternatingFrobenius):
    """Multiplicative updates (:func:`dasknmf.kernels.frobenius.mu_rule`); parameters as
    :class:`~dasknmf.solvers.frobenius.AlternatingFrobenius`."""

    rule = staticmethod(mu_rule)
