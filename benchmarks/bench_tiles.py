"""Tile size sweep: s/iteration out of core as a function of the tile shape.

The term-document benchmark matrix is written to stores with full-width row tiles of
several heights (so tiles hold from a few MiB to a few hundred MiB of CSR data); each
is fitted with ``persist=False`` (every iteration re-reads every tile) on the
threaded scheduler, the stores measured alternately in each repeat. Reported: the
median s/iteration and its ratio to the tiling ``default_chunks`` picks.

Run: ``python -m benchmarks.bench_tiles`` (``--small``, ``--smoke``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import warnings

from sklearn.exceptions import ConvergenceWarning

import dasknmf
from benchmarks.common import machine, per_iteration
from dasknmf.datasets import term_document
from dasknmf.storage.chunking import default_chunks
from dasknmf.storage.reader import clear_cache


def seconds_per_iteration(path: str, k: int, short: int, long: int) -> float:
    """Seconds per out-of-core iteration of a fit from ``path``, tile cache emptied."""

    def fit(n: int) -> None:
        clear_cache()
        model = dasknmf.NMF(k, init="random", random_state=0, tol=0, max_iter=n, persist=False)
        model.fit(path)

    return per_iteration(fit, short, long)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="20,000 × 5,000 matrix")
    parser.add_argument("--smoke", action="store_true", help="a tiny run (checks the script)")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)

    shape = (20_000, 5_000) if args.small else (200_000, 50_000)
    shape, repeats = ((2_000, 500), 1) if args.smoke else (shape, args.repeats)
    X = term_document(*shape)
    m = X.shape[0]
    default = default_chunks(X.shape, nnz=X.nnz, itemsize=4)
    fractions = (1 / 2, 1 / 8) if args.smoke else (1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64)
    heights = sorted({max(64, int(m * f)) for f in fractions} | {default[0]}, reverse=True)
    bytes_per_row = X.nnz * 8 / m  # float32 value + int32 index
    short, long = (2, 4) if args.smoke else (3, 13)

    root = tempfile.mkdtemp(prefix="dasknmf-tiles-")
    try:
        stores = {}
        for rows in heights:
            path = os.path.join(root, f"v-{rows}.zarr")
            dasknmf.write_matrix(X, path, chunks=(rows, X.shape[1]))
            stores[rows] = path
        samples: dict[int, list[float]] = {rows: [] for rows in heights}
        for _ in range(repeats):
            for rows in heights:
                samples[rows].append(seconds_per_iteration(stores[rows], args.k, short, long))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    reference = statistics.median(samples[default[0]])
    print(machine("numpy", "scipy", "zarr"))
    print(
        f"matrix: {X.shape[0]:,} × {X.shape[1]:,} CSR float32, {X.nnz:,} non-zeros, "
        f"k = {args.k}; out of core (persist=False), threaded scheduler"
    )
    print()
    print("| tile rows | tiles | CSR MiB per tile | s / iteration | ratio to default |")
    print("| --- | --- | --- | --- | --- |")
    for rows in heights:
        t = statistics.median(samples[rows])
        mark = " (default)" if rows == default[0] else ""
        print(
            f"| {rows:,}{mark} | {-(-m // rows)} | {rows * bytes_per_row / 2**20:.1f} | "
            f"{t:.4f} | {t / reference:.2f} |"
        )
    print()
    print(f"median of {repeats} repeats, stores measured alternately")


if __name__ == "__main__":
    main()
