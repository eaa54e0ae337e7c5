"""dasknmf vs scikit-learn, multiplicative updates, in memory.

Times ``sklearn.decomposition.NMF(solver="mu")`` and ``dasknmf.NMF`` on the same
synthetic term-document matrix, same rank and iterations, in one run, and prints
seconds per iteration and their ratio. Per-iteration cost is measured as the
difference between a long and a short fit, divided by the difference in iterations,
so fixed costs (validation, initialisation) cancel out.

Run: ``python benchmarks/bench_mu.py`` (add ``--small`` for a quick look).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings

import numpy as np
import sklearn
from sklearn.decomposition import NMF as SklearnNMF
from sklearn.exceptions import ConvergenceWarning

import dasknmf
from dasknmf.datasets import term_document


def per_iteration(make, X, short: int, long: int, repeats: int) -> float:
    """Median over ``repeats`` of (time(long) - time(short)) / (long - short)."""
    samples = []
    for _ in range(repeats):
        times = []
        for n in (short, long):
            model = make(n)
            start = time.perf_counter()
            model.fit(X)
            times.append(time.perf_counter() - start)
        samples.append((times[1] - times[0]) / (long - short))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="20,000 × 5,000 matrix")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)

    shape = (20_000, 5_000) if args.small else (200_000, 50_000)
    X = term_document(*shape)
    short, long = 10, 40
    common = dict(n_components=args.k, init="random", random_state=0, tol=0)

    def make_sklearn(n):
        return SklearnNMF(solver="mu", max_iter=n, **common)

    def make_dasknmf(n):
        return dasknmf.NMF(max_iter=n, **common)

    t_sk = per_iteration(make_sklearn, X, short, long, args.repeats)
    t_dn = per_iteration(make_dasknmf, X, short, long, args.repeats)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, dasknmf {dasknmf.__version__}"
    )
    print(
        f"matrix: {X.shape[0]:,} × {X.shape[1]:,} CSR float32, {X.nnz:,} non-zeros, k = {args.k}"
    )
    print()
    print("| implementation | s / iteration | ratio to scikit-learn |")
    print("| --- | --- | --- |")
    print(f"| scikit-learn NMF(solver='mu') | {t_sk:.4f} | 1.00 |")
    print(f"| dasknmf.NMF (threaded scheduler) | {t_dn:.4f} | {t_dn / t_sk:.2f} |")


if __name__ == "__main__":
    main()
