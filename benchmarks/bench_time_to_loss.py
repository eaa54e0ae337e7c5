"""Time to reach a loss: dasknmf MU and HALS against scikit-learn's mu and cd.

The target is the error scikit-learn's coordinate descent (``solver="cd"``,
``shuffle=False``) reaches after 100 iterations on the term-document benchmark
matrix. Every method starts from the same factors; the table gives the iterations and
the wall time each needs to get there (``>`` when it has not after ``--cap``
iterations). dasknmf's times come from its per-iteration callback, so they include
computing the error every iteration (which a normal fit does only every
``check_every`` iterations).

Run: ``python -m benchmarks.bench_time_to_loss`` (``--small`` for a quick look).
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
from sklearn.decomposition import NMF as SklearnNMF
from sklearn.exceptions import ConvergenceWarning

import dasknmf
from benchmarks.common import machine
from dasknmf.datasets import term_document


def initial_factors(X, k: int, seed: int = 0):
    """scikit-learn's 'random' initialisation, drawn once and shared by every method."""
    rng = np.random.default_rng(seed)
    scale = math.sqrt(X.mean() / k)
    W = np.abs(scale * rng.standard_normal((X.shape[0], k))).astype(X.dtype)
    H = np.abs(scale * rng.standard_normal((k, X.shape[1]))).astype(X.dtype)
    return W, H


def sklearn_run(X, W0, H0, solver: str, n_iter: int) -> tuple[float, float]:
    """(seconds, final error) of scikit-learn's NMF for exactly ``n_iter`` iterations."""
    extra = {"shuffle": False} if solver == "cd" else {}
    model = SklearnNMF(W0.shape[1], solver=solver, init="custom", max_iter=n_iter, tol=0, **extra)
    start = time.perf_counter()
    model.fit(X, W=W0.copy(), H=H0.copy())
    return time.perf_counter() - start, model.reconstruction_err_


def dasknmf_curve(X, W0, H0, solver: str, n_iter: int) -> list[tuple[int, float, float]]:
    """(iteration, seconds since fit started, error) for every iteration."""
    seen = []
    model = dasknmf.NMF(
        W0.shape[1], solver=solver, init="custom", max_iter=n_iter, tol=0, callbacks=[seen.append]
    )
    start = time.perf_counter()
    model.fit(X, W=W0, H=H0)
    # IterationInfo.elapsed starts with the loop; add validation and set-up before it.
    setup = (time.perf_counter() - start) - seen[-1].elapsed
    return [(i.iteration, setup + i.elapsed, i.error) for i in seen]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="20,000 × 5,000 matrix")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--cap", type=int, default=400, help="most iterations per method")
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny run that only checks the script works"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.cap = 20
    warnings.simplefilter("ignore", ConvergenceWarning)

    shape = (20_000, 5_000) if args.small else (200_000, 50_000)
    X = term_document(*((2_000, 500) if args.smoke else shape))
    W0, H0 = initial_factors(X, args.k)
    t_cd, target = sklearn_run(X, W0, H0, "cd", 100)

    rows = [("scikit-learn NMF(solver='cd', shuffle=False)", "100", t_cd)]
    for solver in ("hals", "mu"):
        curve = dasknmf_curve(X, W0, H0, solver, args.cap)
        hit = next(((i, t) for i, t, e in curve if e <= target), None)
        if hit:
            rows.append((f"dasknmf.NMF(solver='{solver}')", str(hit[0]), hit[1]))
        else:
            rows.append((f"dasknmf.NMF(solver='{solver}')", f"> {args.cap}", curve[-1][1]))
    t_mu, err_mu = sklearn_run(X, W0, H0, "mu", args.cap)
    reached = "" if err_mu <= target else "> "
    rows.insert(1, ("scikit-learn NMF(solver='mu')", f"{reached}{args.cap}", t_mu))

    print(machine("numpy", "scipy", "scikit-learn"))
    print(
        f"matrix: {X.shape[0]:,} × {X.shape[1]:,} CSR float32, {X.nnz:,} non-zeros, "
        f"k = {args.k}; target error {target:.6g} (scikit-learn cd, 100 iterations)"
    )
    print()
    print("| method | iterations to target | seconds to target | ratio to scikit-learn cd |")
    print("| --- | --- | --- | --- |")
    for name, iterations, seconds in rows:
        prefix = ">" if iterations.startswith(">") else ""
        print(f"| {name} | {iterations} | {prefix}{seconds:.2f} | {prefix}{seconds / t_cd:.2f} |")


if __name__ == "__main__":
    main()
