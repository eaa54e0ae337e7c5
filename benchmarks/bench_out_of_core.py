"""Out of core on a local cluster: V several times larger than the workers' memory.

A term-document matrix of ``--blocks`` × 100,000 documents (≈ 3.7M non-zeros, 28 MiB
of CSR per block) is generated block by block and written to a store, never held
whole. On a ``LocalCluster`` of ``--workers`` processes with ``--memory-limit`` each,
this measures in one run:

* the time to read every tile of V once (decode and checksum, no arithmetic);
* s/iteration of ``NMF(persist=False)``: every iteration re-reads V (one pass);
* s/iteration in memory (``persist=True``) on the first blocks of V, as many as fit
  in a quarter of the workers' memory, scaled up by the ratio of non-zeros;
* the peak resident memory of each worker process during the out-of-core fit
  (sampled every 0.2 s with psutil), against its limit and V's in-memory size.

Targets (issue 5): out of core ≤ 2 × in memory, and ≤ 1.5 × (read once + in memory).

Run: ``python -m benchmarks.bench_out_of_core`` (``--blocks``, ``--workers``,
``--memory-limit``, ``--dir`` for the store; ``--smoke`` for a tiny check).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import warnings

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp
from dask.utils import parse_bytes
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning

import dasknmf
from benchmarks.common import WorkerPeaks, machine, per_iteration
from dasknmf.datasets import term_document

N_TERMS = 50_000


def _block(rows: int, terms_per_doc: float, block_info=None) -> sp.csr_matrix:
    """Block ``i`` of the matrix: its own documents, seeded by its index."""
    i = block_info[None]["chunk-location"][0]
    return term_document(rows, N_TERMS, mean_terms_per_doc=terms_per_doc, seed=1000 + i)


def write_store(path: str, blocks: int, rows: int, terms_per_doc: float) -> dasknmf.MatrixInfo:
    lazy = da.map_blocks(
        _block,
        rows,
        terms_per_doc,
        chunks=((rows,) * blocks, (N_TERMS,)),
        dtype=np.float32,
        meta=sp.csr_matrix((0, 0), dtype=np.float32),
    )
    dasknmf.write_matrix(lazy, path, chunks=(rows, N_TERMS))
    return dasknmf.matrix_info(path)


def stored_entries(V: da.Array) -> da.Array:
    """Σ nnz over the tiles of ``V`` (lazy): reading every tile and nothing else."""
    return V.map_blocks(lambda t: np.array([[t.nnz]]), chunks=(1, 1), dtype=np.int64).sum()


def read_once(path: str) -> float:
    counts = stored_entries(dasknmf.open_matrix(path))
    start = time.perf_counter()
    counts.compute()
    return time.perf_counter() - start


def fit_seconds(X, k: int, short: int, long: int, persist: bool) -> float:
    """Seconds per iteration of ``NMF(k, persist=persist)`` on ``X``."""

    def fit(n: int) -> None:
        model = dasknmf.NMF(k, init="random", random_state=0, tol=0, max_iter=n, persist=persist)
        model.fit(X)

    return per_iteration(fit, short, long)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=40, help="blocks of documents")
    parser.add_argument("--rows", type=int, default=50_000, help="documents per block")
    parser.add_argument("--terms-per-doc", type=float, default=300.0, help="mean, before merging")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="768MiB", help="per worker")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--dir", help="where to write the store (default: a temp dir)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run (checks the script)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    if args.smoke:
        args.blocks, args.rows, args.memory_limit = 4, 2_000, "1GiB"
    short, long = (1, 2) if args.smoke else (2, 5)
    limit = parse_bytes(args.memory_limit)
    # The factors live in the workers' memory (persisted blocks of W, m · k values):
    # V can be out of core, W cannot. Refuse a setup where W alone would crowd them.
    w_bytes = args.blocks * args.rows * args.k * 4
    if w_bytes > 0.25 * limit * args.workers:
        raise SystemExit(
            f"W ({w_bytes / 2**20:.0f} MiB) would take more than a quarter of the workers' "
            f"memory ({args.workers} × {limit / 2**20:.0f} MiB): fewer --rows/--blocks, "
            "a smaller --k, or more memory"
        )

    root = tempfile.mkdtemp(prefix="dasknmf-ooc-", dir=args.dir)
    try:
        path = os.path.join(root, "V.zarr")
        start = time.perf_counter()
        with dask.config.set(scheduler="threads"):
            info = write_store(path, args.blocks, args.rows, args.terms_per_doc)
        written = time.perf_counter() - start
        v_bytes = info.nnz * 8 + info.shape[0] * 4
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                memory_limit=limit,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            t_read = min(read_once(path) for _ in range(2))
            with WorkerPeaks(client) as peak:
                t_ooc = fit_seconds(path, args.k, short, long, persist=False)
            fit_blocks = max(
                1, min(args.blocks, int(limit * args.workers / 4 // (v_bytes / args.blocks)))
            )
            small = dasknmf.open_matrix(path)[: fit_blocks * args.rows]
            small_nnz = int(stored_entries(small).compute())
            t_small = fit_seconds(small, args.k, short, long, persist=True)
            t_mem = t_small * info.nnz / small_nnz
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(machine("numpy", "scipy", "dask", "distributed", "zarr"))
    print(
        f"V: {info.shape[0]:,} × {info.shape[1]:,}, {info.nnz:,} non-zeros, "
        f"{v_bytes / 2**30:.2f} GiB as CSR, {info.bytes_on_disk / 2**30:.2f} GiB on disk "
        f"(written in {written:.0f} s); k = {args.k}"
    )
    print(
        f"cluster: {args.workers} worker processes × 1 thread, memory limit "
        f"{limit / 2**30:.2f} GiB each: V is {v_bytes / (limit * args.workers):.1f}× "
        "the workers' memory"
    )
    print()
    print("| measurement | seconds | ratio to in memory |")
    print("| --- | --- | --- |")
    print(
        f"| in memory, s/iteration (first {fit_blocks} blocks, scaled by nnz) "
        f"| {t_mem:.3f} | 1.00 |"
    )
    print(f"| read V once (all tiles, decode + checksum) | {t_read:.3f} | {t_read / t_mem:.2f} |")
    print(f"| out of core, s/iteration | {t_ooc:.3f} | {t_ooc / t_mem:.2f} |")
    print(f"| out of core / (read once + in memory) | | {t_ooc / (t_read + t_mem):.2f} |")
    print()
    print("| worker | peak resident memory | share of its limit | share of V |")
    print("| --- | --- | --- | --- |")
    for worker, rss in sorted(peak.peak.items()):
        print(f"| {worker} | {rss / 2**20:.0f} MiB | {rss / limit:.2f} | {rss / v_bytes:.3f} |")


if __name__ == "__main__":
    main()
