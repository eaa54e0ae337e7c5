"""What a job reports while it runs: the :class:`Progress` that
:func:`~dasknmf.jobs.runner.run_job` tells of each step and iteration (the command
line's is :mod:`dasknmf.cli.progress`), and the fit callbacks that pass the fit's
iterations and phases on to it (:class:`ProgressCallback`) and to the log
(:func:`log_iteration`)."""

from __future__ import annotations

import logging
from typing import Protocol

from dasknmf.callbacks import PhaseInfo, tell_norm
from dasknmf.fit_state import IterationInfo
from dasknmf.sweep.loop import SweepProgress

__all__ = ["Progress", "ProgressCallback", "log_iteration"]

logger = logging.getLogger(__name__)


class Progress(Protocol):
    """What :func:`~dasknmf.jobs.runner.run_job` reports to while it runs (the CLI prints it).

    Optional methods are called where a progress has them: ``on_norm(norm)``, told
    ``‖X‖_F`` before the first iteration of a fit, to show the relative error (see
    :mod:`dasknmf.callbacks`); ``on_start(max_iter)`` before the fit; and
    ``on_phase(info)`` (a :class:`dasknmf.callbacks.PhaseInfo`) during the phases
    that are not iterations: reading or ingesting the input, the statistics pass and
    the initialisation, checkpoints and writing the outputs.
    """

    def event(self, message: str) -> None:
        """A step of the job: scheduler ready, input opened, outputs written."""

    def iteration(self, info: IterationInfo) -> None:
        """One iteration of the fit."""


class ProgressCallback:
    """A :class:`Progress`'s ``iteration`` as a fit callback, which also passes on
    ``‖X‖_F`` (the scale of the relative error) if the progress takes it."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def __call__(self, info: IterationInfo | SweepProgress) -> None:
        self.progress.iteration(info)

    def on_norm(self, norm: float | None) -> None:
        tell_norm([self.progress], norm)

    def on_phase(self, info: PhaseInfo) -> None:
        on_phase = getattr(self.progress, "on_phase", None)
        if callable(on_phase):
            on_phase(info)


def log_iteration(info: IterationInfo | SweepProgress) -> None:
    """A fit callback: each iteration's error and time, logged at DEBUG level."""
    error = getattr(info, "error", float("nan"))  # a sweep's progress has no one error
    logger.debug("iteration %d: error %.6g (%.2f s)", info.iteration, error, info.elapsed)
