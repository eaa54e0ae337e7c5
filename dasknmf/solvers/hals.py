"""Hierarchical alternating least squares (HALS) for the Frobenius loss.

Coordinate descent on the columns of ``W``, then on the rows of ``H``: each sweep
moves one column at a time to its exact non-negative least-squares optimum given the
others (Cichocki & Phan 2009), which is scikit-learn's ``solver="cd"`` with
``shuffle=False``. It needs the same products as multiplicative updates
(``V Hᵀ``, ``H Hᵀ``, ``Wᵀ V``, ``Wᵀ W``), so it runs on the same tiled, out-of-core
traversal (:mod:`dasknmf.solvers.frobenius`), and usually reaches a given error in
far fewer iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

from dasknmf.kernels.frobenius import hals_rule
from dasknmf.solvers.frobenius import AlternatingFrobenius


@dataclass(frozen=True)
class HALS(AlternatingFrobenius):
    """HALS sweeps (:func:`dasknmf.kernels.frobenius.hals_rule`); parameters as
    :class:`~dasknmf.solvers.frobenius.AlternatingFrobenius`."""

    rule = staticmethod(hals_rule)
    # Coordinate descent moves away from zeros (multiplicative updates cannot):
    # scikit-learn's transform starts it there too.
    transform_start = "zero"
