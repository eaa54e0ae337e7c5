"""What a job records and says about itself: the common part of ``summary.json``
(configuration, input, scheduler, timings, versions) and the lines that describe its
scheduler and its input.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from datetime import datetime, timezone
from typing import Any

import dasknmf
from dasknmf.jobs.cluster import SchedulerInfo
from dasknmf.jobs.config import JobConfig
from dasknmf.jobs.inputs import JobInput
from dasknmf.jobs.outputs import SUMMARY_VERSION

__all__ = [
    "absolute_file",
    "describe_input",
    "describe_scheduler",
    "job_summary",
    "now",
    "versions",
]

#: Distributions whose versions are recorded in ``summary.json``.
VERSIONED = ("dask", "distributed", "numpy", "scipy", "zarr", "scikit-learn")


def job_summary(
    config: JobConfig,
    source: JobInput,
    result: dict[str, Any],
    scheduler: SchedulerInfo,
    timings: dict[str, float],
    started_at: str,
) -> dict[str, Any]:
    """The content of ``summary.json`` (its ``outputs`` and the write and total times
    are added by :func:`dasknmf.jobs.outputs.write_outputs`)."""
    return {
        "schema_version": SUMMARY_VERSION,
        "status": "completed",
        "config_file": absolute_file(config.source),
        "config": config.to_dict(),
        "input": source.description,
        "result": result,
        "scheduler": scheduler.to_dict(),
        "checkpoint": {"every": config.checkpoint.every, "written": 0},
        "resumed": None,
        "timings": timings,
        "versions": versions(),
        "started_at": started_at,
    }


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


def absolute_file(source: str) -> str:
    """The job file's absolute path (``source`` unchanged for an inline config)."""
    return os.path.abspath(source) if os.path.isfile(source) else source


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def describe_scheduler(info: SchedulerInfo) -> str:
    if info.type == "threads":
        return f"scheduler: threads in this process ({info.threads} threads)"
    what = "local cluster" if info.type == "local" else "cluster"
    text = f"scheduler: {what} at {info.address}, {info.workers} workers, {info.threads} threads"
    if info.dashboard_link:
        text += f"\ndashboard: {info.dashboard_link}"
    if info.note:
        text += f"\nnote: {info.note}"
    return text


def describe_input(d: dict[str, Any]) -> str:
    m, n = d["shape"]
    source = {"example": "built-in example", "file": "ingested from", "store": "store"}[d["kind"]]
    return f"input: {m:,} x {n:,}, {d['nnz']:,} non-zeros ({source} {d['path']})"
