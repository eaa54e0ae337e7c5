"""What ``dasknmf resume`` checks before it continues a job, and where it finds it.

A job is resumed from its output directory alone: :func:`find_checkpoint` reads the
latest checkpoint in the directory's work area, :func:`saved_config` the job it
records, :func:`check_resume_target` refuses a job whose output is already complete,
and :func:`check_same_input` one whose input is not the matrix the checkpoint was
fitted on. :func:`dasknmf.jobs.runner.resume_job` wires them together.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

from dasknmf.errors import DaskNMFError
from dasknmf.jobs.checkpoints import (
    Checkpoint,
    CorruptCheckpointError,
    NoCheckpointError,
    read_checkpoint,
)
from dasknmf.jobs.config import JobConfig, JobConfigError, parse_config
from dasknmf.jobs.inputs import JobInput
from dasknmf.jobs.outputs import SUMMARY, OutputExistsError, check_output_target, is_job_output
from dasknmf.jobs.workarea import WorkArea

__all__ = [
    "InputChangedError",
    "check_resume_target",
    "check_same_input",
    "find_checkpoint",
    "saved_config",
]


class InputChangedError(DaskNMFError, ValueError):
    """The input of a job to resume is no longer the matrix its checkpoint was fitted on."""


def find_checkpoint(directory: str) -> Checkpoint:
    """The latest checkpoint of the job whose output directory is ``directory``.

    Raises
    ------
    NoCheckpointError
        No work area, or no checkpoint in it (each with its own message).
    CorruptCheckpointError
        From :func:`dasknmf.jobs.checkpoints.read_checkpoint`.
    """
    work = WorkArea(directory)
    if not work.exists():
        if is_job_output(directory):
            raise NoCheckpointError(
                f"nothing to resume: {directory!r} holds a completed job output, and there is "
                "no work area with checkpoints next to it"
            )
        raise NoCheckpointError(
            f"nothing to resume for {directory!r}: no work area {str(work.path)!r} (a job "
            "keeps it after a failure only when it writes checkpoints, checkpoint.every > 0)"
        )
    try:
        return read_checkpoint(work.checkpoints)
    except NoCheckpointError:
        raise NoCheckpointError(
            f"nothing to resume for {directory!r}: its work area {str(work.path)!r} holds no "
            "checkpoint (the job stopped before its first one); run the job again"
        ) from None


def saved_config(checkpoint: Checkpoint, directory: str) -> JobConfig:
    """The job a checkpoint was written by, writing its outputs to ``directory``."""
    job = checkpoint.job
    where = str(checkpoint.path)
    try:
        config = parse_config(job["config"], where, check_paths=False)
        run_id, _ = str(job["run_id"]), str(job["started_at"])
    except (KeyError, TypeError, JobConfigError) as exc:
        raise CorruptCheckpointError(
            f"checkpoint {where!r}: no valid job record ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(job.get("input"), dict) or not run_id:
        raise CorruptCheckpointError(f"checkpoint {where!r}: no input fingerprint or run id")
    # A directory moved with its work area is resumed where it is now.
    output = replace(config.output, directory=directory)
    return replace(config, output=output, source=str(job.get("config_file", where)))


def check_resume_target(config: JobConfig, checkpoint: Checkpoint) -> None:
    """Refuse to resume a job whose output is complete, or whose output directory
    now holds something that the job may not replace."""
    directory = config.output.directory
    if is_job_output(directory):
        try:
            with open(os.path.join(directory, SUMMARY), encoding="utf-8") as f:
                run_id = json.load(f).get("run_id")
        except (OSError, ValueError, AttributeError):
            run_id = None
        if run_id == checkpoint.job["run_id"]:
            raise OutputExistsError(
                f"nothing to resume: {directory!r} already holds the completed output of this "
                f"job (it finished after its checkpoint at iteration "
                f"{checkpoint.state.iteration}); remove {str(checkpoint.path.parents[1])!r} "
                "if it is still there"
            )
    check_output_target(directory, overwrite=config.output.overwrite)


def check_same_input(checkpoint: Checkpoint, source: JobInput) -> None:
    """Refuse an input whose fingerprint (kind, shape, nnz, store uuid) differs from
    the checkpoint's."""
    recorded, now = checkpoint.job["input"], source.fingerprint
    changed = [
        f"{k} {recorded.get(k)!r} then, {v!r} now" for k, v in now.items() if recorded.get(k) != v
    ]
    if changed:
        raise InputChangedError(
            f"cannot resume from {str(checkpoint.path)!r}: the input "
            f"{source.description['path']!r} is not the matrix the checkpoint was fitted on "
            f"({'; '.join(changed)}); run the job again"
        )
