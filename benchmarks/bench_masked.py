"""Missing-entry NMF on ratings: speed per iteration and held-out accuracy.

On a synthetic users × items ratings matrix (:func:`dasknmf.datasets.ratings`,
≈ 4.8M ratings by default) with 20% of the ratings held out, measures in one run:

* s/iteration of ``dasknmf.NMF(missing="ignore", solver="mu")``, against a bare SciPy loop of the
  same masked updates (no dask, no tiling: the floor for this arithmetic), and
  against dasknmf's plain Frobenius MU on the same sparse matrix (which reads the
  unobserved entries as zeros);
* held-out RMSE after the same number of iterations for the masked and the plain
  model, and of predicting the global mean rating.

Per-iteration cost is (time of a long fit − time of a short fit) / (difference in
iterations), the implementations measured alternately in each repeat.

Run: ``python benchmarks/bench_masked.py`` (``--small`` for a quick look).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

import dasknmf
from benchmarks.common import machine
from dasknmf.datasets import ratings

EPS = np.finfo(np.float32).eps


def split(X: sp.csr_matrix, fraction: float, seed: int):
    """Train matrix and held-out (rows, cols, values), entry by entry."""
    coo = X.tocoo()
    held = np.random.default_rng(seed).random(coo.nnz) < fraction
    train = sp.csr_matrix(
        (coo.data[~held], (coo.row[~held], coo.col[~held])), shape=X.shape, dtype=X.dtype
    )
    return train, (coo.row[held], coo.col[held], coo.data[held])


def bare_masked_mu(X: sp.csr_matrix, W, H, n_iter: int):
    """The masked Frobenius updates written directly on one CSR matrix."""
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    cols = X.indices
    Xt = X.T.tocsr()
    for _ in range(n_iter):
        wh = np.einsum("pk,kp->p", W[rows], H[:, cols])
        S = sp.csr_matrix((wh, X.indices, X.indptr), shape=X.shape)
        den = S @ H.T
        den[den == 0] = EPS
        W = W * (X @ H.T) / den
        wh = np.einsum("pk,kp->p", W[rows], H[:, cols])
        S = sp.csr_matrix((wh, X.indices, X.indptr), shape=X.shape)
        den = (S.T @ W).T
        den[den == 0] = EPS
        H = H * (Xt @ W).T / den
    return W, H


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="20,000 × 5,000, 500k ratings")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quality-iter", type=int, default=100)
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny run that only checks the script works"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats, args.quality_iter = 1, 10
    warnings.simplefilter("ignore", ConvergenceWarning)

    size = (20_000, 5_000, 500_000) if args.small else (100_000, 20_000, 5_000_000)
    size = (2_000, 500, 20_000) if args.smoke else size
    X, _, _ = ratings(*size, seed=0)
    train, (hr, hc, hv) = split(X, 0.2, seed=1)
    k, short, long = args.k, 5, 25
    common = dict(n_components=k, init="random", random_state=0, tol=0)
    rng = np.random.default_rng(0)
    avg = np.sqrt(train.data.mean() / k)
    W0 = (avg * rng.random((X.shape[0], k))).astype(np.float32)
    H0 = (avg * rng.random((k, X.shape[1]))).astype(np.float32)

    def dask_fit(n, **kw):
        return lambda: dasknmf.NMF(max_iter=n, **common, **kw).fit(train)

    # Warm-up: compiles the sampled-product loop and loads the modules outside timing.
    dask_fit(2, missing="ignore", solver="mu")()
    samples = []
    for _ in range(args.repeats):
        masked = timed(dask_fit(long, missing="ignore", solver="mu"))
        masked -= timed(dask_fit(short, missing="ignore", solver="mu"))
        bare = timed(lambda: bare_masked_mu(train, W0, H0, long - short))
        plain = timed(dask_fit(long)) - timed(dask_fit(short))
        samples.append(tuple(t / (long - short) for t in (masked, bare, plain)))
    t_masked, t_bare, t_plain = (statistics.median(s[i] for s in samples) for i in range(3))

    n = args.quality_iter
    m_model = dasknmf.NMF(max_iter=n, missing="ignore", solver="mu", **common).fit(train)
    p_model = dasknmf.NMF(max_iter=n, **common)
    W_plain = p_model.fit_transform(train)
    plain_pred = np.einsum("pk,kp->p", W_plain[hr], p_model.components_[:, hc])
    rmse_masked = m_model.rmse((hr, hc, hv))
    rmse_plain = float(np.sqrt(np.mean((plain_pred - hv) ** 2)))
    rmse_mean = float(np.sqrt(np.mean((hv - train.data.mean()) ** 2)))

    print(machine("numpy", "scipy"))
    print(
        f"ratings: {X.shape[0]:,} users × {X.shape[1]:,} items, {train.nnz:,} train / "
        f"{hv.size:,} held-out ratings, k = {k}"
    )
    print()
    print("| implementation | s / iteration | ratio to bare SciPy loop |")
    print("| --- | --- | --- |")
    print(f"| bare SciPy masked MU (no dask, one process) | {t_bare:.4f} | 1.00 |")
    print(f"| dasknmf NMF(missing='ignore') | {t_masked:.4f} | {t_masked / t_bare:.2f} |")
    print(f"| dasknmf NMF() (unobserved read as 0) | {t_plain:.4f} | {t_plain / t_bare:.2f} |")
    print()
    print(f"| model ({n} iterations) | held-out RMSE | ratio to global mean |")
    print("| --- | --- | --- |")
    print(f"| global mean rating | {rmse_mean:.4f} | 1.00 |")
    print(f"| NMF(missing='ignore') | {rmse_masked:.4f} | {rmse_masked / rmse_mean:.2f} |")
    print(f"| NMF() (unobserved as 0) | {rmse_plain:.4f} | {rmse_plain / rmse_mean:.2f} |")
    print()
    print(
        f"median of {args.repeats} interleaved repeats (long − short fit, {long} − {short} "
        "iterations)"
    )


if __name__ == "__main__":
    main()
