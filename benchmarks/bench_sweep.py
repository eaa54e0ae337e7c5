"""A rank sweep against the same fits run one after another.

On the built-in term-document matrix (``--docs`` × ``--terms``), ranks ``--ranks``
× ``--replicates`` random starts, the same iterations for every fit (``tol=0``):

* the wall time of ``RankSweep(..., holdout=0)`` (every replicate advanced together,
  one pass over V per iteration for all of them), against
* the wall time of the same fits run one after another with ``dasknmf.NMF`` (what
  cNMF, NMFk or a loop over ``NMF`` do),

each from the user's call to its return (statistics, initialisation, iterations and
gathering the factors included), in memory (V a SciPy matrix), out of core (V a
store read on every pass, ``persist=False``) and out of core with ``W`` in factor
stores (``factors='store'``), with the peak resident memory of the
process during each (sampled every 0.1 s). A second table gives the ratio against the
number of replicates per rank; there the one-after-another time is the measured
time of one replicate per rank times the number of replicates (the fits are
independent and cost the same whatever the seed).

Targets (issue 13): ratio ≤ 0.35 in memory, ≤ 0.25 out of core.

Run: ``python -m benchmarks.bench_sweep`` (``--docs``, ``--terms``, ``--ranks``,
``--replicates``, ``--iterations``, ``--curve``; ``--smoke`` for a tiny check).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import warnings
from functools import partial

import psutil
from sklearn.exceptions import ConvergenceWarning

import dasknmf
from benchmarks.common import machine
from dasknmf.datasets import term_document
from dasknmf.estimator.replicates import replicate_seeds


class PeakMemory:
    """Peak resident memory of this process while the ``with`` block runs."""

    def __enter__(self) -> PeakMemory:
        self._process = psutil.Process()
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def timed(fn) -> tuple[float, float]:
    """Seconds and peak RSS (GiB) of ``fn()``."""
    with PeakMemory() as memory:
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
    return seconds, memory.peak / 2**30


#: The ways ``V`` and ``W`` are held, in the order of the table.
CASES = ("in memory", "out of core", "out of core, W stored")


def one_by_one(X, ranks, seeds, params) -> None:
    for k in ranks:
        for seed in seeds:
            dasknmf.NMF(k, init="random", random_state=int(seed), **params).fit(X)


def together(X, ranks, replicates, params) -> dasknmf.RankSweep:
    sweep = dasknmf.RankSweep(ranks, n_replicates=replicates, holdout=0, random_state=0, **params)
    return sweep.fit(X)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--terms", type=int, default=50_000)
    parser.add_argument("--ranks", type=int, nargs="+", default=[5, 10, 15, 20])
    parser.add_argument("--replicates", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--solver", default="hals")
    parser.add_argument("--curve", type=int, nargs="*", default=[1, 2, 5, 10, 20])
    parser.add_argument(
        "--case",
        action="append",
        choices=CASES,
        help="run only this case (repeatable): a fresh process per case gives each its "
        "own peak memory, where a process's heap keeps what earlier cases freed",
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run (tests)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.docs, args.terms, args.ranks = 3_000, 800, [2, 3]
        args.replicates, args.iterations, args.curve = 2, 3, [1, 2]
    warnings.simplefilter("ignore", ConvergenceWarning)

    X = term_document(args.docs, args.terms, seed=0)
    params = dict(solver=args.solver, max_iter=args.iterations, tol=0)
    print(machine("dask", "scipy", "numpy"))
    print(
        f"V: {X.shape[0]:,} x {X.shape[1]:,}, {X.nnz:,} non-zeros; ranks {args.ranks} x "
        f"{args.replicates} replicates (sum k = {sum(args.ranks) * args.replicates}), "
        f"{args.iterations} iterations, solver={args.solver!r}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "V.zarr")
        dasknmf.write_matrix(X, store)
        cases = {
            "in memory": (X, {}),
            "out of core": (store, {"persist": False}),
            # W (the sweep's m × Σk stack, each fit's m × k) in factor stores.
            "out of core, W stored": (store, {"persist": False, "factors": "store"}),
        }
        cases = {name: case for name, case in cases.items() if name in (args.case or CASES)}
        print()
        print("| V | one after another (s) | sweep (s) | ratio | peak RSS GiB (one / sweep) |")
        print("| --- | --- | --- | --- | --- |")
        for name, (data, extra) in cases.items():
            options = {**params, **extra}
            sweep_seeds = replicate_seeds(0, args.replicates)[1]
            t_alone, m_alone = timed(partial(one_by_one, data, args.ranks, sweep_seeds, options))
            t_sweep, m_sweep = timed(partial(together, data, args.ranks, args.replicates, options))
            print(
                f"| {name} | {t_alone:.1f} | {t_sweep:.1f} | {t_sweep / t_alone:.2f} | "
                f"{m_alone:.2f} / {m_sweep:.2f} |"
            )

        print()
        print("| replicates per rank | one after another (s) | sweep (s) | ratio |")
        print("| --- | --- | --- | --- |")
        t_one, _ = timed(partial(one_by_one, X, args.ranks, [0], params))
        for replicates in args.curve:
            t_sweep, _ = timed(partial(together, X, args.ranks, replicates, params))
            t_alone = t_one * replicates
            print(f"| {replicates} | {t_alone:.1f} | {t_sweep:.1f} | {t_sweep / t_alone:.2f} |")


if __name__ == "__main__":
    main()
