"""The scikit-learn estimator, :class:`~dasknmf.estimator.nmf.NMF`, over tiled dask
matrices.

- :mod:`~dasknmf.estimator.nmf`: the estimator, its parameters and methods;
- :mod:`~dasknmf.estimator.fitting`: ``fit_transform`` and ``transform`` step by
  step, between the user's input and the fit loop;
- :mod:`~dasknmf.estimator.preparation`: what they need from the input and the
  parameters: tiles, statistics, initialisation, solver, factor stores;
- :mod:`~dasknmf.estimator.parameters`: the rule table of its parameters, checked
  once at the edge, and the checks that need the input;
- :mod:`~dasknmf.estimator.placement`: in memory or out of core, host or GPU, and
  the form results come back in;
- :mod:`~dasknmf.estimator.ratings`: ``predict``, ``rmse`` and ``score`` for
  ``missing='ignore'``;
- :mod:`~dasknmf.estimator.sweep`: :class:`RankSweep`, many ``(k, seed)`` replicates
  fitted together to choose ``k``.
"""

from __future__ import annotations

from dasknmf.estimator.nmf import NMF
from dasknmf.estimator.sweep import RankSweep

__all__ = ["NMF", "RankSweep"]
