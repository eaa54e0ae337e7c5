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
   too), the example built in memory; on a ``distributed`` cluster, what one task
   of the fit needs is compared with the workers' memory limits
   (:func:`dasknmf.jobs.worker_memory.check_worker_memory`; not with ``check_memory``
   false, ``--no-memory-check``);
4. :class:`dasknmf.NMF` is fitted, reporting each iteration to ``progress`` and
   writing a checkpoint to the work area every ``checkpoint.every`` iterations (and
   one at the iteration under way when ``stop`` is set: the job then ends with
   :class:`~dasknmf.jobs.checkpoint_writer.JobStopped`, to be resumed); a
   missing-entry model is then scored (RMSE on its training entries and on the
   held-out ones, ``input.holdout``);
5. the outputs are written atomically while the scheduler still holds ``W``;
6. the scheduler is torn down and the work area removed. After a failure the work
   area is kept when the job writes checkpoints.

:func:`resume_job` continues such a job from the directory alone: the latest
checkpoint holds the resolved job configuration, the input's fingerprint and the
fit's :class:`~dasknmf.fit_state.FitState`; the job then runs steps 2 to 6 as above, with
the input reopened (not ingested again) and the fit continued from the state, and
ends with the outputs an uninterrupted run would have written; its ``cluster``,
``checkpoint`` and ``report`` sections may be changed (a new allocation's scheduler).
``run_job(config, resume=True)`` does the same when the work area holds checkpoints
of the same job, so that one command starts a job and continues it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from distributed.scheduler import KilledWorker

from dasknmf import NMF, RankSweep
from dasknmf.callbacks import PhaseReporter
from dasknmf.errors import DaskNMFError
from dasknmf.jobs.checkpoint_writer import CheckpointWriter, JobStopped
from dasknmf.jobs.checkpoints import STATE, Checkpoint
from dasknmf.jobs.cluster import connect
from dasknmf.jobs.config import JobConfig
from dasknmf.jobs.inputs import open_input
from dasknmf.jobs.outputs import (
    check_output_target,
)
from dasknmf.jobs.progress import Progress, ProgressCallback, log_iteration
from dasknmf.jobs.record import (
    absolute_file,
    describe_input,
    describe_scheduler,
    job_summary,
    now,
)
from dasknmf.jobs.resume import (
    changed_keys,
    check_resume_target,
    check_same_input,
    find_checkpoint,
    saved_config,
)
from dasknmf.jobs.single import fit_single
from dasknmf.jobs.sweep import run_sweep
from dasknmf.jobs.task_need import CHUNKS_KEY, job_task_need
from dasknmf.jobs.workarea import FACTORS, WorkArea, work_area
from dasknmf.jobs.worker_memory import check_worker_memory, lost_workers
from dasknmf.resources import active_client

__all__ = ["JobResult", "resume_job", "run_job"]

logger = logging.getLogger(__name__)


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
    model : NMF or RankSweep
        The fitted estimator (``components_`` is ``H``), or the rank sweep of a sweep
        job.
    lines : tuple of str
        The result in words (iterations and errors; the RMSEs of a ratings model; a
        sweep's table and suggested k; last, why the iterations stopped): what
        ``--quiet`` still prints.
    """

    directory: str
    outputs: list[str]
    summary: dict[str, Any] = field(repr=False)
    model: NMF | RankSweep = field(repr=False)
    lines: tuple[str, ...] = ()


def run_job(
    config: JobConfig,
    *,
    progress: Progress | None = None,
    resume: bool = False,
    stop: threading.Event | None = None,
    check_memory: bool = True,
) -> JobResult:
    """Run a job: fit :class:`dasknmf.NMF` as ``config`` says and write its outputs.

    Parameters
    ----------
    config : JobConfig
        From :func:`dasknmf.jobs.loading.load_config`.
    progress : Progress, optional
        Told of each step and each iteration.
    resume : bool, default False
        When the work area holds checkpoints of an earlier run of this same job (the
        same input, model and output; the cluster, checkpoint and report sections
        may differ), continue it from the latest, on ``config``'s cluster, as
        :func:`resume_job` does: a batch job re-submitted with the same command
        after its allocation ended goes on where it stopped.
    stop : threading.Event, optional
        Once set (``dasknmf run`` sets it on SIGUSR1), the fit writes a checkpoint at
        the end of the iteration under way and the job stops with
        :class:`~dasknmf.jobs.checkpoint_writer.JobStopped`, to be resumed; the work area is
        kept, whatever ``checkpoint.every``.
    check_memory : bool, default True
        Whether the workers' memory limits are compared with what one task of the fit
        needs before it starts (:func:`dasknmf.jobs.worker_memory.check_worker_memory`).

    Returns
    -------
    JobResult

    Raises
    ------
    OutputExistsError
        The output directory exists and may not be replaced; raised before any work.
    UnfinishedRunError
        An earlier run of the job left checkpoints (``dasknmf resume`` continues it)
        and ``output.overwrite`` is false; raised before any work. With ``resume``,
        only when they are another job's (the message names the keys that differ).
    JobStopped
        ``stop`` was set: the job stopped after a checkpoint, to be resumed.

    Examples
    --------
    >>> import tempfile, os
    >>> from dasknmf.jobs.loading import parse_config
    >>> job = parse_config({
    ...     "input": {"path": "example:term-document", "rows": 200, "cols": 50},
    ...     "model": {"n_components": 3, "max_iter": 5, "random_state": 0},
    ...     "output": {"directory": os.path.join(tempfile.mkdtemp(), "out")},
    ...     "report": {"plot": False},
    ... })
    >>> run_job(job).outputs
    ['H.zarr', 'W.zarr', 'summary.json']
    """
    started, started_at = time.perf_counter(), now()
    out = config.output
    check_output_target(out.directory, overwrite=out.overwrite)
    say = progress.event if progress is not None else logger.info
    stale = WorkArea(out.directory)
    if stale.exists():
        checkpointed = (stale.checkpoints / STATE).exists()
        changed: list[str] = []
        if checkpointed and resume:
            checkpoint = find_checkpoint(out.directory)
            changed = changed_keys(config, checkpoint)
            if not changed:
                check_resume_target(config, checkpoint)
                job = checkpoint.job
                return _execute(
                    config, job, progress, started, started_at, checkpoint, stop, check_memory
                )
        if checkpointed and not out.overwrite:
            # Checkpoints are the user's hours of computing: never discarded silently.
            other = (
                f"another job (changed: {'; '.join(changed)}), so --resume does not continue them"
                if changed
                else "an earlier run of this job that did not finish: "
                f"`dasknmf resume {out.directory}` continues it"
            )
            raise UnfinishedRunError(
                f"{str(stale.path)!r} holds checkpoints of {other}; run with --overwrite "
                "(output.overwrite: true) to discard them and start over."
            )
        say(
            f"note: removing {stale.path}, left by an earlier run of this job that did not "
            f"finish (`dasknmf resume {out.directory}` continues such a run instead)"
        )
        stale.remove()
    job = {"run_id": uuid.uuid4().hex, "started_at": started_at}
    return _execute(config, job, progress, started, started_at, None, stop, check_memory)


class UnfinishedRunError(DaskNMFError, FileExistsError):
    """``run`` would discard the checkpoints of an unfinished run of the same job."""


def resume_job(
    directory: str | os.PathLike[str],
    *,
    overrides: Sequence[str] = (),
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    check_memory: bool = True,
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
    overrides : sequence of str
        ``"key.path=value"`` items changing the recorded job's ``cluster``,
        ``checkpoint`` or ``report`` (:data:`dasknmf.jobs.resume.RESUME_SECTIONS`):
        a job resumed in a new allocation runs on a new scheduler
        (``cluster.scheduler_file=...``). An item for ``cluster`` or ``cluster.type``
        replaces the recorded section.
    progress : Progress, optional
        Told of each step and each iteration.
    stop, check_memory
        As for :func:`run_job`: a resumed job may be stopped again.

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
    JobConfigError
        An override changes the input, the model or the output, or is not valid.
    """
    started, started_at = time.perf_counter(), now()
    directory = os.path.abspath(directory)
    checkpoint = find_checkpoint(directory)
    config = saved_config(checkpoint, directory, overrides)
    check_resume_target(config, checkpoint)
    job = checkpoint.job
    return _execute(config, job, progress, started, started_at, checkpoint, stop, check_memory)


def _execute(
    config: JobConfig,
    job: dict[str, Any],
    progress: Progress | None,
    started: float,
    started_at: str,
    resume: Checkpoint | None,
    stop: threading.Event | None,
    check_memory: bool,
) -> JobResult:
    """Steps 2 to 6 of a run (see the module docstring). ``job`` holds the run's id
    and first start, recorded in checkpoints and in the summary; ``resume`` the
    checkpoint it continues from, if any."""
    out = config.output
    say = progress.event if progress is not None else logger.info
    phases = PhaseReporter([] if progress is None else [progress])
    timings: dict[str, float] = {}
    every = config.checkpoint.every
    with ExitStack() as stack:
        t0 = time.perf_counter()
        scheduler = stack.enter_context(connect(config.cluster))
        timings["setup"] = time.perf_counter() - t0
        say(describe_scheduler(scheduler))

        t0 = time.perf_counter()
        work = stack.enter_context(
            work_area(out.directory, keep_on_failure=every > 0 or stop is not None)
        )
        if not every and stop is not None:
            # Without periodic checkpoints only a stop on request, which wrote one,
            # leaves the work area behind (runs before work_area's exit: LIFO).
            stack.push(lambda kind, exc, tb: _discard_unless_stopped(work, exc))
        with phases.phase("input"):
            source = open_input(config.input, work, reuse=resume is not None)
        if resume is not None:
            check_same_input(resume, source)
        timings["input"] = time.perf_counter() - t0
        say(describe_input(source.description))
        client = active_client() if scheduler.type != "threads" else None
        need = job_task_need(config, source, scheduler) if client is not None else None
        if need is not None and check_memory:
            check_worker_memory(client, need, chunks_key=CHUNKS_KEY[config.input.kind])
        elif need is not None:
            say(
                "note: the workers' memory limits were not compared with what the fit's "
                "tasks need (--no-memory-check)"
            )

        # A callback is always attached, so that the error is computed after every
        # iteration and the curve in summary.json and the plot has every point,
        # whether progress is printed or not (it costs what printing progress costs).
        callbacks: list[Callable[[Any], object]] = [log_iteration]
        if progress is not None:
            callbacks.append(ProgressCallback(progress))
        writer = None
        if every or stop is not None:
            record = {
                "run_id": job["run_id"],
                "started_at": job["started_at"],
                "config": config.to_dict(),
                "config_file": absolute_file(config.source),
                "input": source.fingerprint,
            }
            written = int(job.get("checkpoints_written", 0)) if resume is not None else 0
            writer = CheckpointWriter(
                work.checkpoints,
                every,
                lambda n: {**record, "checkpoints_written": n},
                written=written,
                say=say,
                stop=stop,
                phase=phases.phase,
            )
            callbacks.append(writer)
        state = None
        if resume is not None:
            state = resume.state
            say(f"resuming from the checkpoint at iteration {state.iteration} ({resume.path})")
        # A stored W lives in the work area unless the job says where: beside the
        # output, so on the file system that the cluster's workers share with it.
        fit = partial(
            run_sweep if config.sweep is not None else fit_single,
            factor_store=str(work.path / FACTORS),
        )
        if callable(getattr(progress, "on_start", None)):
            progress.on_start(config.model.max_iter)
        try:
            fitted = fit(config, source, callbacks, state, say=say, timings=timings)
        except KilledWorker as exc:
            raise lost_workers(exc, need) from None
        summary = job_summary(config, source, fitted.result, scheduler, timings, started_at)
        summary.update(fitted.extra)
        summary["run_id"] = job["run_id"]
        summary["checkpoint"]["written"] = writer.written if writer is not None else 0
        if resume is not None:
            summary["resumed"] = {
                "from_iteration": resume.state.iteration,
                "checkpoint_written_at": resume.written_at,
                "first_started_at": job["started_at"],
            }
        with phases.phase("writing outputs"):
            names = fitted.write(summary, started)
    say(f"outputs: {out.directory} ({', '.join(names)})")
    return JobResult(out.directory, names, summary, fitted.model, fitted.lines)


def _discard_unless_stopped(work: WorkArea, exc: BaseException | None) -> bool:
    """Remove the work area of a job that failed (not one that stopped on request)."""
    if exc is not None and not isinstance(exc, JobStopped):
        work.remove()
    return False
