"""Another rank's consensus from a finished sweep job, without fitting the sweep again
(``dasknmf consensus OUTDIR --k K``).

The sweep's output holds every rank's replicated components
(:mod:`dasknmf.jobs.sweep`) and, in ``summary.json``, the job as it was resolved.
:func:`write_consensus` clusters rank ``k``'s components as the sweep does
(:meth:`dasknmf.RankSweep.consensus_of`), refits ``W`` to the job's input with the
consensus ``H`` fixed (the input is reopened: a store as it is, a file ingested again
into a temporary work area, an example made again) and writes ``consensus_k{k}/``
inside the output directory, atomically (``H.zarr``, ``W.zarr`` unless
``output.save_w`` is false, and ``summary.json``); nothing else there is touched.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dasknmf import RankSweep
from dasknmf.errors import DaskNMFError, InvalidParameterError
from dasknmf.jobs.config import JobConfig
from dasknmf.jobs.inputs import open_input
from dasknmf.jobs.loading import parse_config
from dasknmf.jobs.outputs import (
    H_STORE,
    SUMMARY,
    W_STORE,
    atomic_output,
    check_output_target,
    is_job_output,
)
from dasknmf.jobs.resume import InputChangedError
from dasknmf.jobs.sweep import read_components, sweep_params
from dasknmf.jobs.workarea import work_area

__all__ = ["ConsensusResult", "NotASweepError", "consensus_directory", "write_consensus"]


class NotASweepError(DaskNMFError, ValueError):
    """The directory is not the completed output of a rank-sweep job."""


@dataclass(frozen=True)
class ConsensusResult:
    """What :func:`write_consensus` wrote.

    Attributes
    ----------
    directory : str
        ``OUTDIR/consensus_k{k}``.
    k : int
    error : float
        ``‖V − WH‖_F`` of the consensus on the whole input.
    outputs : list of str
        Names written in ``directory``.
    """

    directory: str
    k: int
    error: float
    outputs: list[str]


def consensus_directory(directory: str | os.PathLike[str], k: int) -> str:
    """Where the consensus of rank ``k`` of the sweep output ``directory`` is written."""
    return os.path.join(os.path.abspath(directory), f"consensus_k{k}")


def write_consensus(
    directory: str | os.PathLike[str],
    k: int,
    *,
    density_threshold: float | None = None,
    overwrite: bool = False,
) -> ConsensusResult:
    """Write rank ``k``'s consensus ``W``, ``H`` of the finished sweep job whose output
    directory is ``directory``.

    Parameters
    ----------
    directory : str or os.PathLike
        A sweep job's ``output.directory``.
    k : int
        One of its ranks.
    density_threshold : float, optional
        cNMF's outlier filter (default: the job's ``sweep.density_threshold``).
    overwrite : bool, default False
        Replace an existing ``consensus_k{k}``.

    Raises
    ------
    NotASweepError
        ``directory`` is not the completed output of a sweep job.
    InvalidParameterError
        ``k`` is not one of its ranks, or a cluster keeps no component under the
        density threshold.
    OutputExistsError
        ``consensus_k{k}`` exists and ``overwrite`` is false; raised before any work.
    InputChangedError
        The job's input is no longer the matrix the sweep was fitted to.
    """
    t0 = time.perf_counter()
    directory = os.path.abspath(directory)
    summary = _sweep_summary(directory)
    config = parse_config(summary["config"], os.path.join(directory, SUMMARY), check_paths=False)
    assert config.sweep is not None
    if k not in config.ranks:
        raise InvalidParameterError(
            f"--k {k}: the sweep in {directory!r} fitted k in {list(config.ranks)}; choose one "
            "of them."
        )
    if density_threshold is not None:
        config = replace(config, sweep=replace(config.sweep, density_threshold=density_threshold))
    target = consensus_directory(directory, k)
    check_output_target(target, overwrite=overwrite)
    try:
        components = read_components(directory, k, config.sweep.replicates)
    except FileNotFoundError as exc:
        raise NotASweepError(f"{directory!r} lacks rank {k}'s components: {exc}") from None
    with work_area(f"{directory}-consensus", keep_on_failure=False) as work:
        source = open_input(config.input, work)
        _check_same_input(summary["input"], source.description, config)
        sweep = RankSweep(**sweep_params(config), chunks=source.chunks)
        model = sweep.consensus_of(source.X, components)
        names = [H_STORE] + ([W_STORE] if config.output.save_w else []) + [SUMMARY]
        record = _record(config, summary, k, model, names, time.perf_counter() - t0)
        with atomic_output(target, overwrite=overwrite) as out:
            out.write_matrix(H_STORE, model.components_)
            if config.output.save_w:
                out.write_matrix(W_STORE, model.W_)
            out.write_text(SUMMARY, json.dumps(record, indent=2) + "\n")
    return ConsensusResult(target, k, float(model.reconstruction_err_), names)


def _sweep_summary(directory: str) -> dict[str, Any]:
    path = Path(directory) / SUMMARY
    if not is_job_output(directory) or not path.is_file():
        raise NotASweepError(
            f"{directory!r} is not the completed output of a dasknmf job (no {SUMMARY}); "
            "give the output.directory of a sweep job that finished"
        )
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise NotASweepError(f"{str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("sweep"), dict):
        raise NotASweepError(
            f"{directory!r} is the output of a single fit, not of a rank sweep (a job whose "
            "model.n_components is a list, or with a sweep section)"
        )
    return summary


def _check_same_input(then: dict[str, Any], now: dict[str, Any], config: JobConfig) -> None:
    changed = [
        f"{key} {then.get(key)!r} then, {now.get(key)!r} now"
        for key in ("shape", "nnz")
        if then.get(key) != now.get(key)
    ]
    if changed:
        raise InputChangedError(
            f"the input {config.input.path!r} is not the matrix the sweep was fitted to "
            f"({'; '.join(changed)}); run the sweep again"
        )


def _record(
    config: JobConfig,
    summary: dict[str, Any],
    k: int,
    model: Any,
    names: list[str],
    seconds: float,
) -> dict[str, Any]:
    """``consensus_k{k}/summary.json``."""
    assert config.sweep is not None
    return {
        "n_components": k,
        "final_error": float(model.reconstruction_err_),
        "density_threshold": config.sweep.density_threshold,
        "local_neighborhood": config.sweep.local_neighborhood,
        "sweep_run_id": summary.get("run_id"),
        "input": summary["input"],
        "outputs": names,
        "seconds": seconds,
    }
