"""Running a validated job: scheduler, input, fit, outputs.

Wiring only: the scheduler comes from :mod:`dasknmf.jobs.cluster`, the matrix from
:mod:`dasknmf.storage`, the factorisation from :class:`dasknmf.NMF`, the files from
:mod:`dasknmf.jobs.outputs`; nothing here computes anything itself.

Order of a run, each step failing before the next costs anything:

1. the output directory is checked (refused if it exists without ``overwrite``);
2. the scheduler is set up (``cluster``);
3. the input is opened: a store as it is, a matrix file ingested into a store in
   the job's *work area* (a hidden sibling of the output directory, so that workers
   that can read the output location can read it too), the example built in memory;
4. :class:`dasknmf.NMF` is fitted, reporting each iteration to ``progress``; a
   missing-entry model is then scored (RMSE on its training entries and on the
   held-out ones, ``input.holdout``);
5. the outputs are written atomically while the scheduler still holds ``W``;
6. the scheduler is torn down and the work area removed.

Checkpoints (``checkpoint.every``) are validated and recorded but not written yet:
:func:`_checkpoint_callbacks` is where they will be attached to the fit, and the work
area is where they will live, so that a killed job can resume from them.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from sklearn.exceptions import ConvergenceWarning

import dasknmf
from dasknmf import NMF
from dasknmf.errors import InvalidParameterError
from dasknmf.fit import IterationInfo
from dasknmf.jobs import report
from dasknmf.jobs.cluster import SchedulerInfo, connect
from dasknmf.jobs.config import CheckpointConfig, InputConfig, JobConfig, ModelConfig
from dasknmf.jobs.outputs import SUMMARY_VERSION, check_output_target, write_outputs

__all__ = ["JobResult", "Progress", "run_job"]

logger = logging.getLogger(__name__)

#: Distributions whose versions are recorded in ``summary.json``.
VERSIONED = ("dask", "distributed", "numpy", "scipy", "zarr", "scikit-learn")
WORK_SUFFIX = ".dasknmf-work"


class Progress(Protocol):
    """What :func:`run_job` reports to while it runs (the CLI prints it)."""

    def event(self, message: str) -> None:
        """A step of the job: scheduler ready, input opened, outputs written."""

    def iteration(self, info: IterationInfo) -> None:
        """One iteration of the fit."""


@dataclass(frozen=True)
class JobResult:
    """What :func:`run_job` did.

    Attributes
    ----------
    directory : str
        The output directory.
    outputs : list of str
        Names written there.
    summary : dict
        The content of ``summary.json``.
    model : NMF
        The fitted estimator (``components_`` is ``H``).
    """

    directory: str
    outputs: list[str]
    summary: dict[str, Any] = field(repr=False)
    model: NMF = field(repr=False)


@dataclass(frozen=True)
class _Input:
    X: Any  # what NMF.fit receives
    chunks: tuple[int, int] | None  # NMF's chunks (in-memory inputs only)
    description: dict[str, Any]
    column_ids: list[Any] | None
    holdout: Any = None  # held-out entries (a store path or an in-memory matrix)


def run_job(config: JobConfig, *, progress: Progress | None = None) -> JobResult:
    """Run a job: fit :class:`dasknmf.NMF` as ``config`` says and write its outputs.

    Parameters
    ----------
    config : JobConfig
        From :func:`dasknmf.jobs.config.load_config`.
    progress : Progress, optional
        Told of each step and each iteration.

    Returns
    -------
    JobResult

    Raises
    ------
    OutputExistsError
        The output directory exists and may not be replaced; raised before any work.

    Examples
    --------
    >>> import tempfile, os
    >>> from dasknmf.jobs.config import parse_config
    >>> job = parse_config({
    ...     "input": {"path": "example:term-document", "rows": 200, "cols": 50},
    ...     "model": {"n_components": 3, "max_iter": 5, "random_state": 0},
    ...     "output": {"directory": os.path.join(tempfile.mkdtemp(), "out")},
    ...     "report": {"plot": False},
    ... })
    >>> run_job(job).outputs
    ['H.zarr', 'W.zarr', 'summary.json']
    """
    started, started_at = time.perf_counter(), _now()
    out = config.output
    check_output_target(out.directory, overwrite=out.overwrite)
    _check_supported(config.model)
    say = progress.event if progress is not None else logger.info
    timings: dict[str, float] = {}
    with ExitStack() as stack:
        t0 = time.perf_counter()
        scheduler = stack.enter_context(connect(config.cluster))
        timings["setup"] = time.perf_counter() - t0
        say(_describe_scheduler(scheduler))

        t0 = time.perf_counter()
        work = stack.enter_context(_work_area(out.directory))
        source = _open_input(config.input, work)
        timings["input"] = time.perf_counter() - t0
        say(_describe_input(source.description))

        # A callback is always attached, so that the error is computed after every
        # iteration and the curve in summary.json and the plot has every point,
        # whether progress is printed or not (it costs what printing progress costs).
        callbacks: list[Callable[[IterationInfo], object]] = [_log_iteration]
        if progress is not None:
            callbacks.append(progress.iteration)
        callbacks += _checkpoint_callbacks(config.checkpoint, work, say)
        model = NMF(**config.model.nmf_params(), chunks=source.chunks, callbacks=callbacks)
        t0 = time.perf_counter()
        W, converged = _fit(model, source.X)
        timings["fit"] = time.perf_counter() - t0
        say(
            f"fit: {model.n_iter_} iterations, error {model.reconstruction_err_:.6e}, "
            f"{'converged' if converged else 'not converged'} ({timings['fit']:.1f} s)"
        )
        evaluation = None
        if config.model.missing == "ignore":
            t0 = time.perf_counter()
            evaluation = _evaluate(model, source)
            timings["evaluate"] = time.perf_counter() - t0
            say(_describe_evaluation(evaluation))

        top = None
        if config.report.top_features and source.column_ids is not None:
            top = report.top_features(
                model.components_, source.column_ids, config.report.top_features
            )
        summary = _summary(config, source, model, converged, scheduler, timings, started_at)
        if evaluation is not None:
            summary["evaluation"] = evaluation
        names = write_outputs(
            out.directory,
            overwrite=out.overwrite,
            W=W if out.save_w else None,
            H=model.components_,
            summary=summary,
            curve=model.error_curve_,
            plot=config.report.plot,
            top=top,
            started=started,
        )
    say(f"outputs: {out.directory} ({', '.join(names)})")
    return JobResult(out.directory, names, summary, model)


def _summary(
    config: JobConfig,
    source: _Input,
    model: NMF,
    converged: bool,
    scheduler: SchedulerInfo,
    timings: dict[str, float],
    started_at: str,
) -> dict[str, Any]:
    """The content of ``summary.json`` (its ``outputs`` and the write and total times
    are added by :func:`dasknmf.jobs.outputs.write_outputs`)."""
    return {
        "schema_version": SUMMARY_VERSION,
        "status": "completed",
        "config_file": _absolute_file(config.source),
        "config": config.to_dict(),
        "input": source.description,
        "result": {
            "n_components": int(model.n_components_),
            "iterations": int(model.n_iter_),
            "converged": converged,
            "final_error": float(model.reconstruction_err_),
            "error_curve": [[int(i), float(e)] for i, e in model.error_curve_],
            "persisted": bool(model.persisted_),
        },
        "scheduler": scheduler.to_dict(),
        "checkpoint": {"every": config.checkpoint.every, "written": 0},
        "timings": timings,
        "versions": versions(),
        "started_at": started_at,
    }


def _check_supported(model: ModelConfig) -> None:
    if model.missing is not None and "missing" not in NMF().get_params():
        raise InvalidParameterError(
            f"model.missing={model.missing!r} needs a dasknmf whose NMF has the 'missing' "
            f"parameter; dasknmf {dasknmf.__version__} has not"
        )


def _fit(model: NMF, X: Any) -> tuple[Any, bool]:
    """``W`` and whether the ``tol`` rule stopped the fit.

    NMF warns (``ConvergenceWarning``) exactly when ``tol > 0`` and ``max_iter``
    iterations ran without reaching it; here that warning becomes the ``converged``
    flag of the summary. Other warnings are passed on.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        W = model.fit_transform(X)
    warned = False
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            warned = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    converged = model.tol > 0 and model.n_iter_ > 0 and not warned
    return W, bool(getattr(model, "converged_", converged))


