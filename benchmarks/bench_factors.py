"""Factors larger than memory: W kept in a zarr store between iterations (issue 14).

With ``NMF(factors="store", persist=False)`` each pass over V reads W's row blocks from
the store's current generation and writes the new ones to the next, so memory holds
tiles, the blocks in flight, H and the k × k sums, never W. The inputs are very
sparse term-document matrices (``--terms-per-doc`` ≈ 3 non-zeros per row over 50,000
terms, so that W is the large thing), generated and written block by block in
full-width tiles of ``--block-rows`` rows (never held whole). This measures in one run:

* **cluster, W larger than the workers' memory**: a ``LocalCluster`` of ``--workers``
  processes × 1 thread, ``--memory-limit`` each (distributed's memory manager at its
  defaults), on ``--rows`` rows, where W (m × k float32) is at least twice the
  workers' total limit: s/iteration of ``factors="store"`` and each worker's peak
  resident memory, against its limit and W's size;
* **W in memory against W stored**, on ``--compare-rows`` rows where W also fits in
  the workers' memory (a cluster of ``--compare-limit`` per worker): s/iteration and
  worker peaks of ``factors="memory"`` and ``factors="store"``, alternated
  ``--repeats`` times so that a slow spell of the shared machine hits both alike;
* **laptop**: dask's threaded scheduler in a fresh process for each m of
  ``--laptop-rows``: the process's peak memory and s/iteration of ``factors="store"``
  while W grows to several times that peak.

A fit's s/iteration is the median duration of its iterations, timed between callbacks
(the first iteration, which also pays the fit's start, is not counted). A peak is the
process's high-water mark (Linux's ``VmHWM``: exact, where sampling misses short
spikes);
the workers are restarted before each fit, so each high-water mark is that fit's. The
peaks sampled every 0.2 s with psutil (as ``bench_out_of_core`` does) are printed too.

Targets (issue 14): stored s/iteration ≤ 1.3 × in memory; peak worker memory
independent of m.

Run: ``python -m benchmarks.bench_factors`` (about 10 minutes on 2 cores; ``--dir``
for the stores, a temp dir under it is removed at the end; ``--smoke`` for a tiny
check).
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import dask
import psutil
from dask.utils import parse_bytes
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning

import dasknmf
from benchmarks.common import WorkerPeaks, machine
from dasknmf.datasets import lazy_term_document

N_TERMS = 50_000
MiB = 2**20


def log(message: str) -> None:
    """Progress on stderr (the tables go to stdout)."""
    print(f"[bench_factors {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Stores:
    """The input matrices by number of rows, each written on first use under ``root``."""

    def __init__(self, root: str, block_rows: int, terms_per_doc: float) -> None:
        self.root, self.block_rows, self.terms_per_doc = root, block_rows, terms_per_doc
        self.info: dict[int, dasknmf.MatrixInfo] = {}

    def __call__(self, rows: int) -> str:
        path = os.path.join(self.root, f"V-{rows}.zarr")
        if rows not in self.info:
            log(f"writing V with {rows:,} rows")
            X = lazy_term_document(
                rows,
                N_TERMS,
                block_rows=self.block_rows,
                mean_terms_per_doc=self.terms_per_doc,
                seed=rows,
            )
            with dask.config.set(scheduler="threads"):
                dasknmf.write_matrix(X, path, chunks=(self.block_rows, N_TERMS))
            self.info[rows] = dasknmf.matrix_info(path)
        return path


def seconds_per_iteration(
    path: str, k: int, iterations: int, factors: str, store: str | None
) -> float:
    """Median seconds of the iterations after the first of one fit from ``path``."""
    stamps: list[float] = []
    model = dasknmf.NMF(
        k,
        init="random",
        random_state=0,
        tol=0,
        max_iter=iterations,
        persist=False,
        factors=factors,
        factor_store=store,
        callbacks=[lambda info: stamps.append(time.perf_counter())],
    )
    model.fit(path)
    return statistics.median(b - a for a, b in itertools.pairwise(stamps))


def w_bytes(rows: int, k: int) -> int:
    return rows * k * 4


# -- worker (and child process) side --------------------------------------------------


def high_water() -> int:
    """This process's peak resident memory so far, in bytes: Linux's ``VmHWM``, the
    high-water mark of this process image since its ``exec`` (``getrusage``'s
    ``ru_maxrss`` elsewhere, which on Linux also counts what the process had before
    an ``exec``: a worker started by a nanny forked from a large process would report
    that process's peak)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def resident_after_imports() -> int:
    """Resident memory, in bytes, once the modules a fit runs are imported."""
    for name in ("dasknmf", "scipy.sparse", "zarr"):
        importlib.import_module(name)
    return psutil.Process().memory_info().rss


def laptop_fit(path: str, k: int, iterations: int, store: str, threads: int):
    """s/iteration, resident memory before and the high-water mark of a stored-W fit
    on dask's threaded scheduler (run in a fresh process: the mark is this fit's)."""
    before = resident_after_imports()
    with dask.config.set(scheduler="threads", num_workers=threads):
        seconds = seconds_per_iteration(path, k, iterations, "store", store)
    return seconds, before, high_water()


# -- cluster --------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterFit:
    factors: str
    rows: int
    seconds: float
    before: dict[str, int]  # resident memory per worker before the fit
    sampled: dict[str, int]  # peaks sampled every 0.2 s
    high_water: dict[str, int]  # exact peaks of the workers alive at the end
    pauses: int  # times a worker paused at 80% of its limit
    replaced: int  # workers restarted by their nanny (memory) during the fit


@contextmanager
def cluster(workers: int, limit: int) -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, memory_limit=limit, dashboard_address=None
        ) as local,
        Client(local) as client,
    ):
        yield client


