"""Tile shapes: s/iteration of one fit over stores of the same matrix in several tilings.

Two term-document matrices, a **tall** one (many more documents than terms) and a
**wide** one (more terms than documents), are each written to stores of several tile
shapes: the one ``default_chunks`` picks, full-width row blocks of other heights, and
tiles that also cut the columns (the README's old ``chunks=(50_000, 20_000)`` among
them). Every store is fitted in four ways: dask's threaded scheduler in this process
and a ``LocalCluster`` of 2 one-thread worker processes, each in memory
(``persist=True``) and out of core (``persist=False``: every iteration re-reads every
tile). Within a repeat every tiling of a matrix is fitted once per mode, one after
the other, so a slow spell of a shared machine hits them alike. A fit's figure is the
median duration of its iterations after the first two (timed between callbacks); the
table gives the median over the repeats and its ratio to the default tiling's.

Run: ``python -m benchmarks.bench_tiles`` (``--repeats N``, ``--k K``, ``--smoke``:
a tiny run of the threaded modes only, which the test suite uses).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator

import dask
import scipy.sparse as sp
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning

import dasknmf
from benchmarks.common import machine
from dasknmf.datasets import term_document
from dasknmf.storage.chunking import default_chunks
from dasknmf.storage.reader import clear_cache

MATRICES = {"tall": (400_000, 40_000), "wide": (100_000, 400_000)}
SMOKE_MATRICES = {"tall": (4_000, 500), "wide": (500, 4_000)}
MODES = (
    "threads, in memory",
    "threads, out of core",
    "2 workers, in memory",
    "2 workers, out of core",
)

HEADER = "| tile shape | tiles | CSR MiB per tile | mode | s / iteration | ratio to default |"


def tilings(shape: tuple[int, int], default: tuple[int, int]) -> list[tuple[int, int]]:
    """The default tile shape first, then the alternatives measured against it."""
    m, n = shape
    rows = default[0]
    candidates = [
        default,
        (max(64, rows // 2), default[1]),  # twice the row blocks
        (min(m, rows * 2), default[1]),  # half the row blocks
        (rows, min(n, 20_000)),  # the same rows, columns cut
        (min(m, 50_000), min(n, 20_000)),  # the README's old example
    ]
    if m < 10_000:  # smoke sizes
        candidates = [default, (max(64, m // 4), max(64, n // 4))]
    seen: list[tuple[int, int]] = []
    for c in candidates:
        if c not in seen:
            seen.append(c)
    return seen


def seconds_per_iteration(path: str, k: int, persist: bool, iterations: int) -> float:
    """Median seconds of the iterations of one fit from ``path`` after the first two.

    Timed between callbacks (the factors are persisted at the end of each iteration),
    so a slow spell of the shared machine spoils a few iterations, not the figure.
    """
    stamps: list[float] = []
    clear_cache()
    model = dasknmf.NMF(
        k,
        init="random",
        random_state=0,
        tol=0,
        max_iter=iterations,
        persist=persist,
        callbacks=[lambda info: stamps.append(time.perf_counter())],
    )
    model.fit(path)
    return statistics.median(b - a for a, b in itertools.pairwise(stamps[1:]))


@contextlib.contextmanager
def scheduler(mode: str) -> Iterator[None]:
    """dask's threaded scheduler (2 threads), or a 2-worker ``LocalCluster``."""
    if mode.startswith("threads"):
        with dask.config.set(scheduler="threads", num_workers=2):
            yield
        return
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster),
    ):
        yield


def measure(
    stores: dict[tuple[int, int], str], modes: tuple[str, ...], args: argparse.Namespace
) -> dict[str, dict[tuple[int, int], list[float]]]:
    """Samples per mode and tiling: one per repeat, the tilings measured in turn."""
    samples = {mode: {t: [] for t in stores} for mode in modes}
    for mode in modes:
        with scheduler(mode):
            for _ in range(args.repeats):
                for tile, path in stores.items():
                    persist = mode.endswith("in memory")
                    t = seconds_per_iteration(path, args.k, persist, args.iterations)
                    samples[mode][tile].append(t)
                    print(f"  {mode}, {tile}: {t:.4f} s", file=sys.stderr, flush=True)
    return samples


def describe(name: str, X: sp.csr_matrix, default: tuple[int, int]) -> str:
    m, n = X.shape
    return (
        f"{name}: {m:,} × {n:,} CSR float32, {X.nnz:,} non-zeros "
        f"({X.nnz * 8 / 2**20:.0f} MiB as CSR), default tiles {default[0]:,} × {default[1]:,}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run (checks the script)")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--matrix", choices=sorted(MATRICES), action="append")
    parser.add_argument("--mode", choices=MODES, action="append")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    sizes = SMOKE_MATRICES if args.smoke else MATRICES
    if args.smoke:
        args.repeats, args.iterations = 1, 4
    modes = tuple(args.mode or (MODES[:2] if args.smoke else MODES))

    print(machine("numpy", "scipy", "zarr", "distributed"))
    print(
        f"k = {args.k}; per fit, the median time of iterations 3 to {args.iterations}; "
        f"median of {args.repeats} fits (repeats), the tilings of a matrix measured in turn"
    )
    for name in args.matrix or sorted(MATRICES, reverse=True):
        X = term_document(*sizes[name])
        default = default_chunks(X.shape, nnz=X.nnz, itemsize=4)
        root = tempfile.mkdtemp(prefix="dasknmf-tiles-")
        try:
            stores = {}
            for tile in tilings(X.shape, default):
                stores[tile] = os.path.join(root, f"v-{tile[0]}x{tile[1]}.zarr")
                dasknmf.write_matrix(X, stores[tile], chunks=tile)
            samples = measure(stores, modes, args)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print()
        print(describe(name, X, default))
        print()
        print(HEADER)
        print("| --- | --- | --- | --- | --- | --- |")
        m, n = X.shape
        for mode in modes:
            reference = statistics.median(samples[mode][default])
            for tile in stores:
                grid = (-(-m // tile[0]), -(-n // tile[1]))
                mib = X.nnz * 8 / (grid[0] * grid[1]) / 2**20
                t = statistics.median(samples[mode][tile])
                mark = " (default)" if tile == default else ""
                print(
                    f"| {tile[0]:,} × {tile[1]:,}{mark} | {grid[0]} × {grid[1]} | {mib:.1f} | "
                    f"{mode} | {t:.4f} | {t / reference:.2f} |"
                )


if __name__ == "__main__":
    main()