def _evaluate(model: NMF, source: _Input) -> dict[str, Any]:
    """RMSE of a missing-entry model on its training entries and, when the job has
    them, on held-out entries."""
    result: dict[str, Any] = {
        "train_entries": int(model.n_observed_),
        "train_rmse": float(model.rmse(source.X)),
        "holdout_entries": None,
        "holdout_rmse": None,
    }
    if source.holdout is not None:
        result["holdout_entries"] = int(source.description["holdout_entries"])
        if result["holdout_entries"]:
            result["holdout_rmse"] = float(model.rmse(source.holdout))
    return result


def _describe_evaluation(e: dict[str, Any]) -> str:
    text = f"RMSE: train {e['train_rmse']:.4f} ({e['train_entries']:,} entries)"
    if e["holdout_rmse"] is not None:
        text += f", held out {e['holdout_rmse']:.4f} ({e['holdout_entries']:,} entries)"
    elif e["holdout_entries"] == 0:
        text += ", held out: no entries"
    return text


def _log_iteration(info: IterationInfo) -> None:
    logger.debug("iteration %d: error %.6g (%.2f s)", info.iteration, info.error, info.elapsed)


# -- input -----------------------------------------------------------------------------


class _WorkArea:
    """A hidden sibling of the output directory, created on first use."""

    def __init__(self, directory: str) -> None:
        target = Path(directory)
        self.path = target.parent / f".{target.name}{WORK_SUFFIX}"
        self.used = False

    def __truediv__(self, name: str) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        self.used = True
        return self.path / name


