"""dasknmf on a GPU against a bare CuPy loop of the same updates, and against the CPU.

On the term-document benchmark matrix (``--docs`` × 50,000, ≈ 7.4M non-zeros at the
default 200,000 documents, k = 20, float32) and on ``--factors`` times as many
documents, one run measures s/iteration of:

* the floor: a bare loop of the same multiplicative updates on the whole matrix, no
  dask, no checks (CuPy on the GPU; SciPy when there is no GPU, to keep the script
  working anywhere);
* ``dasknmf.NMF(device='cuda')`` with its default tiling (an in-memory matrix below
  2 GiB is one tile, run without a scheduler), and with ``--tiles`` row blocks on dask's
  threaded scheduler (the path a store or a larger matrix takes);
* ``dasknmf.NMF()`` on the CPU (the threaded scheduler on every core);

and the relative difference between the GPU and CPU fits' final errors after the same
iterations from the same start. Per-iteration figures are ``(t(long) − t(short)) /
(long − short)`` of two fits (each fit ends by copying its results to the host, which
waits for the GPU), the median of ``--repeats``.

Run: ``python -m benchmarks.bench_gpu`` (``--smoke`` for a tiny check, which without a
GPU measures the CPU rows only).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

import dasknmf
from benchmarks.common import machine, per_iteration
from dasknmf.datasets import term_document
from dasknmf.devices import require_gpu
from dasknmf.errors import DeviceUnavailableError

EPS = float(np.finfo(np.float32).eps)


def gpu_reason() -> str | None:
    """Why no GPU can be measured here, or ``None``."""
    try:
        require_gpu()
    except DeviceUnavailableError as exc:
        return str(exc)
    return None


def bare_loop(X: sp.csr_matrix, k: int, on_gpu: bool) -> Callable[[int], None]:
    """``run(n)``: n multiplicative updates of W then H on the whole matrix, with
    nothing but the array module's products (the floor any implementation pays)."""
    rng = np.random.default_rng(0)
    W0 = rng.random((X.shape[0], k), dtype=np.float32)
    H0 = rng.random((k, X.shape[1]), dtype=np.float32)
    if on_gpu:
        import cupy
        import cupyx.scipy.sparse

        xp, V = cupy, cupyx.scipy.sparse.csr_matrix(X)
        sync = cupy.cuda.Device().synchronize
    else:
        xp, V, sync = np, X, lambda: None
    VT = V.T  # CSC view, as the kernels use

    def run(n: int) -> None:
        W, H = xp.asarray(W0), xp.asarray(H0)
        for _ in range(n):
            W *= (V @ H.T) / xp.maximum(W @ (H @ H.T), EPS)
            H *= (VT @ W).T / xp.maximum((W.T @ W) @ H, EPS)
        sync()

    return run


def fit_of(X, k: int, **params) -> Callable[[int], dasknmf.NMF]:
    def fit(n: int) -> dasknmf.NMF:
        model = dasknmf.NMF(k, init="random", random_state=0, tol=0, max_iter=n, **params)
        return model.fit(X)

    return fit


def measure(X, args, on_gpu: bool) -> tuple[dict[str, float], float | None]:
    """s/iteration of each row, and the GPU fit's final error relative to the CPU's."""
    floor = f"bare {'CuPy' if on_gpu else 'SciPy'} loop (floor)"
    rows_per_tile = -(-X.shape[0] // args.tiles)
    runs: dict[str, Callable[[int], object]] = {floor: bare_loop(X, args.k, on_gpu)}
    if on_gpu:
        runs["dasknmf, device='cuda', default tiling"] = fit_of(X, args.k, device="cuda")
        runs[f"dasknmf, device='cuda', {args.tiles} tiles, threaded scheduler"] = fit_of(
            X, args.k, device="cuda", chunks=(rows_per_tile, X.shape[1])
        )
    cpu = "dasknmf, device='cpu'"
    runs[cpu] = fit_of(X, args.k)
    for run in runs.values():  # warm-up: CUDA context, kernel compilation, caches
        run(1)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):  # interleaved: a slow spell hits every row alike
        for name, run in runs.items():
            iterations = args.cpu_iterations if name == cpu else (args.short, args.long)
            samples[name].append(per_iteration(run, *iterations))
    difference = None
    if on_gpu:
        on_device = fit_of(X, args.k, device="cuda")(args.long).reconstruction_err_
        on_host = fit_of(X, args.k)(args.long).reconstruction_err_
        difference = abs(on_device - on_host) / on_host
    return {name: statistics.median(s) for name, s in samples.items()}, difference


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000, help="documents at ×1")
    parser.add_argument("--terms", type=int, default=50_000)
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--tiles", type=int, default=8, help="row blocks of the tiled row")
    parser.add_argument("--short", type=int, default=20)
    parser.add_argument("--long", type=int, default=120)
    parser.add_argument(
        "--cpu-iterations",
        type=int,
        nargs=2,
        default=[5, 15],
        metavar=("SHORT", "LONG"),
        help="the CPU fit's short and long runs (it is 10-100× slower)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a tiny run checking the script")
    args = parser.parse_args(argv)
    if args.smoke:
        args.docs, args.terms, args.factors, args.repeats = 2_000, 500, [1], 1
        args.short, args.long, args.cpu_iterations = 2, 6, [2, 6]
    warnings.simplefilter("ignore", ConvergenceWarning)
    reason = gpu_reason()
    on_gpu = reason is None

    print(machine("numpy", "scipy", "dask", *(["cupy"] if on_gpu else [])))
    if on_gpu:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        print(f"gpu: {props['name'].decode()}, {props['totalGlobalMem'] / 2**30:.0f} GiB")
    else:
        print(f"gpu: none ({reason}); CPU rows only")
    for f in args.factors:
        start = time.perf_counter()
        X = term_document(args.docs * f, args.terms)
        made = time.perf_counter() - start
        times, difference = measure(X, args, on_gpu)
        floor = next(iter(times.values()))
        print()
        print(
            f"×{f}: {X.shape[0]:,} × {X.shape[1]:,} CSR float32, {X.nnz:,} non-zeros, "
            f"k = {args.k} (made in {made:.0f} s)"
        )
        print()
        print("| implementation | s / iteration | ratio to the floor |")
        print("| --- | --- | --- |")
        for name, seconds in times.items():
            print(f"| {name} | {seconds:.5f} | {seconds / floor:.2f} |")
        if difference is not None:
            print()
            print(
                f"final error after {args.long} iterations, GPU vs CPU: relative difference "
                f"{difference:.1e}"
            )
    print()
    print(
        f"median of {args.repeats} interleaved repeats; fits of {args.short} and {args.long} "
        f"iterations ({args.cpu_iterations[0]} and {args.cpu_iterations[1]} for the CPU fit)"
    )


if __name__ == "__main__":
    main()
