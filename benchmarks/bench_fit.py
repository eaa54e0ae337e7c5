"""The whole fit, phase by phase, with peak memory: dasknmf against scikit-learn.

What a user waits for, from the call to the answer, split where each library spends
it, and the process's peak resident memory, every fit in a fresh process (so that
each peak is that fit's own: Linux's ``VmHWM``):

- **in memory**, the Python API on a SciPy CSR matrix, every parameter at its
  default (``init=None`` is nndsvda in both): ``dasknmf.NMF(k, random_state=0)``
  (MU) against scikit-learn's ``NMF(k, random_state=0)`` (MU), and
  ``solver='hals'`` against scikit-learn's ``'cd'``. dasknmf's phases are the ones it
  reports (statistics, initialisation; the rest, input checks and tiling, iterations
  and gathering the factors, is "iterations and the rest"); scikit-learn's
  initialisation is its ``_initialize_nmf`` with the same arguments, timed before a
  fit from those factors (``init='custom'``), which is the rest.
- **out of core**, the matrix written as a store: ``dasknmf run`` on a job file
  (``persist: false``, threaded scheduler; phases: opening the input, statistics,
  initialisation, iterations, writing the outputs) against reading the store into
  memory and fitting it with scikit-learn (what a user without dasknmf does, while V
  fits), both MU with ``tol=1e-4``.

The baseline of each process (interpreter, imports and, in memory, the input matrix
loaded) is printed, so that the peak's growth is the fit's own. Besides each
library's own ``reconstruction_err_`` (float32 products, rounded in both), the error
of the factors is computed in float64 after the timing (``error in float64``). Medians of
``--repeats`` interleaved repeats; ratios are dasknmf / scikit-learn.

``--memory-rows N`` runs only a study of peak memory out of core instead: a store of
N × 50,000 (2,000,000 rows: 50M non-zeros), fitted by ``NMF(persist=False)`` with
nndsvda or random factors and ``W`` kept in memory or in a factor store, each in a
fresh process.

Run: ``python -m benchmarks.bench_fit`` (``--corpus gcide`` for the real dictionary
corpus of :mod:`benchmarks.corpora`; ``--smoke`` for a tiny check).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from benchmarks.common import machine

#: The cases, each run in a process of its own: (label, library, where, solver).
CASES = (
    ("MU, in memory", "scikit-learn", "memory", "mu"),
    ("MU, in memory", "dasknmf", "memory", "mu"),
    ("HALS / cd, in memory", "scikit-learn", "memory", "cd"),
    ("HALS / cd, in memory", "dasknmf", "memory", "hals"),
    ("MU, out of core", "scikit-learn", "store", "mu"),
    ("MU, out of core", "dasknmf", "store", "mu"),
)
PHASES = ("input", "statistics", "initialisation", "iterations and the rest", "writing")


def _vm(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmHWM``, ``VmRSS``) in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _recording_phases(times: dict[str, float]) -> None:
    """Time the phases dasknmf brackets (:class:`dasknmf.callbacks.PhaseReporter`)."""
    from dasknmf.callbacks import PhaseReporter

    original = PhaseReporter.phase

    @contextlib.contextmanager
    def timed(self, name):
        start = time.perf_counter()
        with original(self, name) as reporter:
            yield reporter
        key = "initialisation" if name.startswith("initialization") else name
        key = {"writing outputs": "writing"}.get(key, key)
        times[key] = times.get(key, 0.0) + time.perf_counter() - start

    PhaseReporter.phase = timed


def child(spec: dict) -> dict:
    """One fit in this process: its phases (s), total (s), error, iterations, and the
    memory baseline and peak (bytes)."""
    warnings.simplefilter("ignore")
    k, library, where, solver = spec["k"], spec["library"], spec["where"], spec["solver"]
    # Imported before the baseline, as a user's script does (dask imports distributed
    # at its first compute: that is the fit's).
    import sklearn.decomposition  # noqa: F401

    import dasknmf
    from dasknmf import NMF as DaskNMF  # dasknmf imports its estimator on first use

    X = sp.load_npz(spec["npz"]).tocsr() if where == "memory" else None
    times: dict[str, float] = {}
    baseline = _vm("VmRSS")
    start = time.perf_counter()
    if where == "large store":
        _recording_phases(times)
        model = DaskNMF(
            k, init=spec["init"], factors=spec["factors"], persist=False, max_iter=10,
            tol=0, random_state=0,
        ).fit(spec["store"])  # fmt: skip
        error, n_iter = model.reconstruction_err_, model.n_iter_
    elif library == "dasknmf" and where == "memory":
        _recording_phases(times)
        model = DaskNMF(k, random_state=0, solver=solver)
        factors = model.fit_transform(X), model.components_
        error, n_iter = model.reconstruction_err_, model.n_iter_
    elif library == "dasknmf":
        _recording_phases(times)
        from dasknmf.cli.program import main

        with contextlib.redirect_stdout(sys.stderr):
            code = main(["run", spec["job"], "--set", f"output.directory={spec['out']}"])
        if code:
            raise SystemExit(f"dasknmf run failed ({code})")
        result = json.loads((Path(spec["out"]) / "summary.json").read_text())["result"]
        error, n_iter = result["final_error"], result["iterations"]
        factors = tuple(
            np.asarray(dasknmf.open_matrix(Path(spec["out"]) / f"{name}.zarr"))
            for name in ("W", "H")
        )
    else:
        from sklearn.decomposition import NMF
        from sklearn.decomposition._nmf import _initialize_nmf

        if X is None:
            tick = time.perf_counter()
            X = sp.csr_matrix(dasknmf.open_matrix(spec["store"]).compute())
            times["input"] = time.perf_counter() - tick
        tick = time.perf_counter()
        W, H = _initialize_nmf(X, k, init="nndsvda", random_state=0)
        times["initialisation"] = time.perf_counter() - tick
        tol = 1e-4
        model = NMF(k, init="custom", solver=solver, tol=tol, random_state=0)
        factors = model.fit_transform(X, W=W, H=H), model.components_
        error, n_iter = model.reconstruction_err_, model.n_iter_
    total = time.perf_counter() - start
    times["iterations and the rest"] = total - sum(times.values())
    peak = _vm("VmHWM")
    exact = None
    if where != "large store":
        if X is None:
            X = sp.csr_matrix(dasknmf.open_matrix(spec["store"]).compute())
        exact = exact_error(X, *factors)
    return dict(
        times=times, total=total, error=float(error), n_iter=int(n_iter),
        baseline=baseline, peak=peak, exact=exact,
    )  # fmt: skip


def exact_error(X: sp.csr_matrix, W: np.ndarray, H: np.ndarray) -> float:
    """``‖X − WH‖_F`` in float64 from the factors (a float32 fit's own
    ``reconstruction_err_`` carries its products' rounding, in both libraries)."""
    X = sp.csr_matrix(X, dtype=np.float64)
    W, H = np.asarray(W, dtype=np.float64), np.asarray(H, dtype=np.float64)
    squared = X.data @ X.data - 2 * np.sum(W * (X @ H.T)) + np.sum((W.T @ W) * (H @ H.T))
    return float(np.sqrt(max(squared, 0.0)))


def _job(store: Path, k: int, directory: Path) -> Path:
    job = directory / "job.yaml"
    job.write_text(
        "version: 1\n"
        f"input:\n  path: {store}\n"
        f"model:\n  n_components: {k}\n  solver: mu\n  tol: 1.0e-4\n  random_state: 0\n"
        "  persist: false\n"
        "cluster:\n  type: threads\n"
        f"output:\n  directory: {directory / 'run'}\n  overwrite: true\n"
    )
    return job


def _run_child(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_fit", "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"a fit failed ({spec['library']}, {spec['where']}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_study(rows: int, k: int, directory: Path, tile_rows: int | None = None) -> list[str]:
    """Peak memory of out-of-core fits of a ``rows × 50,000`` store (10 iterations,
    ``tol=0``), by initialisation and by where ``W`` is kept, each in a fresh process:
    the design's bound is W + H + a few tiles and their decode buffers + a fixed
    process cost (docs/benchmarks.md)."""
    import dasknmf
    from dasknmf.datasets import lazy_term_document

    store = directory / "large.zarr"
    V = lazy_term_document(rows, 50_000)
    dasknmf.write_matrix(V, store, chunks=None if tile_rows is None else (tile_rows, 50_000))
    w_mib = rows * k * 4 / 2**20
    lines = [
        f"store: {rows:,} × 50,000 term-document, {dasknmf.open_matrix(store).chunks[0][0]:,} "
        f"rows a tile; k = {k}, W = {w_mib:.0f} MiB in float32; dask's threaded scheduler",
        "",
        "| init | factors | statistics s | initialisation s | iterations and the rest s "
        "| baseline MiB | peak MiB | peak − baseline, in W's |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for init in ("nndsvda", "random"):
        for factors in ("memory", "store"):
            spec = dict(
                k=k, library="dasknmf", where="large store", solver="mu", init=init,
                factors=factors, store=str(store), npz="",
            )  # fmt: skip
            r = _run_child(spec)
            t = r["times"]
            growth = (r["peak"] - r["baseline"]) / 2**20
            lines.append(
                f"| {init} | {factors} | {t.get('statistics', 0.0):.1f} | "
                f"{t.get('initialisation', 0.0):.1f} | {t['iterations and the rest']:.1f} | "
                f"{r['baseline'] / 2**20:.0f} | {r['peak'] / 2**20:.0f} | "
                f"{growth / w_mib:.2f} |"
            )
    return lines


def _exact(result: dict) -> str:
    return "–" if result.get("exact") is None else f"{result['exact']:.8g}"


def table(results: dict[tuple, list[dict]]) -> list[str]:
    lines = [
        "| fit | library | " + " | ".join(PHASES) + " | total s | ratio | error (iterations) "
        "| error in float64 | baseline MiB | peak MiB | peak ratio |",
        "| --- | --- | "
        + " | ".join("---" for _ in PHASES)
        + " | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label in dict.fromkeys(case[0] for case in CASES):
        runs = {lib: results[(label, lib)] for lib in ("scikit-learn", "dasknmf")}
        ref_peak = statistics.median(r["peak"] for r in runs["scikit-learn"])
        for lib, rs in runs.items():
            phases = [statistics.median(r["times"].get(p, 0.0) for r in rs) for p in PHASES]
            total = statistics.median(r["total"] for r in rs)
            ratio = statistics.median(
                r["total"] / s["total"] for r, s in zip(rs, runs["scikit-learn"], strict=True)
            )
            peak = statistics.median(r["peak"] for r in rs)
            cells = " | ".join(f"{t:.2f}" if t else "–" for t in phases)
            lines.append(
                f"| {label} | {lib} | {cells} | {total:.2f} | {ratio:.2f} | "
                f"{rs[0]['error']:.6g} ({rs[0]['n_iter']}) | {_exact(rs[0])} | "
                f"{statistics.median(r['baseline'] for r in rs) / 2**20:.0f} | "
                f"{peak / 2**20:.0f} | {peak / ref_peak:.2f} |"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", choices=("term-document", "gcide"), default="term-document")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a tiny run checking the script")
    parser.add_argument(
        "--memory-rows",
        type=int,
        default=0,
        help="only the out-of-core peak-memory study, on a store of this many rows "
        "(2,000,000: 50M non-zeros, 114 MiB on disk)",
    )
    parser.add_argument(
        "--tile-rows", type=int, help="rows a tile of the study's store (default: write_matrix's)"
    )
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    import dasknmf
    from benchmarks.corpora import gcide
    from dasknmf.datasets import term_document

    if args.memory_rows:
        print(machine("numpy", "scipy"))
        with tempfile.TemporaryDirectory() as tmp:
            lines = memory_study(args.memory_rows, args.k, Path(tmp), args.tile_rows)
            print("\n".join(lines))
        return
    if args.smoke:
        X, args.repeats, args.k = term_document(2_000, 500), 1, 5
    elif args.corpus == "gcide":
        X = gcide()[0]
    else:
        X = term_document(200_000, 50_000)
    X = sp.csr_matrix(X, dtype=np.float32)
    print(machine("numpy", "scipy", "scikit-learn"))
    print(f"matrix ({args.corpus}): {X.shape[0]:,} × {X.shape[1]:,} CSR float32, "
          f"{X.nnz:,} non-zeros, k = {args.k}")  # fmt: skip
    print(f"medians of {args.repeats} interleaved repeats, each fit in a fresh process")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        npz, store = directory / "X.npz", directory / "V.zarr"
        sp.save_npz(npz, X, compressed=False)
        dasknmf.write_matrix(X, store)
        job = _job(store, args.k, directory)
        results: dict[tuple, list[dict]] = {}
        for _ in range(args.repeats):
            for label, library, where, solver in CASES:
                spec = dict(
                    k=args.k, library=library, where=where, solver=solver, npz=str(npz),
                    store=str(store), job=str(job), out=str(directory / "run"),
                )  # fmt: skip
                results.setdefault((label, library), []).append(_run_child(spec))
    print()
    print("\n".join(table(results)))


if __name__ == "__main__":
    main()
