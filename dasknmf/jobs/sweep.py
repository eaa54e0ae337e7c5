"""A rank-sweep job: :class:`dasknmf.RankSweep` fitted as the job says, and its outputs.

A job is a sweep when ``model.n_components`` is a list of ranks or it has a
``sweep`` section (:class:`dasknmf.jobs.config.SweepConfig`). The runner
(:mod:`dasknmf.jobs.runner`) sets up the scheduler, the input and the checkpoints as
for a single fit and calls :func:`run_sweep`, which fits every replicate of every rank
together and returns what to write. The output directory (written atomically, as
every job output) then holds:

- ``k_selection.csv``: the per-k table (``RankSweep.summary_``: k, median train and
  held-out error, stability, median iterations, share converged);
- ``replicates.csv``: a row per replicate (``RankSweep.results_``);
- ``k_selection.png``: error and held-out error against k, stability beside
  (``report.plot``);
- ``components_k{k}.npy``: the replicates' ``H`` of rank ``k``, shape
  ``(replicates, k, n)`` (a dense store ``components_k{k}.zarr`` of shape
  ``(replicates · k, n)`` above :data:`NPY_LIMIT`);
- ``H.zarr``, ``W.zarr``: the consensus of ``sweep.consensus_k`` (default: the
  suggested ``best_k_``), ``W`` refitted to the whole input with ``H`` fixed; the
  stores a single fit writes;
- ``summary.json`` with ``sweep``: the ranks, the suggested k and the per-k table.

:mod:`dasknmf.jobs.consensus` writes another rank's consensus from these files.
"""

from __future__ import annotations

import io
import json
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from dasknmf import RankSweep
from dasknmf.errors import InvalidParameterError
from dasknmf.jobs.config import JobConfig
from dasknmf.jobs.inputs import JobInput
from dasknmf.jobs.outputs import H_STORE, SUMMARY, W_STORE, FittedJob, atomic_output
from dasknmf.jobs.report import TOL_OFF
from dasknmf.storage import open_matrix
from dasknmf.sweep.loop import SweepState
from dasknmf.sweep.summary import STABILITY_SLACK, TEST_ERROR_SLACK

__all__ = [
    "K_SELECTION_CSV",
    "K_SELECTION_PNG",
    "NPY_LIMIT",
    "REPLICATES_CSV",
    "best_k_rule",
    "components_name",
    "read_components",
    "run_sweep",
    "sweep_params",
]

K_SELECTION_CSV, REPLICATES_CSV, K_SELECTION_PNG = (
    "k_selection.csv",
    "replicates.csv",
    "k_selection.png",
)
#: Above this many bytes a rank's replicated components are a dense store, not ``.npy``
#: (a file read whole into memory).
NPY_LIMIT = 512 * 2**20


def sweep_params(config: JobConfig) -> dict[str, Any]:
    """The :class:`dasknmf.RankSweep` parameters of a sweep job (``chunks`` and
    ``callbacks`` aside): the model's keys of the same meaning, ``loss`` as
    ``beta_loss``, ``solver: auto`` as the sweep's own choice (``None``: HALS for the
    Frobenius loss on a complete matrix), ``init: null`` as ``'random'``."""
    m, s = config.model, config.sweep
    assert s is not None, "not a sweep job"
    return dict(
        n_components=list(config.ranks),
        n_replicates=s.replicates,
        holdout=s.holdout,
        init=m.init or "random",
        solver=None if m.solver == "auto" else m.solver,
        beta_loss=m.loss,
        max_iter=m.max_iter,
        tol=m.tol,
        random_state=m.random_state,
        check_every=m.check_every,
        alpha_W=m.alpha_W,
        alpha_H=m.alpha_H,
        l1_ratio=m.l1_ratio,
        missing=m.missing,
        persist=m.persist,
        factors=m.factors,
        factor_store=m.factor_store,
        density_threshold=s.density_threshold,
        local_neighborhood=s.local_neighborhood,
    )


def best_k_rule(holdout: float) -> str:
    """How ``best_k_`` was chosen, in words."""
    if holdout > 0:
        return (
            f"the smallest k whose median held-out error is within "
            f"{TEST_ERROR_SLACK:.0%} of the lowest"
        )
    return f"the largest k whose stability is within {STABILITY_SLACK} of the highest"


