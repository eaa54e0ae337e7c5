"""dasknmf vs scikit-learn, multiplicative updates, in memory.

Times ``sklearn.decomposition.NMF(solver="mu")`` and ``dasknmf.NMF`` on the same
synthetic term-document matrix, same rank and iterations, in one run, and prints
seconds per iteration and their ratio. Per-iteration cost is measured as the
difference between a long and a short fit, divided by the difference in iterations,
so fixed costs (validation, initialisation) cancel out; the two implementations are
measured alternately in each repeat.

Run: ``python benchmarks/bench_mu.py`` (add ``--small`` for a quick look).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.decomposition import NMF as SklearnNMF
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

import dasknmf
from benchmarks.common import machine, per_iteration
from dasknmf import inputs
from dasknmf.datasets import term_document


def kernel_floor(X, k: int, col_blocks: int = 1, repeats: int = 5) -> float:
    """Seconds for one iteration's two sparse products alone (``V_i Hᵀ`` then
    ``W_iᵀ V_i`` on two row halves, each cut into ``col_blocks`` column tiles, in two
    threads, no scheduler, no dense work), the fastest of ``repeats``: what a
    two-thread implementation on SciPy's kernels spends on those tiles."""
    rng = np.random.default_rng(0)
    half = X.shape[0] // 2
    edges = np.linspace(0, X.shape[1], col_blocks + 1).astype(int)
    cols = [slice(a, b) for a, b in itertools.pairwise(edges)]
    halves = [X[:half], X[half:]]
    blocks = [[h[:, c].tocsr() for c in cols] for h in halves]
    Ws = [rng.random((h.shape[0], k), dtype=np.float32) for h in halves]
    H = rng.random((k, X.shape[1]), dtype=np.float32)

    def v_times_ht(i):
        return sum(tile @ H[:, c].T for tile, c in zip(blocks[i], cols, strict=True))

    def wt_times_v(i):
        return [(tile.T @ Ws[i]).T for tile in blocks[i]]

    samples = []
    with ThreadPoolExecutor(2) as pool, threadpool_limits(1, "blas"):
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(v_times_ht, range(2)))
            list(pool.map(wt_times_v, range(2)))
            samples.append(time.perf_counter() - start)
    return min(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="20,000 × 5,000 matrix")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--chunks", type=int, nargs=2, metavar=("ROWS", "COLS"), help="dasknmf tile shape"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny run that only checks the script works"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats = 1
    warnings.simplefilter("ignore", ConvergenceWarning)

    shape = (20_000, 5_000) if args.small else (200_000, 50_000)
    shape = (2_000, 500) if args.smoke else shape
    X = term_document(*shape)
    short, long = 10, 40
    common = dict(n_components=args.k, init="random", random_state=0, tol=0)

    def make_sklearn(n):
        return SklearnNMF(solver="mu", max_iter=n, **common)

    def make_dasknmf(n):
        return dasknmf.NMF(max_iter=n, chunks=args.chunks, **common)

    # The column tiles dasknmf cuts an in-memory sparse input into (inputs.auto_chunks).
    col_blocks = inputs.gather_col_blocks(X.shape[1], (args.k, 4))
    # Interleaved, so that a slower spell of a shared machine hits both alike; the
    # ratio is the median of the per-repeat ratios.
    samples, floors = [], []
    for _ in range(args.repeats):
        samples.append(
            (
                per_iteration(lambda n: make_sklearn(n).fit(X), short, long),
                per_iteration(lambda n: make_dasknmf(n).fit(X), short, long),
            )
        )
        floors.append((kernel_floor(X, args.k), kernel_floor(X, args.k, col_blocks)))
    t_sk = statistics.median(s for s, _ in samples)
    t_dn = statistics.median(d for _, d in samples)
    ratio = statistics.median(d / s for s, d in samples)

    print(machine("numpy", "scipy", "scikit-learn"))
    print(
        f"matrix: {X.shape[0]:,} × {X.shape[1]:,} CSR float32, {X.nnz:,} non-zeros, k = {args.k}"
    )
    print()
    print("| implementation | s / iteration | ratio to scikit-learn |")
    print("| --- | --- | --- |")
    print(f"| scikit-learn NMF(solver='mu') | {t_sk:.4f} | 1.00 |")
    print(f"| dasknmf.NMF (threaded scheduler) | {t_dn:.4f} | {ratio:.2f} |")
    for i, tiles in enumerate(("full-width tiles", f"{col_blocks} column tiles, as dasknmf")):
        floor = min(f[i] for f in floors)
        print(
            f"| floor: the two sparse products on 2 threads, nothing else, {tiles} | "
            f"{floor:.4f} | {floor / t_sk:.2f} |"
        )
    print()
    print(
        f"median of {args.repeats} interleaved repeats; per-repeat ratios: "
        + ", ".join(f"{d / s:.2f}" for s, d in samples)
    )


if __name__ == "__main__":
    main()