def fit_on_cluster(
    client: Client, path: str, rows: int, k: int, iterations: int, factors: str, store: str
) -> ClusterFit:
    client.restart()  # fresh worker processes: each high-water mark is this fit's
    before = client.run(resident_after_imports)
    log(f'cluster fit, factors="{factors}", {rows:,} rows')
    with WorkerPeaks(client) as peaks:
        seconds = seconds_per_iteration(
            path, k, iterations, factors, store if factors == "store" else None
        )
    logs = client.get_worker_logs()
    pauses = sum("Pausing worker" in message for lines in logs.values() for _, message in lines)
    marks = client.run(high_water)
    shutil.rmtree(store, ignore_errors=True)
    return ClusterFit(
        factors, rows, seconds, before, peaks.peak, marks, pauses, len(set(before) - set(marks))
    )


def largest(values: dict[str, int]) -> int:
    return max(values.values())


# -- tables ---------------------------------------------------------------------------


def print_large(
    fit: ClusterFit, small: ClusterFit, args, limit: int, compare_limit: int, stores: Stores
) -> None:
    info = stores.info[fit.rows]
    w = w_bytes(fit.rows, args.k)
    total = limit * args.workers
    print(
        f"V: {info.shape[0]:,} × {info.shape[1]:,}, {info.nnz:,} non-zeros, "
        f"{info.bytes_on_disk / MiB:.0f} MiB on disk, tiles of {args.block_rows:,} × {N_TERMS:,}"
        f"; k = {args.k}"
    )
    print(
        f"cluster: {args.workers} worker processes × 1 thread, memory limit {limit / MiB:.0f} MiB "
        "each (memory manager at distributed's defaults: pause at 80%, restart at 95%)"
    )
    print(
        f"W: {fit.rows:,} × {args.k} float32 = {w / MiB:,.0f} MiB = {w / total:.2f}× the "
        f"workers' total limit; workers paused {fit.pauses} times, restarted {fit.replaced}"
    )
    print()
    print("| worker | before the fit | peak sampled | high-water mark | of its limit | of W |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n, (worker, mark) in enumerate(sorted(fit.high_water.items()), 1):
        print(
            f"| worker {n} | {fit.before.get(worker, 0) / MiB:.0f} MiB "
            f"| {fit.sampled.get(worker, 0) / MiB:.0f} MiB | {mark / MiB:.0f} MiB "
            f"| {mark / limit:.2f} | {mark / w:.3f} |"
        )
    print()
    print(
        '| factors="store" on the cluster | rows | W | s/iteration | s/iteration per 1M rows '
        "| worker high-water (max) | ratio to the smaller m |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, f in (("compare", small), ("large", fit)):
        print(
            f"| {label} ({(compare_limit if f is small else limit) / MiB:.0f} MiB per worker) "
            f"| {f.rows:,} | {w_bytes(f.rows, args.k) / MiB:,.0f} MiB | {f.seconds:.2f} "
            f"| {f.seconds / f.rows * 1e6:.3f} | {largest(f.high_water) / MiB:.0f} MiB "
            f"| {largest(f.high_water) / largest(small.high_water):.2f} |"
        )


def print_compare(fits: list[ClusterFit], args) -> ClusterFit:
    """The memory-against-store table; returns the stored fit's median figures."""

    def summary(factors: str) -> ClusterFit:
        runs = [f for f in fits if f.factors == factors]
        return ClusterFit(
            factors,
            runs[0].rows,
            statistics.median(f.seconds for f in runs),
            runs[0].before,
            {w: max(f.sampled.get(w, 0) for f in runs) for w in runs[0].sampled},
            {"max": max(largest(f.high_water) for f in runs)},
            sum(f.pauses for f in runs),
            sum(f.replaced for f in runs),
        )

    memory, store = summary("memory"), summary("store")
    w = w_bytes(memory.rows, args.k)
    print(
        f"W in memory against W stored: {memory.rows:,} rows, W = {w / MiB:.0f} MiB, "
        f"{args.workers} workers × {parse_bytes(args.compare_limit) / MiB:.0f} MiB, "
        f"{args.repeats} fits each, alternated"
    )
    print()
    print(
        "| W kept | s/iteration | ratio to memory | worker high-water (max) | ratio to memory "
        "| peak sampled (max) | pauses, restarts |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for f in (memory, store):
        print(
            f'| factors="{f.factors}" | {f.seconds:.2f} | {f.seconds / memory.seconds:.2f} '
            f"| {largest(f.high_water) / MiB:.0f} MiB "
            f"| {largest(f.high_water) / largest(memory.high_water):.2f} "
            f"| {largest(f.sampled) / MiB:.0f} MiB | {f.pauses}, {f.replaced} |"
        )
    return store


def print_laptop(results: dict[int, tuple[float, int, int]], args) -> None:
    print(
        f"laptop: dask's threaded scheduler ({args.threads} threads), no cluster, "
        'factors="store"; a fresh process per m'
    )
    print()
    print(
        "| rows | W | s/iteration | process before | high-water mark | mark − before "
        "| W / mark | mark ratio to the smallest m |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    first = results[min(results)][2]
    for rows, (seconds, before, mark) in sorted(results.items()):
        w = w_bytes(rows, args.k)
        print(
            f"| {rows:,} | {w / MiB:,.0f} MiB | {seconds:.2f} | {before / MiB:.0f} MiB "
            f"| {mark / MiB:.0f} MiB | {(mark - before) / MiB:.0f} MiB | {w / mark:.2f} "
            f"| {mark / first:.2f} |"
        )


# -- main -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--block-rows", type=int, default=250_000, help="rows per tile")
    parser.add_argument("--terms-per-doc", type=float, default=3.0, help="mean non-zeros/row")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="512MiB", help="per worker, W-larger case")
    parser.add_argument("--rows", type=int, default=28_000_000, help="W-larger case")
    parser.add_argument("--iterations", type=int, default=5, help="W-larger case")
    parser.add_argument("--compare-rows", type=int, default=2_000_000)
    parser.add_argument("--compare-limit", default="1GiB", help="per worker")
    parser.add_argument("--compare-iterations", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2, help="fits of each in the comparison")
    parser.add_argument(
        "--laptop-rows", type=int, nargs="+", default=[2_000_000, 7_000_000, 28_000_000]
    )
    parser.add_argument("--laptop-iterations", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="laptop case")
    parser.add_argument("--dir", help="where to write the stores (default: a temp dir)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run (checks the script)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    if args.smoke:
        args.block_rows, args.rows, args.compare_rows = 2_000, 8_000, 4_000
        args.laptop_rows, args.repeats = [4_000, 8_000], 1
        args.iterations = args.compare_iterations = args.laptop_iterations = 3
        args.memory_limit = args.compare_limit = "1GiB"
    limit, compare_limit = parse_bytes(args.memory_limit), parse_bytes(args.compare_limit)
    for name in ("rows", "compare_rows"):
        setattr(args, name, -(-getattr(args, name) // args.block_rows) * args.block_rows)
    args.laptop_rows = [-(-r // args.block_rows) * args.block_rows for r in args.laptop_rows]

    root = tempfile.mkdtemp(prefix="dasknmf-factors-bench-", dir=args.dir)
    try:
        stores = Stores(root, args.block_rows, args.terms_per_doc)
        for rows in sorted({args.rows, args.compare_rows, *args.laptop_rows}):
            stores(rows)
        laptop: dict[int, tuple[float, int, int]] = {}
        spawn = multiprocessing.get_context("spawn")
        for rows in args.laptop_rows:
            log(f"laptop fit, {rows:,} rows")
            with ProcessPoolExecutor(1, mp_context=spawn) as child:
                store = os.path.join(root, f"laptop-{rows}")
                laptop[rows] = child.submit(
                    laptop_fit, stores(rows), args.k, args.laptop_iterations, store, args.threads
                ).result()
            shutil.rmtree(store, ignore_errors=True)
        compared: list[ClusterFit] = []
        with cluster(args.workers, compare_limit) as client:
            for repeat, factors in itertools.product(range(args.repeats), ("memory", "store")):
                store = os.path.join(root, f"compare-{factors}-{repeat}")
                compared.append(
                    fit_on_cluster(
                        client,
                        stores(args.compare_rows),
                        args.compare_rows,
                        args.k,
                        args.compare_iterations,
                        factors,
                        store,
                    )
                )
        with cluster(args.workers, limit) as client:
            large = fit_on_cluster(
                client,
                stores(args.rows),
                args.rows,
                args.k,
                args.iterations,
                "store",
                os.path.join(root, "large"),
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(machine("numpy", "scipy", "dask", "distributed", "zarr"))
    print()
    stored = print_compare(compared, args)
    print()
    print_large(large, stored, args, limit, compare_limit, stores)
    print()
    print_laptop(laptop, args)


if __name__ == "__main__":
    main()