def components_name(k: int, nbytes: int) -> str:
    """The file of rank ``k``'s replicated components of ``nbytes`` bytes."""
    return f"components_k{k}.zarr" if nbytes > NPY_LIMIT else f"components_k{k}.npy"


def read_components(directory: str | Path, k: int, replicates: int) -> np.ndarray:
    """Rank ``k``'s replicated components of a sweep's output, ``(replicates, k, n)``.

    Raises
    ------
    FileNotFoundError
        Neither ``components_k{k}.npy`` nor ``components_k{k}.zarr`` is there.
    """
    directory = Path(directory)
    npy = directory / f"components_k{k}.npy"
    if npy.is_file():
        return np.load(npy)
    store = directory / f"components_k{k}.zarr"
    if store.is_dir():
        return np.asarray(open_matrix(store).compute()).reshape(replicates, k, -1)
    raise FileNotFoundError(f"{str(npy)!r} (or .zarr) does not exist")


def run_sweep(
    config: JobConfig,
    source: JobInput,
    callbacks: list[Callable[[Any], object]],
    state: SweepState | None,
    *,
    say: Callable[[str], object],
    timings: dict[str, float],
    factor_store: str,
) -> FittedJob:
    """Fit the sweep of a job (from ``state`` when resuming), its consensus for the
    chosen rank, and say how it went. Stored ``W`` go to ``factor_store`` unless
    ``model.factor_store`` is set."""
    if state is not None and not isinstance(state, SweepState):
        raise InvalidParameterError("the checkpoint to resume is a single fit's, not a sweep's")
    params = sweep_params(config)
    params["factor_store"] = params["factor_store"] or factor_store
    sweep = RankSweep(**params, chunks=source.chunks, callbacks=callbacks)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # Per replicate in replicates.csv and per k in the table (share converged).
        warnings.simplefilter("ignore", ConvergenceWarning)
        sweep.fit(source.X, resume=state)
    timings["fit"] = time.perf_counter() - t0
    chosen = config.sweep.consensus_k or sweep.best_k_
    t0 = time.perf_counter()
    consensus, problem = None, None
    try:
        consensus = sweep.consensus(chosen)
    except InvalidParameterError as exc:
        # Hours of fitting are not thrown away for a threshold: the other outputs are
        # written and `dasknmf consensus` retries with another one.
        problem = str(exc)
    timings["consensus"] = time.perf_counter() - t0
    lines = _describe(config, sweep, chosen, consensus, problem, timings["fit"])
    for line in lines:
        say(line)
    results = sweep.results_
    result = {
        "n_components": int(chosen),
        "iterations": int(results["n_iter"].max()),
        "converged": bool(results["converged"].all()),
        "final_error": None if consensus is None else float(consensus.reconstruction_err_),
    }
    n = sweep.n_features_in_
    files = {
        k: components_name(k, sweep.components_[k].nbytes) for k in config.ranks
    }  # fmt: skip
    extra = {
        "sweep": {
            "ranks": list(config.ranks),
            "replicates": config.sweep.replicates,
            "holdout": config.sweep.holdout,
            "best_k": int(sweep.best_k_),
            "best_k_rule": best_k_rule(config.sweep.holdout),
            "consensus_k": int(chosen),
            "consensus_error": problem,
            "per_k": _records(sweep.summary_),
            "components": {str(k): name for k, name in files.items()},
            "n_features": int(n),
        }
    }
    out = config.output

    def write(summary: dict[str, Any], started: float) -> list[str]:
        names = [K_SELECTION_CSV, REPLICATES_CSV, *files.values()]
        if consensus is not None:
            names += [H_STORE, W_STORE] if out.save_w else [H_STORE]
        names += [K_SELECTION_PNG] if config.report.plot else []
        names.append(SUMMARY)
        t0 = time.perf_counter()
        with atomic_output(out.directory, overwrite=out.overwrite) as w:
            w.write_text(K_SELECTION_CSV, sweep.summary_.to_csv(index=False))
            w.write_text(REPLICATES_CSV, results.to_csv(index=False))
            for k, name in files.items():
                H = sweep.components_[k]
                if name.endswith(".npy"):
                    w.write_bytes(name, _npy(H))
                else:
                    w.write_matrix(name, H.reshape(-1, H.shape[-1]))
            if consensus is not None:
                w.write_matrix(H_STORE, consensus.components_)
                if out.save_w:
                    w.write_matrix(W_STORE, consensus.W_)
            if config.report.plot:
                sweep.plot(w.path / K_SELECTION_PNG)
            now = time.perf_counter()
            summary["outputs"] = names
            summary["timings"]["write"] = now - t0
            summary["timings"]["total"] = now - started
            w.write_text(SUMMARY, dumps(summary))
        return names

    return FittedJob(sweep, result, extra, write, tuple(lines))


