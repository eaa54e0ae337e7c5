"""How ``dasknmf run``, ``submit`` and ``resume`` show a job while it runs.

On a terminal, live bars (tqdm): one for each phase before the fit (statistics,
initialisation, reading the input, writing outputs, checkpoints), with its reads of
``V`` or its tasks and the seconds it has lasted, and one for the iterations with the
error, the relative error and s/iteration; the job's steps print above them.

Anywhere else (a batch log, SLURM's ``.out`` file) plain lines at a rate a log can
hold: the first :data:`PLAIN_FIRST` iterations one by one, then at most one line
every :data:`PLAIN_EVERY_S` seconds (always the latest iteration, and always the
last one before the next step of the job), each stamped with the time of day. A phase
is written about once it has lasted :data:`QUIET_S` seconds, then
every :data:`PLAIN_EVERY_S` seconds until it ends, even when nothing reports on it
(a watcher thread looks every :data:`WATCH_S` seconds): no phase runs in silence.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from typing import Any, TextIO

from dasknmf.callbacks import PhaseInfo, iteration_line, relative_error, timing

__all__ = ["PLAIN_EVERY_S", "PLAIN_FIRST", "QUIET_S", "ProgressPrinter"]

#: A phase is written about once it has lasted this long (seconds).
QUIET_S = 2.0
#: Iterations printed one by one at the start of a fit, in plain lines.
PLAIN_FIRST = 10
#: Seconds between two plain lines about the same thing after that.
PLAIN_EVERY_S = 10.0
#: Seconds between two looks of the watcher at a phase or iteration without news.
WATCH_S = 0.5


def _is_terminal(stream: TextIO | None) -> bool:
    isatty = getattr(stream or sys.stdout, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class ProgressPrinter:
    """Shows a job's steps, the phases before its fit and its iterations.

    Parameters
    ----------
    stream : file-like, optional
        Where to write (``sys.stdout`` when not given, looked up at each write).
    live : bool, optional
        Live bars (a terminal) or plain lines; by default, bars when ``stream`` is a
        terminal.
    first, every_s, quiet_s : int, float, float, optional
        Plain lines: iterations printed one by one at the start; seconds between
        two lines after that; seconds a phase lasts before it is written about
        (:data:`PLAIN_FIRST`, :data:`PLAIN_EVERY_S`, :data:`QUIET_S` by default).

    Examples
    --------
    >>> import io
    >>> from dasknmf.fit_state import IterationInfo
    >>> p = ProgressPrinter(io.StringIO(), live=False)
    >>> p.on_norm(20.0)
    >>> p.iteration(IterationInfo(2, 5.0, 10.0, 0.5, None, None))
    >>> p.stream.getvalue()  # doctest: +ELLIPSIS
    'iter     2  error 5.000000e+00  relative 0.2500  0.5 s  0.250 s/iter  [...]\\n'
    >>> p.close()
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        first: int | None = None,
        every_s: float | None = None,
        quiet_s: float | None = None,
    ) -> None:
        self.stream = stream
        self.live = _is_terminal(stream) if live is None else live
        # The module's figures when not given, read now (so that they can be set).
        self.first = PLAIN_FIRST if first is None else first
        self.every_s = PLAIN_EVERY_S if every_s is None else every_s
        self.quiet_s = QUIET_S if quiet_s is None else quiet_s
        self.norm: float | None = None
        self.total: int | None = None
        self._lock = threading.RLock()
        self._last = (0, 0.0)  # (iteration, elapsed) of the previous iteration seen
        self._printed = 0  # plain iteration lines written
        self._pending: str | None = None  # plain: the latest iteration not written
        self._last_line = time.monotonic()
        self._phase: PhaseInfo | None = None
        self._phase_start = 0.0
        self._phase_line: float | None = None  # plain: when the phase was last written
        self._bars: dict[str, Any] = {}  # live: "phase" and "iterations"
        self._closed = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- what the runner calls -------------------------------------------------

    def event(self, message: str) -> None:
        """Print a step of the job."""
        with self._lock:
            self._flush()
            self._write(message)

    def on_norm(self, norm: float | None) -> None:
        """Show the relative error with ``norm`` (``‖X‖_F``) as its scale."""
        self.norm = norm

    def on_start(self, total: int | None) -> None:
        """The fit is to run up to ``total`` iterations (a bar's end)."""
        self.total = total

    def on_phase(self, info: PhaseInfo) -> None:
        """A phase before or around the fit (see :class:`dasknmf.callbacks.PhaseInfo`)."""
        with self._lock:
            now = time.monotonic()
            if self._phase is None or self._phase.phase != info.phase:
                self._phase_start, self._phase_line = now - info.elapsed, None
            self._phase = info
            if self.live:
                self._phase_bar(info)
            elif info.finished:
                if self._phase_line is not None or info.elapsed >= self.quiet_s:
                    self._stamped(info.describe())
            elif self._due(self._phase_line, now, info.elapsed):
                self._phase_line = now
                self._stamped(info.describe())
            if info.finished:
                self._phase = None
            else:
                self._watch()

    def iteration(self, info: Any) -> None:
        """One iteration of a fit (or of a rank sweep: its replicates still running
        instead of an error)."""
        with self._lock:
            last_iteration, last_elapsed = self._last
            per_iteration = (info.elapsed - last_elapsed) / max(info.iteration - last_iteration, 1)
            self._last = (info.iteration, info.elapsed)
            if self.live:
                self._iteration_bar(info, per_iteration)
                return
            if hasattr(info, "running"):  # a SweepProgress
                line = (
                    f"iter {info.iteration:5d}  running {info.running:4d} of {info.total} "
                    f"replicates  {timing(info.elapsed, per_iteration)}"
                )
            else:
                line = iteration_line(info, self.norm, per_iteration)
            now = time.monotonic()
            if self._printed < self.first or now - self._last_line >= self.every_s:
                self._pending = None
                self._printed += 1
                self._stamped(line)
            else:
                self._pending = line
            self._watch()

    def close(self) -> None:
        """Write what is pending, close the bars and stop the watcher."""
        with self._lock:
            self._flush()
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()
        self._closed.set()

    def __enter__(self) -> ProgressPrinter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plain lines --------------------------------------------------------------

    def _due(self, last: float | None, now: float, elapsed: float) -> bool:
        if last is None:
            return elapsed >= self.quiet_s
        return now - last >= self.every_s

    def _flush(self) -> None:
        if self._pending is not None:
            line, self._pending = self._pending, None
            self._printed += 1
            self._stamped(line)

    def _stamped(self, text: str) -> None:
        self._write(f"{text}  [{time.strftime('%H:%M:%S')}]")

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stdout
        if self._bars:
            from tqdm import tqdm

            tqdm.write(text, file=stream)  # above the bars, which are drawn again
        else:
            stream.write(text + "\n")
            stream.flush()
        self._last_line = time.monotonic()

    def _watch(self) -> None:
        """Start the watcher, which writes about a phase or iterations without news."""
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watching, daemon=True)
            self._watcher.start()

    def _watching(self) -> None:
        while not self._closed.wait(WATCH_S):
            with self._lock:
                now = time.monotonic()
                if self.live:
                    for bar in self._bars.values():
                        bar.refresh()  # its clock moves on
                    continue
                if self._pending is not None and now - self._last_line >= self.every_s:
                    self._flush()
                phase = self._phase
                if phase is not None and self._due(self._phase_line, now, now - self._phase_start):
                    self._phase_line = now
                    self._stamped(replace(phase, elapsed=now - self._phase_start).describe())

    # -- live bars ------------------------------------------------------------------

    def _bar(self, key: str, **kwargs: Any) -> Any:
        bar = self._bars.get(key)
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(file=self.stream or sys.stdout, dynamic_ncols=True, **kwargs)
            self._bars[key] = bar
        return bar

    def _phase_bar(self, info: PhaseInfo) -> None:
        if info.finished:
            bar = self._bars.pop("phase", None)
            if bar is not None:
                bar.close()
            if info.elapsed >= self.quiet_s:
                self._write(f"{info.phase}: {info.elapsed:.1f} s")
            return
        bar = self._bar("phase", desc=info.phase, total=info.total_passes or None, unit="read")
        if bar.desc != info.phase:
            bar.set_description_str(info.phase, refresh=False)
        if info.total_passes:
            bar.total = info.total_passes
            bar.n = info.passes
        if info.total_tasks:
            bar.set_postfix_str(f"tasks {info.tasks}/{info.total_tasks}", refresh=False)
        bar.refresh()

    def _iteration_bar(self, info: Any, per_iteration: float) -> None:
        bar = self._bar("iterations", desc="iter", total=self.total, unit="it")
        if hasattr(info, "running"):
            status = f"running {info.running} of {info.total} replicates"
        else:
            rel = relative_error(info.error, self.norm)
            status = f"error {info.error:.6e}" + ("" if rel is None else f"  relative {rel:.4f}")
        bar.set_postfix_str(f"{status}  {per_iteration:.3f} s/iter", refresh=False)
        bar.update(info.iteration - bar.n)
        self._watch()
