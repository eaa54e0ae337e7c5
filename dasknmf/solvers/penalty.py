"""The elastic-net penalties of ``W`` and ``H``, scaled as scikit-learn scales them."""

from __future__ import annotations

from dasknmf.kernels.penalty import Penalty

__all__ = ["Penalty", "elastic_net"]


def elastic_net(
    alpha_W: float, alpha_H: float, l1_ratio: float, m: int, n: int
) -> tuple[Penalty, Penalty]:
    """The penalties of ``W`` and ``H`` for an ``m × n`` input.

    scikit-learn's scaling: ``W``'s penalty grows with ``n`` (the length of the rows it
    fits), ``H``'s with ``m``; the objective gains
    ``alpha · size · (l1_ratio ‖X‖₁ + ½ (1 − l1_ratio) ‖X‖²)`` for each.

    Examples
    --------
    >>> w, h = elastic_net(0.1, 0.0, 0.5, m=10, n=4)
    >>> (round(w.l1, 9), round(w.l2, 9)), (h.l1, h.l2)
    ((0.2, 0.2), (0.0, 0.0))
    """
    return tuple(  # type: ignore[return-value]
        Penalty(l1=size * alpha * l1_ratio, l2=size * alpha * (1.0 - l1_ratio))
        for alpha, size in ((alpha_W, n), (alpha_H, m))
    )
