"""Time to the answer: the whole fit and the initialisation, dasknmf against scikit-learn.

In memory, on the built-in term-document matrix, every parameter at its default
(``init=None`` is ``nndsvda`` in both), measured alternately in each repeat:

- the initialisation alone: scikit-learn's ``_initialize_nmf(X, k, 'nndsvda')``
  against ``dasknmf.NMF(k, max_iter=0).fit(X)`` (input checks, the statistics pass
  and the initialisation: everything a fit does before its first iteration);
- the whole fit, ``NMF(k, random_state=0).fit(X)``: MU against scikit-learn's MU,
  and ``solver='hals'`` against scikit-learn's ``'cd'``, with the error each reaches.

Out of core, the matrix is written to a store and fitted with ``persist=False``
(each pass reads the store): the initialisation (a ``max_iter=2, tol=0`` fit with
``nndsvda`` less the same fit from ``init='random'``, which has the same statistics
pass, reads nothing of its own, and whose first iteration gives the initial error
too) against two more iterations (``max_iter=4`` less the same baseline).

``--corpus gcide`` runs both on a real corpus instead: the GNU Collaborative
International Dictionary of English, one document per entry
(:mod:`benchmarks.corpora`).

Wall time and CPU time (``time.process_time``, all threads of the process) are both
printed: on a shared machine wall time varies with the neighbours, CPU time less.
Ratios are medians of the per-repeat ratios.

Run: ``python -m benchmarks.bench_time_to_answer`` (``--small`` for a quick look).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from sklearn.decomposition import NMF as SklearnNMF
from sklearn.decomposition._nmf import _initialize_nmf
from sklearn.exceptions import ConvergenceWarning

import dasknmf
from benchmarks.common import machine
from benchmarks.corpora import gcide
from dasknmf.datasets import term_document


def clock(fn: Callable[[], object]) -> tuple[float, float, object]:
    """``(wall seconds, CPU seconds, result)`` of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _row(name: str, pairs: list[tuple[tuple, tuple]], error: str = "") -> str:
    """A table row: medians of dasknmf's and the reference's wall and CPU seconds and
    the median per-repeat ratios."""
    ours_wall = statistics.median(o[0] for o, _ in pairs)
    ref_wall = statistics.median(r[0] for _, r in pairs)
    ours_cpu = statistics.median(o[1] for o, _ in pairs)
    ref_cpu = statistics.median(r[1] for _, r in pairs)
    wall_ratio = statistics.median(o[0] / r[0] for o, r in pairs)
    cpu_ratio = statistics.median(o[1] / r[1] for o, r in pairs)
    return (
        f"| {name} | {ours_wall:.2f} | {ref_wall:.2f} | {wall_ratio:.2f} | "
        f"{ours_cpu:.2f} | {ref_cpu:.2f} | {cpu_ratio:.2f} |{error}"
    )


def in_memory(X, k: int, repeats: int) -> list[str]:
    init_pairs, mu_pairs, hals_pairs = [], [], []
    errors = {}
    # Imports, compiled kernels and thread pools warmed up outside the timings.
    dasknmf.NMF(k, random_state=0, max_iter=2).fit(X[:2_000])
    SklearnNMF(k, random_state=0, max_iter=2).fit(X[:2_000])
    for _ in range(repeats):
        ref = clock(lambda: _initialize_nmf(X, k, init="nndsvda", random_state=0))
        ours = clock(lambda: dasknmf.NMF(k, random_state=0, max_iter=0).fit(X))
        init_pairs.append((ours, ref))
        for pairs, ours_solver, ref_solver in (
            (mu_pairs, "auto", "mu"),
            (hals_pairs, "hals", "cd"),
        ):
            ref = clock(lambda s=ref_solver: SklearnNMF(k, random_state=0, solver=s).fit(X))
            ours = clock(lambda s=ours_solver: dasknmf.NMF(k, random_state=0, solver=s).fit(X))
            pairs.append((ours, ref))
            errors[ref_solver] = (
                ours[2].reconstruction_err_,
                ours[2].n_iter_,
                ref[2].reconstruction_err_,
                ref[2].n_iter_,
            )

    def reached(name: str) -> str:
        ours_err, ours_it, ref_err, ref_it = errors[name]
        return f" {ours_err:.6g} ({ours_it} it) / {ref_err:.6g} ({ref_it} it) |"

    return [
        "| in memory | dasknmf wall s | scikit-learn wall s | wall ratio | dasknmf CPU s "
        "| scikit-learn CPU s | CPU ratio | error reached, dasknmf / scikit-learn |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        _row("initialisation (nndsvda)", init_pairs, " – |"),
        _row("whole fit, MU", mu_pairs, reached("mu")),
        _row("whole fit, HALS / cd", hals_pairs, reached("cd")),
    ]


