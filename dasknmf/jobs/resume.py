"""What ``dasknmf resume`` checks before it continues a job, and where it finds it.

A job is resumed from its output directory alone: :func:`find_checkpoint` reads the
latest checkpoint in the directory's work area, :func:`saved_config` the job it
records (with ``--set`` changes of where it runs: :data:`RESUME_SECTIONS`),
:func:`check_resume_target` refuses a job whose output is already complete, and
:func:`check_same_input` one whose input is not the matrix the checkpoint was fitted
on. :func:`dasknmf.jobs.runner.resume_job` wires them together; a job file run again
(``dasknmf run --resume``) is matched to the checkpoint by :func:`changed_keys`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from dasknmf.errors import DaskNMFError
from dasknmf.jobs.checkpoints import (
    Checkpoint,
    CorruptCheckpointError,
    NoCheckpointError,
    read_checkpoint,
)
from dasknmf.jobs.config import JobConfig
from dasknmf.jobs.inputs import JobInput
from dasknmf.jobs.loading import parse_config
from dasknmf.jobs.outputs import SUMMARY, OutputExistsError, check_output_target, is_job_output
from dasknmf.jobs.rules import CLUSTER_KEYS
from dasknmf.jobs.validation import JobConfigError, Problem
from dasknmf.jobs.workarea import WorkArea

__all__ = [
    "RESUME_SECTIONS",
    "InputChangedError",
    "changed_keys",
    "check_resume_target",
    "check_same_input",
    "find_checkpoint",
    "saved_config",
]


#: The sections that may change when a job is resumed: where it runs (a new allocation
#: has a new scheduler), how often it writes checkpoints, what it reports. The input,
#: the model and the output are those the checkpoint was fitted for.
RESUME_SECTIONS = ("cluster", "checkpoint", "report")


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


def saved_config(
    checkpoint: Checkpoint, directory: str, overrides: Sequence[str] = ()
) -> JobConfig:
    """The job a checkpoint was written by, writing its outputs to ``directory``,
    with ``overrides`` (``--set key.path=value`` items) of :data:`RESUME_SECTIONS`.

    An override of ``cluster`` or ``cluster.type`` starts the ``cluster`` section
    afresh (a job that ran on a scheduler file may be resumed on ``type: local``);
    other ``cluster.*`` items change the recorded section.

    Raises
    ------
    CorruptCheckpointError
        The checkpoint holds no valid job record.
    JobConfigError
        An override changes another section, or makes the job invalid (each named
        with its ``--set``).
    """
    job = checkpoint.job
    where = str(checkpoint.path)
    _check_overrides(overrides)
    try:
        recorded = _readable(job["config"])
        config = parse_config(recorded, where, check_paths=False)
        run_id, _ = str(job["run_id"]), str(job["started_at"])
    except (KeyError, TypeError, AttributeError, JobConfigError) as exc:
        raise CorruptCheckpointError(
            f"checkpoint {where!r}: no valid job record ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(job.get("input"), dict) or not run_id:
        raise CorruptCheckpointError(f"checkpoint {where!r}: no input fingerprint or run id")
    if overrides:
        if any(
            item.partition("=")[0].strip() in ("cluster", "cluster.type") for item in overrides
        ):
            recorded = {**recorded, "cluster": {}}
        source = f"the job of {where} with --set"
        config = parse_config(recorded, source, overrides, check_paths=False)
        _check_tls_files(config, source)
    # A directory moved with its work area is resumed where it is now.
    output = replace(config.output, directory=directory)
    return replace(config, output=output, source=str(job.get("config_file", where)))


def _check_overrides(overrides: Sequence[str]) -> None:
    problems = []
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key.split(".")[0] not in RESUME_SECTIONS:
            problems.append(
                Problem(
                    f"--set {item}",
                    key,
                    f"{key!r} cannot change when a job is resumed: its checkpoint was "
                    f"fitted with the recorded input, model and output; only "
                    f"{', '.join(s + '.*' for s in RESUME_SECTIONS)} may change (run the "
                    "job again with --overwrite to start over).",
                )
            )
    if problems:
        raise JobConfigError("resume --set", problems)


def _check_tls_files(config: JobConfig, source: str) -> None:
    """The TLS files of a resumed job exist (its input is not looked up again: a
    file ingested into the work area may be gone)."""
    tls = config.cluster.tls
    if tls is None:
        return
    problems = [
        Problem(
            source,
            f"cluster.tls.{name}",
            f"the file {path!r} of 'cluster.tls.{name}' does not exist.",
        )
        for name, path in asdict(tls).items()
        if path is not None and not os.path.isfile(path)
    ]
    if problems:
        raise JobConfigError(source, problems)


def _readable(config: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded job as :func:`parse_config` reads it: checkpoints written before
    the record left out unset cluster keys hold ``address: null`` beside
    ``scheduler_file``, ``tls: null`` or ``tls: {key: null}``."""
    cluster = {
        k: v
        for k, v in config["cluster"].items()
        if not (v is None and k in CLUSTER_KEYS["existing"])
    }
    if isinstance(cluster.get("tls"), Mapping):
        cluster["tls"] = {k: v for k, v in cluster["tls"].items() if v is not None}
    return {**config, "cluster": cluster}


def changed_keys(config: JobConfig, checkpoint: Checkpoint) -> list[str]:
    """The keys by which ``config`` is another job than the one ``checkpoint`` was
    written by: every key of the input, the model and the output directory (the
    sections in :data:`RESUME_SECTIONS`, and ``output.overwrite``, may differ),
    each as ``key: then -> now``; empty for the same job."""
    then = _flat(_readable(checkpoint.job["config"]))
    now = _flat(config.to_dict())
    fixed = [k for k in {*then, *now} if k.split(".")[0] not in (*RESUME_SECTIONS, "version")]
    return [
        f"{k}: {then.get(k)!r} -> {now.get(k)!r}"
        for k in sorted(fixed)
        if k != "output.overwrite" and then.get(k) != now.get(k)
    ]


def _flat(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


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
