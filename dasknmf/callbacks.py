"""Ready-made observers of a fit: its iterations (:class:`dasknmf.fit_state.IterationInfo`)
and the phases before them (:class:`PhaseInfo`: the statistics pass, the
initialisation), so that no phase runs in silence.

An observer hears of the phases when it has an ``on_phase(info)`` method; the
estimator passes its callbacks (and, with ``verbose``, a :class:`PrintProgress`) to a
:class:`PhaseReporter`. An observer with an ``on_norm(norm)`` method is told ``‖X‖_F``
before the first iteration (:func:`tell_norm`; ``None`` where the loss is not the
Frobenius norm), the scale of the *relative error* ``‖X − WH‖_F / ‖X‖_F``
(:func:`relative_error`): the one quantity called so in progress lines, summaries and
``NMF.relative_error_``. The error divided by the initial factors' error is called
"of initial".
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from dask.callbacks import Callback

from dasknmf.fit_state import IterationInfo
from dasknmf.stopping import StopReason
from dasknmf.validation import PATIENCE

#: A phase is announced only once it has lasted this long (seconds): quick phases
#: print nothing, slow ones are never silent for longer.
QUIET_S = 2.0
#: Seconds between two progress lines of one phase (plain lines suit batch logs).
PHASE_EVERY_S = 10.0
#: Seconds between two task-count updates sent to the observers.
_TASK_EVENT_S = 0.5


@dataclass(frozen=True)
class PhaseInfo:
    """What an observer's ``on_phase`` sees during a phase of a fit.

    Attributes
    ----------
    phase : str
        ``'statistics'`` or ``'initialization (<method>)'``.
    elapsed : float
        Seconds since the phase began.
    finished : bool
        Whether the phase has just ended.
    passes, total_passes : int
        Reads of ``V`` done and planned in the phase (0 and 0 when it does not count
        them, as the statistics pass, which is one read).
    tasks, total_tasks : int
        Tasks done and in all of the graph being computed (0 and 0 when none runs
        under dask's local schedulers).
    """

    phase: str
    elapsed: float
    finished: bool = False
    passes: int = 0
    total_passes: int = 0
    tasks: int = 0
    total_tasks: int = 0

    def describe(self) -> str:
        """One line: phase, progress, seconds."""
        parts = [f"{self.phase:<28s}"]
        if self.finished:
            parts.append("done")
        else:
            if self.total_passes:
                parts.append(f"reads of V {self.passes}/{self.total_passes}")
            if self.total_tasks:
                parts.append(f"tasks {self.tasks}/{self.total_tasks}")
        parts.append(f"{self.elapsed:.1f}s")
        return "  ".join(parts)


class PhaseReporter:
    """Sends :class:`PhaseInfo` to every observer with an ``on_phase`` method.

    ``with reporter.phase(name):`` brackets a phase; inside it, tasks finished by
    dask's local schedulers are counted, and :meth:`passes` (an ``on_pass`` for
    :func:`dasknmf.linalg.randomized_svd`) reports reads of ``V``.
    """

    def __init__(self, observers: Iterable[object]) -> None:
        self._observers = [o.on_phase for o in observers if callable(getattr(o, "on_phase", None))]
        self._name: str | None = None
        self._start = 0.0
        self._passes = (0, 0)
        self._tasks = (0, 0)
        self._last_event = 0.0

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[PhaseReporter]:
        """Report the phase ``name`` while the block runs, and its end."""
        if not self._observers:
            yield self
            return
        self._name, self._start = name, time.perf_counter()
        self._passes, self._tasks = (0, 0), (0, 0)
        self._emit()
        try:
            with _TaskCounter(self):
                yield self
        finally:
            self._emit(finished=True)
            self._name = None

    def passes(self, done: int, total: int) -> None:
        """``done`` of ``total`` reads of ``V`` finished."""
        if self._name is not None:
            self._passes, self._tasks = (done, total), (0, 0)
            self._emit()

    def _task_done(self, done: int, total: int) -> None:
        self._tasks = (done, total)
        now = time.perf_counter()
        if now - self._last_event >= _TASK_EVENT_S:
            self._emit()

    def _emit(self, finished: bool = False) -> None:
        self._last_event = time.perf_counter()
        info = PhaseInfo(
            self._name or "",
            self._last_event - self._start,
            finished,
            *self._passes,
            *self._tasks,
        )
        for observe in self._observers:
            observe(info)


class _TaskCounter(Callback):
    """Counts the tasks of graphs computed by dask's local schedulers."""

    def __init__(self, reporter: PhaseReporter) -> None:
        super().__init__()
        self._reporter = reporter
        self._done = self._total = 0

    def _start_state(self, dsk, state) -> None:
        self._done = 0
        self._total = len(state["ready"]) + len(state["waiting"])

    def _posttask(self, key, result, dsk, state, worker_id) -> None:
        self._done += 1
        self._reporter._task_done(self._done, self._total)