def out_of_core(X, k: int, repeats: int, directory: Path) -> list[str]:
    store = directory / "V.zarr"
    dasknmf.write_matrix(X, store)
    common = dict(n_components=k, random_state=0, persist=False)

    def fit(**params):
        return clock(lambda: dasknmf.NMF(**common, **params).fit(str(store)))

    # nndsvda's cost is what it adds to a fit from random factors: both fits make
    # the statistics pass, and their first iteration's pass gives the initial error
    # (a fit of 0 iterations would read V once more for it).
    samples = []
    for _ in range(repeats):
        base = fit(init="random", max_iter=2, tol=0)
        init = fit(init="nndsvda", max_iter=2, tol=0)
        more = fit(init="random", max_iter=4, tol=0)
        samples.append((base, init, more))

    def median(index: int, part: int, minus_base: bool = True) -> float:
        return statistics.median(
            s[index][part] - (s[0][part] if minus_base else 0.0) for s in samples
        )

    def ratio(part: int) -> str:
        ratios = [
            (s[1][part] - s[0][part]) / (s[2][part] - s[0][part])
            for s in samples
            if s[2][part] - s[0][part] > 0
        ]
        return f"{statistics.median(ratios):.2f}" if ratios else "n/a (0.0)"

    return [
        "| out of core (persist=False) | wall s | CPU s |",
        "| --- | --- | --- |",
        f"| fit from random factors, 2 iterations (statistics, 2 passes, fixed costs) | "
        f"{median(0, 0, False):.2f} | {median(0, 1, False):.2f} |",
        f"| initialisation (nndsvda), beyond random factors | "
        f"{median(1, 0):.2f} | {median(1, 1):.2f} |",
        f"| two more iterations | {median(2, 0):.2f} | {median(2, 1):.2f} |",
        f"| ratio: initialisation / two iterations | {ratio(0)} | {ratio(1)} |",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus",
        choices=("term-document", "gcide"),
        default="term-document",
        help="the built-in generator's 200,000 × 50,000 matrix, or the real GCIDE "
        "dictionary corpus (benchmarks/corpora.py; apt-get install dict-gcide)",
    )
    parser.add_argument("--small", action="store_true", help="20,000 × 5,000 matrix")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-out-of-core", action="store_true", help="in memory only")
    parser.add_argument("--no-in-memory", action="store_true", help="out of core only")
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny run that only checks the script works"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats = 1
    warnings.simplefilter("ignore", ConvergenceWarning)
    shape = (20_000, 5_000) if args.small else (200_000, 50_000)
    shape = (2_000, 500) if args.smoke else shape
    X = gcide()[0] if args.corpus == "gcide" and not args.smoke else term_document(*shape)

    print(machine("numpy", "scipy", "scikit-learn"))
    name = "GCIDE dictionary corpus" if args.corpus == "gcide" else "term-document generator"
    print(
        f"matrix ({name}): {X.shape[0]:,} × {X.shape[1]:,} CSR float32, {X.nnz:,} non-zeros, "
        f"k = {args.k}"
    )
    print(f"medians of {args.repeats} interleaved repeats; ratios are dasknmf / reference")
    if not args.no_in_memory:
        print()
        print("\n".join(in_memory(X, args.k, args.repeats)))
    if not args.no_out_of_core:
        print()
        with tempfile.TemporaryDirectory() as directory:
            print("\n".join(out_of_core(X, args.k, args.repeats, Path(directory))))


if __name__ == "__main__":
    main()
