"""The rank-sweep engine: many ``(k, seed)`` replicates fitted together.

- :mod:`dasknmf.sweep.loop`: the stacked iteration loop (one pass over ``V`` per
  iteration for every replicate; each stops by its own rule);
- :mod:`dasknmf.sweep.holdout`: bi-cross-validation, the held-out error of a rank;
- :mod:`dasknmf.sweep.consensus`: cNMF's stability and consensus components;
- :mod:`dasknmf.sweep.plot`: the k-selection figure.

The estimator users call is :class:`dasknmf.RankSweep`
(:mod:`dasknmf.estimator.sweep`). :class:`Stack` (from
:mod:`dasknmf.kernels.stack`) names the replicates' ranks in their column order.
"""

from __future__ import annotations

from dasknmf.kernels.stack import Stack

__all__ = ["Stack"]