def dumps(summary: dict[str, Any]) -> str:
    """``summary.json``'s text: strict JSON (a NaN, e.g. the stability of k = 1, is
    ``null``)."""
    return json.dumps(_finite(summary), indent=2, default=_plain) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """NumPy scalars as Python numbers (NaN as ``null``); anything else as text."""
    if hasattr(value, "item"):
        return _finite(value.item())
    return str(value)


def _records(table) -> list[dict[str, Any]]:
    return [
        {str(k): _plain(v) if hasattr(v, "item") else _finite(v) for k, v in row.items()}
        for row in table.to_dict("records")
    ]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _describe(
    config: JobConfig,
    sweep: RankSweep,
    chosen: int,
    consensus: Any,
    problem: str | None,
    seconds: float,
) -> list[str]:
    """The sweep's result in words: what ran, the per-k table, the suggested k and the
    consensus written."""
    s = config.sweep
    results = sweep.results_
    lines = [
        f"sweep: k in {list(config.ranks)} x {s.replicates} replicates, "
        f"{int(results['n_iter'].max())} iterations, "
        f"{int(results['converged'].sum())} of {len(results)} converged ({seconds:.1f} s)",
        f"  {'k':>4}  {'error':>10}  {'held out':>10}  {'stability':>9}  {'iter':>5}  converged",
    ]
    for row in sweep.summary_.itertuples():
        lines.append(
            f"  {row.k:>4}  {row.train_error:>10.4e}  {_number(row.test_error, '.4e'):>10}  "
            f"{_number(row.stability, '.3f'):>9}  {row.n_iter:>5.0f}  {row.converged:>8.0%}"
        )
    lines.append(f"best k: {sweep.best_k_} ({best_k_rule(s.holdout)})")
    if consensus is not None:
        lines.append(
            f"consensus: k = {chosen}, error {consensus.reconstruction_err_:.6e} "
            "(W refitted to the whole input with the consensus H fixed)"
        )
    else:
        lines.append(
            f"consensus: k = {chosen} not written: {problem} Write it with `dasknmf "
            f"consensus {config.output.directory} --k {chosen} --density-threshold ...`"
        )
    lines.append(describe_stops(results["n_iter"], results["converged"], config))
    return lines


def describe_stops(n_iter: Any, converged: Any, config: JobConfig) -> str:
    """Why the replicates of a sweep stopped, in one line (the sweep's last): how many
    the ``tol`` rule stopped, after how many iterations, and how many ran all of them.

    Examples
    --------
    >>> from dasknmf.jobs.loading import parse_config
    >>> job = parse_config({"input": {"path": "example:term-document"},
    ...                     "model": {"n_components": [2, 3], "max_iter": 30},
    ...                     "sweep": {"replicates": 2}, "output": {"directory": "/tmp/o"}})
    >>> print(describe_stops([20, 30, 30, 10], [True, False, True, True], job))
    ... # doctest: +NORMALIZE_WHITESPACE
    3 of 4 replicates stopped by the tol rule (relative decrease < tol 0.0001) at
    iterations 10-30; 1 ran all 30 iterations (max_iter) (set model.tol: 0 to run every
    iteration)
    """
    m = config.model
    stopped = [int(i) for i, c in zip(n_iter, converged, strict=True) if c]
    total, ran_all = len(n_iter), len(n_iter) - len(stopped)
    if not stopped:
        return f"every replicate ran all {m.max_iter} iterations (max_iter)"
    lo, hi = min(stopped), max(stopped)
    at = f"at iteration {lo}" if lo == hi else f"at iterations {lo}-{hi}"
    share = "every replicate" if not ran_all else f"{len(stopped)} of {total} replicates"
    text = f"{share} stopped by the tol rule (relative decrease < tol {m.tol:g}) {at}"
    if ran_all:
        text += f"; {ran_all} ran all {m.max_iter} iterations (max_iter)"
    return f"{text} ({TOL_OFF} to run every iteration)"


def _number(value: float, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)
