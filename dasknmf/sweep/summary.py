"""The tables of a rank sweep and the rule that suggests ``k`` from them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dasknmf.kernels.stack import Stack
from dasknmf.sweep.loop import ReplicateResult

#: ``best_k`` is the smallest k whose median held-out error is within this share of
#: the lowest: past the true rank the held-out error stays flat to within a fraction of
#: a percent (docs/rank-selection.md), so the lowest alone may pick a larger k by noise.
TEST_ERROR_SLACK = 0.01

#: Without a holdout, ``best_k`` is the largest k whose stability is within this of
#: the highest: every k up to the true rank tends to be stable (its components are
#: sums of true ones, found alike by every replicate); past it stability drops.
STABILITY_SLACK = 0.05


def results_table(
    results: Sequence[ReplicateResult],
    stack: Stack,
    seeds: Sequence[int],
    test_errors: Sequence[float],
):
    """A row per replicate (``k``, ``replicate``, ``seed``, ``n_iter``, ``converged``,
    ``train_error``, ``test_error``), replicates ``0 … R−1`` of each rank in turn."""
    import pandas as pd

    replicates = [r % len(seeds) for r in range(len(results))]
    rows = [
        dict(
            k=k,
            replicate=replicate,
            seed=int(seeds[replicate]),
            n_iter=result.n_iter,
            converged=result.converged,
            train_error=result.error,
            test_error=float(test),
        )
        for k, replicate, result, test in zip(
            stack.ranks, replicates, results, test_errors, strict=True
        )
    ]
    return pd.DataFrame(rows)


def summary_table(results, stability: dict[int, float]):
    """A row per ``k``: medians of ``train_error``, ``test_error`` (of the finite
    ones) and ``n_iter``, the share that ``converged``, and ``stability``."""
    import pandas as pd

    rows = []
    for k, stab in stability.items():
        of_k = results[results["k"] == k]
        rows.append(
            dict(
                k=k,
                train_error=float(of_k["train_error"].median()),
                test_error=_median(of_k["test_error"]),
                stability=stab,
                n_iter=float(of_k["n_iter"].median()),
                converged=float(of_k["converged"].mean()),
            )
        )
    return pd.DataFrame(rows)


def best_k(summary, *, held_out: bool) -> int:
    """The suggested rank: with a held-out error, the smallest ``k`` within
    :data:`TEST_ERROR_SLACK` of the lowest; else the largest ``k`` whose stability
    is within :data:`STABILITY_SLACK` of the highest."""
    ks = np.asarray(summary["k"])
    if held_out:
        test = np.asarray(summary["test_error"], dtype=float)
        return int(ks[np.flatnonzero(test <= (1 + TEST_ERROR_SLACK) * np.nanmin(test))[0]])
    stability = np.nan_to_num(np.asarray(summary["stability"], dtype=float), nan=-np.inf)
    return int(ks[np.flatnonzero(stability >= stability.max() - STABILITY_SLACK)[-1]])


def _median(values) -> float:
    """The median of the finite ``values`` (NaN, without a warning, when none is)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else float("nan")