def phase_reporter(callbacks: Iterable[object] | None, verbose: int) -> PhaseReporter:
    """The reporter of a fit's phases: its ``callbacks``, and a :class:`PrintProgress`
    when ``verbose``."""
    observers = list(callbacks or [])
    if verbose:
        observers.append(PrintProgress())
    return PhaseReporter(observers)


class PrintProgress:
    """Write one line per iteration (:func:`iteration_line`: number, error, relative
    error, seconds so far and per iteration); and lines for the phases before the first
    iteration (:meth:`on_phase`).

    Parameters
    ----------
    stream : file-like, optional
        Where to write; ``sys.stdout`` when not given (looked up at each call, so
        redirections made later are honoured).
    every : int
        Write every ``every``-th iteration only.
    norm : float or None
        ``‖X‖_F``, the scale of the relative error; the estimator gives it before the
        first iteration (:meth:`on_norm`). Without it (a loss other than the Frobenius
        norm) the lines show the error divided by the initial factors' error instead
        (``of initial``).
    quiet_s, phase_every_s : float
        A phase is written about only once it has lasted ``quiet_s`` seconds, then
        at most every ``phase_every_s`` seconds, and its end.

    Examples
    --------
    >>> import numpy as np, dasknmf
    >>> X = np.random.default_rng(0).random((20, 10))
    >>> progress = dasknmf.PrintProgress()
    >>> model = dasknmf.NMF(3, init="random", random_state=0, max_iter=2, callbacks=[progress])
    >>> _ = model.fit(X)  # doctest: +ELLIPSIS
    iter     1  error ...  relative 0.44...  ... s/iter
    iter     2  error ...
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        every: int = 1,
        *,
        norm: float | None = None,
        quiet_s: float = QUIET_S,
        phase_every_s: float = PHASE_EVERY_S,
    ) -> None:
        self.stream = stream
        self.every = every
        self.norm = norm
        self._last = (0, 0.0)
        self.quiet_s = quiet_s
        self.phase_every_s = phase_every_s
        self._phase_written: tuple[str, float] | None = None

    def on_phase(self, info: PhaseInfo) -> None:
        """A line about ``info``'s phase, at the rate ``quiet_s`` and
        ``phase_every_s`` allow; always one at its end if one was written before."""
        if info.elapsed < self.quiet_s and not info.finished:
            return
        written = self._phase_written
        if written is not None and written[0] != info.phase:
            written = None
        if info.finished:
            self._phase_written = None
            if written is None and info.elapsed < self.quiet_s:
                return
        elif written is not None and info.elapsed - written[1] < self.phase_every_s:
            return
        else:
            self._phase_written = (info.phase, info.elapsed)
        stream = self.stream or sys.stdout
        stream.write(info.describe() + "\n")
        stream.flush()

    def on_norm(self, norm: float | None) -> None:
        """Take ``norm`` (``‖X‖_F``, see :func:`tell_norm`) as the scale of the relative
        error."""
        self.norm = norm

    def __call__(self, info: IterationInfo) -> None:
        if info.iteration % self.every:
            return
        last_iteration, last_elapsed = self._last
        per_iteration = (info.elapsed - last_elapsed) / max(info.iteration - last_iteration, 1)
        self._last = (info.iteration, info.elapsed)
        stream = self.stream or sys.stdout
        stream.write(iteration_line(info, self.norm, per_iteration) + "\n")
        stream.flush()


def relative_error(error: float, norm: float | None) -> float | None:
    """``error / norm``: with ``norm = ‖X‖_F``, the relative error ``‖X − WH‖_F /
    ‖X‖_F``; ``None`` without a norm (a loss other than the Frobenius norm) or for a
    zero ``X``.

    Examples
    --------
    >>> relative_error(3.0, 4.0), relative_error(3.0, None)
    (0.75, None)
    """
    return error / norm if norm else None


def tell_norm(observers: Iterable[object], norm: float | None) -> None:
    """Give ``norm`` to every observer with an ``on_norm`` method (before the first
    iteration, so that its lines can show the relative error)."""
    for observer in observers:
        hear = getattr(observer, "on_norm", None)
        if callable(hear):
            hear(norm)


def timing(elapsed: float, per_iteration: float) -> str:
    """The end of every progress line: seconds since the iterations began, and per
    iteration since the previous line."""
    return f"{elapsed:.1f} s  {per_iteration:.3f} s/iter"


def iteration_line(info: IterationInfo, norm: float | None, per_iteration: float) -> str:
    """The progress line of one iteration, the same in ``verbose`` fits, ``dasknmf demo``
    and ``dasknmf run``: the error, the relative error (``relative``, with ``norm =
    ‖X‖_F``) or else the error divided by the initial factors' (``of initial``), and
    :func:`timing`.

    Examples
    --------
    >>> from dasknmf.fit_state import IterationInfo
    >>> info = IterationInfo(10, 5.0, 8.0, 2.5, None, None)
    >>> iteration_line(info, 10.0, 0.25)
    'iter    10  error 5.000000e+00  relative 0.5000  2.5 s  0.250 s/iter'
    >>> iteration_line(info, None, 0.25)
    'iter    10  error 5.000000e+00  of initial 0.6250  2.5 s  0.250 s/iter'
    """
    relative = relative_error(info.error, norm)
    if relative is not None:
        ratio = f"relative {relative:.4f}"
    else:
        initial = info.error / info.error_at_init if info.error_at_init else 0.0
        ratio = f"of initial {initial:.4f}"
    return (
        f"iter {info.iteration:5d}  error {info.error:.6e}  {ratio}  "
        f"{timing(info.elapsed, per_iteration)}"
    )


class StopRecorder:
    """A fit callback that keeps what the stopping rules saw at the last iteration, to
    say afterwards why the fit stopped (:meth:`reason`) and from which error it began.

    It keeps numbers only, not the factors of the iteration.

    Attributes
    ----------
    iteration : int
        The last iteration seen (0: none).
    error_at_init : float or None
        The error of the initial factors (``None``: no iteration seen).

    Examples
    --------
    >>> import numpy as np, dasknmf
    >>> X = np.random.default_rng(0).random((20, 10))
    >>> record = StopRecorder()
    >>> model = dasknmf.NMF(3, init="random", random_state=0, max_iter=5, callbacks=[record])
    >>> _ = model.fit(X)
    >>> print(record.reason(model).describe())
    ran all 5 iterations (max_iter)
    """

    def __init__(self) -> None:
        self.iteration = 0
        self.error_at_init: float | None = None
        self._by_tol = False
        self._decrease: float | None = None

    def __call__(self, info: IterationInfo) -> None:
        self.iteration, self.error_at_init = info.iteration, info.error_at_init
        self._by_tol = bool(info.converged)
        self._decrease = None
        if info.converged and info.error_at_init and info.check_error is not None:
            # The rule keeps the previous check's error when it stops (ToleranceRule).
            self._decrease = (info.check_error - info.error) / info.error_at_init

    def reason(self, model: Any) -> StopReason:
        """Why ``model`` (a fitted :class:`dasknmf.NMF` this observed) stopped."""
        n_iter, max_iter, tol = int(model.n_iter_), int(model.max_iter), float(model.tol)
        validated = getattr(model, "validation", None) is not None
        best = int(model.best_iteration_) if validated else None
        if self._by_tol and self.iteration == n_iter:
            rule = "tol"
        elif n_iter < max_iter and best is not None:
            rule = "validation"
        elif n_iter < max_iter and model.converged_:
            rule = "tol"  # a resumed fit whose checkpoint had already stopped
        else:
            rule = "max_iter"
        return StopReason(
            rule,
            n_iter,
            max_iter,
            tol,
            decrease=self._decrease if rule == "tol" else None,
            patience=PATIENCE if rule == "validation" else 0,
            best_iteration=best,
        )