@contextmanager
def _work_area(directory: str) -> Iterator[_WorkArea]:
    work = _WorkArea(directory)
    try:
        yield work
    finally:
        # Nothing in it outlives the job yet; with checkpoints, a failed job will keep
        # it so that the next run can resume.
        if work.used:
            shutil.rmtree(work.path, ignore_errors=True)


def _open_input(config: InputConfig, work: _WorkArea) -> _Input:
    from dasknmf.storage import ingest, ingest_triplets, matrix_info, open_matrix

    kind = config.kind
    description: dict[str, Any] = {"kind": kind, "path": config.path}
    if kind == "example":
        return _example_input(config, description)
    holdout = None
    if kind == "file" and isinstance(config.holdout, float):
        store, options = str(work / "input.zarr"), None
        holdout = str(work / "holdout.zarr")
        split = ingest_triplets(
            config.path, store, holdout=config.holdout, holdout_dst=holdout,
            seed=config.seed, chunks=config.chunks, overwrite=True,
        )  # fmt: skip
        info, X = split.train, store
        description["holdout_entries"] = split.n_holdout
    elif kind == "file":
        store, options = str(work / "input.zarr"), None
        info = ingest(config.path, store, chunks=config.chunks, overwrite=True)
        X = store
    else:
        store, options = config.path, config.storage_options or None
        info = matrix_info(store, storage_options=options)
        X = open_matrix(store, storage_options=options)
    if isinstance(config.holdout, str):
        holdout = config.holdout
        held = matrix_info(holdout, storage_options=options)
        if held.shape != info.shape:
            raise InvalidParameterError(
                f"input.holdout {holdout!r} has shape {held.shape}, the input "
                f"{config.path!r} {info.shape}: held-out entries must index the same matrix."
            )
        description["holdout_entries"] = held.nnz
    if holdout is not None:
        description["holdout"] = holdout
    description.update(
        shape=list(info.shape),
        nnz=int(info.nnz),
        dtype=str(info.dtype),
        format=info.format,
        tile_shape=list(info.tile_shape),
    )
    return _Input(X, None, description, report.column_ids(store, options), holdout)


def _example_input(config: InputConfig, description: dict[str, Any]) -> _Input:
    """The built-in examples, made in memory: a term-document count matrix, or a
    ratings matrix (2% of entries rated) split as ``input.holdout`` says."""
    from dasknmf.datasets import ratings, term_document
    from dasknmf.storage.split import split_matrix

    holdout = None
    if config.path.endswith("ratings"):
        V, _, _ = ratings(config.rows, config.cols, int(0.02 * config.rows * config.cols), seed=0)
        if config.holdout is not None:
            V, holdout = split_matrix(V, config.holdout, config.seed)
            description["holdout_entries"] = int(holdout.nnz)
    else:
        V = term_document(config.rows, config.cols, seed=0)
    description.update(shape=list(V.shape), nnz=int(V.nnz), dtype=str(V.dtype))
    return _Input(V, config.chunks, description, None, holdout)


# -- checkpoints (next step) -----------------------------------------------------------


def _checkpoint_callbacks(
    config: CheckpointConfig, work: _WorkArea, say: Callable[[str], object]
) -> list[Callable[[IterationInfo], object]]:
    """The callbacks that write checkpoints: none yet.

    The next step attaches here a callback writing ``info.W``/``info.H`` every
    ``config.every`` iterations to ``work / "checkpoints"`` (atomically, as stores),
    and :func:`run_job` gains a resume path that fits with ``init='custom'`` from the
    last one and keeps the work area after a failure.
    """
    if config.every:
        say(f"note: checkpoint.every={config.every} is recorded; checkpoints are not written yet")
    return []


# -- reporting -------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    """Versions of Python, dasknmf and the libraries a result depends on."""
    found: dict[str, str | None] = {
        "python": platform.python_version(),
        "dasknmf": dasknmf.__version__,
    }
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def _absolute_file(source: str) -> str:
    """The job file's absolute path (``source`` unchanged for an inline config)."""
    return os.path.abspath(source) if os.path.isfile(source) else source


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _describe_scheduler(info: SchedulerInfo) -> str:
    if info.type == "threads":
        return f"scheduler: threads in this process ({info.threads} threads)"
    what = "local cluster" if info.type == "local" else "cluster"
    text = f"scheduler: {what} at {info.address}, {info.workers} workers, {info.threads} threads"
    if info.dashboard_link:
        text += f"\ndashboard: {info.dashboard_link}"
    if info.note:
        text += f"\nnote: {info.note}"
    return text


def _describe_input(d: dict[str, Any]) -> str:
    m, n = d["shape"]
    source = {"example": "built-in example", "file": "ingested from", "store": "store"}[d["kind"]]
    return f"input: {m:,} x {n:,}, {d['nnz']:,} non-zeros ({source} {d['path']})"
