"""Running a validated job: scheduler, input, fit, checkpoints, outputs; and resuming
a job that stopped.

Wiring only: the scheduler comes from :mod:`dasknmf.jobs.cluster`, the matrix from
:mod:`dasknmf.jobs.inputs`, the factorisation from :class:`dasknmf.NMF`, the files
from :mod:`dasknmf.jobs.outputs` and :mod:`dasknmf.jobs.checkpoints`; nothing here
computes anything itself.

Order of a run, each step failing before the next costs anything:

1. the output directory is checked (refused if it exists without ``overwrite``), and
   a work area left by an earlier run that did not finish is removed;
2. the scheduler is set up (``cluster``);
3. the input is opened: a store as it is, a matrix file ingested into a store in
   the job's *work area* (:mod:`dasknmf.jobs.workarea`: a hidden sibling of the
   output directory, so that workers that can read the output location can read it
   too), the example built in memory;
4. :class:`dasknmf.NMF` is fitted, reporting each iteration to ``progress`` and
   writing a checkpoint to the work area every ``checkpoint.every`` iterations; a
   missing-entry model is then scored (RMSE on its training entries and on the
   held-out ones, ``input.holdout``);
5. the outputs are written atomically while the scheduler still holds ``W``;
6. the scheduler is torn down and the work area removed. After a failure the work
   area is kept when the job writes checkpoints.

:func:`resume_job` continues such a job from the directory alone: the latest
checkpoint holds the resolved job configuration, the input's fingerprint and the
fit's :class:`~dasknmf.fit.FitState`; the job then runs steps 2 to 6 as above, with
the input reopened (not ingested again) and the fit continued from the state, and
ends with the outputs an uninterrupted run would have written.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import time
import uuid
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from sklearn.exceptions import ConvergenceWarning

import dasknmf
from dasknmf import NMF
from dasknmf.errors import DaskNMFError
from dasknmf.fit import FitState, IterationInfo
from dasknmf.jobs import report
from dasknmf.jobs.checkpoints import STATE, Checkpoint, CheckpointWriter
from dasknmf.jobs.cluster import SchedulerInfo, connect
from dasknmf.jobs.config import JobConfig
from dasknmf.jobs.inputs import JobInput, open_input
from dasknmf.jobs.outputs import SUMMARY_VERSION, check_output_target, write_outputs
from dasknmf.jobs.resume import (
    check_resume_target,
    check_same_input,
    find_checkpoint,
    saved_config,
)
from dasknmf.jobs.workarea import WorkArea, work_area

__all__ = ["JobResult", "Progress", "resume_job", "run_job"]

logger = logging.getLogger(__name__)

#: Distributions whose versions are recorded in ``summary.json``.
VERSIONED = ("dask", "distributed", "numpy", "scipy", "zarr", "scikit-learn")


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
    UnfinishedRunError
        An earlier run of the job left checkpoints (``dasknmf resume`` continues it)
        and ``output.overwrite`` is false; raised before any work.

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
    say = progress.event if progress is not None else logger.info
    stale = WorkArea(out.directory)
    if stale.exists():
        if (stale.checkpoints / STATE).exists() and not out.overwrite:
            # Checkpoints are the user's hours of computing: never discarded silently.
            raise UnfinishedRunError(
                f"{str(stale.path)!r} holds checkpoints of an earlier run of this job "
                f"that did not finish: `dasknmf resume {out.directory}` continues it; "
                "run with --overwrite (output.overwrite: true) to discard them and start "
                "over."
            )
        say(
            f"note: removing {stale.path}, left by an earlier run of this job that did not "
            f"finish (`dasknmf resume {out.directory}` continues such a run instead)"
        )
        stale.remove()
    job = {"run_id": uuid.uuid4().hex, "started_at": started_at}
    return _execute(config, job, progress, started, started_at)


class UnfinishedRunError(DaskNMFError, FileExistsError):
    """``run`` would discard the checkpoints of an unfinished run of the same job."""


def resume_job(
    directory: str | os.PathLike[str], *, progress: Progress | None = None
) -> JobResult:
    """Continue a job that stopped (killed, failed) from its latest checkpoint.

    Everything comes from the checkpoint in the work area of ``directory``: the job as
    it was resolved (the job file is not read again), the state of the fit and the
    fingerprint of the input. The scheduler is set up as configured, the input
    reopened (a store as it is, an ingested file from the store kept in the work
    area), the fit continued from the state, and the outputs written as
    :func:`run_job` writes them; ``summary.json`` says from which iteration
    (``resumed``). They equal those of a run that was never interrupted.

    Parameters
    ----------
    directory : str or os.PathLike
        The job's ``output.directory``.
    progress : Progress, optional
        Told of each step and each iteration.

    Returns
    -------
    JobResult

    Raises
    ------
    NoCheckpointError
        No work area, or no checkpoint in it.
    CorruptCheckpointError
        The checkpoint is unreadable or incomplete (the message names the file).
    OutputExistsError
        ``directory`` holds the completed output of this job (nothing to resume), or
        another output that the job may not replace.
    InputChangedError
        The input's shape, non-zeros or store uuid differ from the checkpoint's.
    """
    started, started_at = time.perf_counter(), _now()
    directory = os.path.abspath(directory)
    checkpoint = find_checkpoint(directory)
    config = saved_config(checkpoint, directory)
    check_resume_target(config, checkpoint)
    return _execute(config, checkpoint.job, progress, started, started_at, resume=checkpoint)


def _execute(
    config: JobConfig,
    job: dict[str, Any],
    progress: Progress | None,
    started: float,
    started_at: str,
    *,
    resume: Checkpoint | None = None,
) -> JobResult:
    """Steps 2 to 6 of a run (see the module docstring). ``job`` holds the run's id
    and first start, recorded in checkpoints and in the summary."""
    out = config.output
    say = progress.event if progress is not None else logger.info
    timings: dict[str, float] = {}
    every = config.checkpoint.every
    with ExitStack() as stack:
        t0 = time.perf_counter()
        scheduler = stack.enter_context(connect(config.cluster))
        timings["setup"] = time.perf_counter() - t0
        say(_describe_scheduler(scheduler))

        t0 = time.perf_counter()
        work = stack.enter_context(work_area(out.directory, keep_on_failure=every > 0))
        source = open_input(config.input, work, reuse=resume is not None)
        if resume is not None:
            check_same_input(resume, source)
        timings["input"] = time.perf_counter() - t0
        say(_describe_input(source.description))

        # A callback is always attached, so that the error is computed after every
        # iteration and the curve in summary.json and the plot has every point,
        # whether progress is printed or not (it costs what printing progress costs).
        callbacks: list[Callable[[IterationInfo], object]] = [_log_iteration]
        if progress is not None:
            callbacks.append(progress.iteration)
        writer = None
        if every:
            record = {
                "run_id": job["run_id"],
                "started_at": job["started_at"],
                "config": config.to_dict(),
                "config_file": _absolute_file(config.source),
                "input": source.fingerprint,
            }
            written = int(job.get("checkpoints_written", 0)) if resume is not None else 0
            writer = CheckpointWriter(
                work.checkpoints,
                every,
                lambda n: {**record, "checkpoints_written": n},
                written=written,
                say=say,
            )
            callbacks.append(writer)
        model = NMF(**config.model.nmf_params(), chunks=source.chunks, callbacks=callbacks)
        state = None
        if resume is not None:
            state = resume.state
            say(f"resuming from the checkpoint at iteration {state.iteration} ({resume.path})")
        t0 = time.perf_counter()
        W, converged = _fit(model, source.X, state)
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
        summary["run_id"] = job["run_id"]
        summary["checkpoint"]["written"] = writer.written if writer is not None else 0
        if resume is not None:
            summary["resumed"] = {
                "from_iteration": resume.state.iteration,
                "checkpoint_written_at": resume.written_at,
                "first_started_at": job["started_at"],
            }
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
    source: JobInput,
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
        "resumed": None,
        "timings": timings,
        "versions": versions(),
        "started_at": started_at,
    }


def _fit(model: NMF, X: Any, resume: FitState | None = None) -> tuple[Any, bool]:
    """``W`` and whether the ``tol`` rule stopped the fit.

    NMF warns (``ConvergenceWarning``) exactly when ``tol > 0`` and ``max_iter``
    iterations ran without reaching it; here that warning becomes the ``converged``
    flag of the summary. Other warnings are passed on.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        W = model.fit_transform(X, resume=resume)
    warned = False
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            warned = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    converged = model.tol > 0 and model.n_iter_ > 0 and not warned
    return W, bool(getattr(model, "converged_", converged))


def _evaluate(model: NMF, source: JobInput) -> dict[str, Any]:
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
