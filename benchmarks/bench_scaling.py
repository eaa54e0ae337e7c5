"""Scaling: s/iteration as V's non-zeros grow ×2, ×4, ×8, and as worker processes go
from 1 to 2; the bytes the workers send each other per iteration.

The matrices are the first ``--rows × f`` documents (f = 1, 2, 4, 8) of the
term-document benchmark matrix (50,000 terms; ×8 is the 200,000 × 50,000, 7.4M
non-zero matrix of ``bench_mu``), each written to a store with the same tile shape
(``--tile-rows`` rows, all columns), so that more data means more tiles, as it does
for a user's growing corpus. Each is fitted in memory (``persist=True``) from its
store on a ``LocalCluster`` of 1-thread worker processes; in one run this measures:

* s/iteration of each size on ``--workers`` processes, against the smallest;
* s/iteration of the largest on 1 process and on ``--workers`` processes, and with
  dask's threaded scheduler in this process on the same tiles (the reference without
  a cluster's transfers and scheduling);
* the bytes that arrived at workers from other workers per iteration (the transfers
  distributed's workers log, as its dashboard shows them), against the size of both
  factors, ``(m + n) · k · 4`` bytes.

Per-iteration figures are ``(t(long) − t(short)) / (long − short)`` of two fits, the
median of ``--repeats``. Run: ``python -m benchmarks.bench_scaling`` (``--smoke`` for a
tiny check).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import warnings
from dataclasses import dataclass

import dask
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning

import dasknmf
from benchmarks.common import machine, per_iteration
from dasknmf.datasets import term_document

#: Transfers a worker keeps in its log (distributed's default, 1,000, could drop some
#: of a long fit's); the count is checked against it.
LOG_LENGTH = 1_000_000


@dataclass(frozen=True)
class Measured:
    seconds: float  # per iteration
    transferred: float  # bytes between workers per iteration


def _clear_transfer_log(dask_worker) -> None:
    dask_worker.transfer_incoming_log.clear()


def _transfer_log(dask_worker) -> tuple[int, int]:
    log = dask_worker.transfer_incoming_log
    return sum(entry["total"] for entry in log), len(log)


def transferred(client: Client) -> int:
    """Bytes the workers received from one another since the logs were cleared."""
    logs = client.run(_transfer_log).values()
    if any(count >= LOG_LENGTH for _, count in logs):
        raise RuntimeError("a worker's transfer log filled up: raise LOG_LENGTH")
    return sum(total for total, _ in logs)


def measure(client: Client, path: str, k: int, short: int, long: int) -> Measured:
    """s/iteration and bytes between workers per iteration of an in-memory fit."""

    def fit(n: int, callbacks=()) -> None:
        model = dasknmf.NMF(
            k,
            init="random",
            random_state=0,
            tol=0,
            max_iter=n,
            persist=True,
            callbacks=callbacks,
        )
        model.fit(path)

    seconds = per_iteration(fit, short, long)
    # Bytes from a fit of its own, counted from the end of iteration ``short`` to the end
    # of ``long``: reading and placing V's tiles before the loop moves data too. (The
    # callback makes every iteration compute its error: a few k × k sums more.)
    counted: list[int] = []

    def count(info) -> None:
        if info.iteration == short:
            client.run(_clear_transfer_log)
        elif info.iteration == long:
            counted.append(transferred(client))

    fit(long, [count])
    return Measured(seconds, counted[-1] / (long - short))


def median(samples: list[Measured]) -> Measured:
    return Measured(
        statistics.median(s.seconds for s in samples),
        statistics.median(s.transferred for s in samples),
    )


def on_cluster(workers: int, stores: dict[int, str], args) -> dict[int, Measured]:
    """The per-iteration measurements of each store on ``workers`` processes."""
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        samples: dict[int, list[Measured]] = {f: [] for f in stores}
        for _ in range(args.repeats):  # interleaved: a slow spell hits every size alike
            for f, path in stores.items():
                samples[f].append(measure(client, path, args.k, args.short, args.long))
    return {f: median(s) for f, s in samples.items()}


def on_threads(path: str, args) -> float:
    """s/iteration of the same in-memory fit with dask's threaded scheduler in this
    process (``--workers`` threads): the reference without a cluster's costs."""

    def fit(n: int) -> None:
        dasknmf.NMF(args.k, init="random", random_state=0, tol=0, max_iter=n, persist=True).fit(
            path
        )

    with dask.config.set(scheduler="threads", num_workers=args.workers):
        return statistics.median(
            per_iteration(fit, args.short, args.long) for _ in range(args.repeats)
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25_000, help="documents at ×1")
    parser.add_argument("--terms", type=int, default=50_000)
    parser.add_argument("--tile-rows", type=int, default=12_500, help="rows per tile")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--workers", type=int, default=2, help="processes, 1 thread each")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--short", type=int, default=5)
    parser.add_argument("--long", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a tiny run (checks the script)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    if args.smoke:
        args.rows, args.terms, args.tile_rows, args.factors = 1_000, 2_000, 500, [1, 2]
        args.short, args.long, args.repeats, args.k = 1, 3, 1, 5
    if args.workers < 2:
        parser.error("--workers must be at least 2: the run compares 1 process against it")
    os.environ["DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH"] = str(LOG_LENGTH)
    dask.config.set({"distributed.admin.low-level-log-length": LOG_LENGTH})

    largest = max(args.factors)
    X = term_document(args.rows * largest, args.terms, seed=0)
    root = tempfile.mkdtemp(prefix="dasknmf-scaling-")
    try:
        stores, shapes = {}, {}
        for f in sorted(args.factors):
            part = X[: args.rows * f]
            stores[f] = os.path.join(root, f"x{f}.zarr")
            dasknmf.write_matrix(part, stores[f], chunks=(args.tile_rows, args.terms))
            shapes[f] = (part.shape, part.nnz)
        many = on_cluster(args.workers, stores, args)
        one = on_cluster(1, {largest: stores[largest]}, args)[largest]
        threaded = on_threads(stores[largest], args)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    base = min(args.factors)
    (m0, n), nnz0 = shapes[base]
    print(machine("numpy", "scipy", "dask", "distributed"))
    print(
        f"matrices: the first {m0:,} × f documents of a term-document matrix with {n:,} "
        f"terms, tiles of {args.tile_rows:,} × {n:,}; k = {args.k}; in memory "
        f"(persist=True); LocalCluster, 1 thread per worker; median of {args.repeats}"
    )
    print()
    print(f"s/iteration as the non-zeros grow ({args.workers} worker processes):")
    print()
    print("| f | rows | non-zeros | tiles | s / iteration | ratio to ×1 | per non-zero, to ×1 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for f in sorted(args.factors):
        (m, _), nnz = shapes[f]
        ratio = many[f].seconds / many[base].seconds
        tiles = -(-m // args.tile_rows)
        print(
            f"| ×{f} | {m:,} | {nnz:,} | {tiles} | {many[f].seconds:.4f} | {ratio:.2f} "
            f"| {ratio / (nnz / nnz0):.2f} |"
        )
    print()
    (m, _), nnz = shapes[largest]
    print(f"worker processes on ×{largest} ({nnz:,} non-zeros):")
    print()
    print("| scheduler | s / iteration | speed-up | ratio to threaded |")
    print("| --- | --- | --- | --- |")
    two = many[largest].seconds
    print(f"| 1 worker process | {one.seconds:.4f} | 1.00 | {one.seconds / threaded:.2f} |")
    print(
        f"| {args.workers} worker processes | {two:.4f} | {one.seconds / two:.2f} "
        f"| {two / threaded:.2f} |"
    )
    print(
        f"| threaded, {args.workers} threads in this process (same tiles) | {threaded:.4f} "
        f"| {one.seconds / threaded:.2f} | 1.00 |"
    )
    print()
    print(f"bytes between workers per iteration ({args.workers} worker processes):")
    print()
    print("| f | (m + n) · k · 4 | transferred / iteration | ratio |")
    print("| --- | --- | --- | --- |")
    for f in sorted(args.factors):
        (m, _), _ = shapes[f]
        factors = (m + n) * args.k * 4
        moved = many[f].transferred
        mib = f"{factors / 2**20:.2f} MiB | {moved / 2**20:.2f} MiB"
        print(f"| ×{f} | {mib} | {moved / factors:.2f} |")


if __name__ == "__main__":
    main()
