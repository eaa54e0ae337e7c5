"""The elastic-net penalties of ``W`` and ``H``, scaled as scikit-learn scales them."""

from __future__ import annotations

from dataclasses import replace

from dasknmf.kernels.penalty import Penalty

__all__ = ["Penalty", "elastic_net", "weighted_lambda"]


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


def weighted_lambda(
    penalty_w: Penalty, penalty_h: Penalty, lam: float, m: int, n: int, *, masked: bool
) -> tuple[Penalty, Penalty]:
    """The penalties with the weighted-λ term of ALS-WR and Spark's ALS added.

    The objective gains ``½ λ (Σ_i n_i ‖W_i‖² + Σ_j n_j ‖H_j‖²)``, ``n_i`` and ``n_j``
    the numbers of observed entries of row ``i`` and column ``j``: a user with many
    ratings is held less tightly by each, so one ``λ`` suits data sets of any density
    (Zhou et al. 2008). With every entry observed ``n_i = n`` and ``n_j = m``, and
    the term is a plain ridge.

    Examples
    --------
    >>> w, h = weighted_lambda(Penalty(), Penalty(), 0.1, m=10, n=4, masked=False)
    >>> w.l2, h.l2
    (0.4, 1.0)
    >>> weighted_lambda(Penalty(), Penalty(), 0.1, m=10, n=4, masked=True)[0].l2_weighted
    0.1
    """
    if not lam:
        return penalty_w, penalty_h
    if masked:
        return (
            replace(penalty_w, l2_weighted=penalty_w.l2_weighted + lam),
            replace(penalty_h, l2_weighted=penalty_h.l2_weighted + lam),
        )
    return replace(penalty_w, l2=penalty_w.l2 + lam * n), replace(
        penalty_h, l2=penalty_h.l2 + lam * m
    )
