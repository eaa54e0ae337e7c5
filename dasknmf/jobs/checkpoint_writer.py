"""When a job writes its checkpoints: every few iterations, and once more when it is
asked to stop (:mod:`dasknmf.jobs.checkpoints` writes and reads them).

A job asked to stop (``dasknmf run``/``submit`` on SIGUSR1, e.g. ``sbatch
--signal=B:USR1@120`` before a time limit) writes a checkpoint of the iteration under
way at its end and stops with :class:`JobStopped`: at most one iteration is lost,
however far the last periodic checkpoint is.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from dasknmf.errors import DaskNMFError
from dasknmf.fit_state import IterationInfo
from dasknmf.jobs import checkpoints
from dasknmf.sweep.loop import SweepProgress

__all__ = ["CheckpointWriter", "JobStopped"]


class JobStopped(DaskNMFError, InterruptedError):
    """A job stopped on request (``dasknmf run`` or ``submit`` sent SIGUSR1) after
    writing a checkpoint at the iteration it had reached, so as to be resumed.

    Attributes
    ----------
    iteration : int
        The iteration of that checkpoint.
    path : Path
        Its ``state.json``.
    """

    def __init__(self, iteration: int, path: Path) -> None:
        super().__init__(
            f"stopped on request after iteration {iteration}, with a checkpoint of that "
            f"iteration ({str(path)!r})"
        )
        self.iteration = iteration
        self.path = path


class CheckpointWriter:
    """Fit callback writing a checkpoint every ``every`` iterations, and a last one
    when the job is asked to stop.

    Parameters
    ----------
    directory : str or os.PathLike
        The checkpoints folder.
    every : int
        Iterations between two checkpoints (0: only the one of a ``stop``).
    job : callable
        Returns the ``job`` record to store, given the number of checkpoints written
        so far including this one.
    written : int
        Checkpoints already written (by the run that a resumed job continues).
    say : callable, optional
        Told of each checkpoint written.
    stop : threading.Event, optional
        Set (by a signal handler) to stop the fit: at the end of the iteration under
        way the writer writes a checkpoint of it and raises :class:`JobStopped`. A
        flag read between iterations, because a signal handler cannot write one
        itself: the factors are on the workers, in the middle of an iteration.
    phase : callable, optional
        ``phase(name)`` returns a context manager around each write (a
        :meth:`dasknmf.callbacks.PhaseReporter.phase`, so that a long write is shown).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        every: int,
        job: Callable[[int], Mapping],
        *,
        written: int = 0,
        say: Callable[[str], object] | None = None,
        stop: threading.Event | None = None,
        phase: Callable[[str], AbstractContextManager[object]] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.phase = phase or (lambda name: nullcontext())
        self.every = every
        self.job = job
        self.written = written
        self.say = say
        self.stop = stop

    def __call__(self, info: IterationInfo | SweepProgress) -> None:
        stopping = self.stop is not None and self.stop.is_set()
        if not stopping and (not self.every or info.iteration % self.every):
            return
        with self.phase("checkpoint"):
            path = checkpoints.write_checkpoint(
                self.directory, info.state(), self.job(self.written + 1)
            )
        self.written += 1
        if self.say is not None:
            why = " (stop requested)" if stopping else ""
            self.say(f"checkpoint: iteration {info.iteration}{why}")
        if stopping:
            raise JobStopped(info.iteration, path)
