"""The output directory of a job, written atomically.

Everything is written into a hidden temporary sibling of ``output.directory`` and
renamed into place at the end, by the same code that writes matrix stores
(:func:`dasknmf.storage.atomic_store`): after a crash at any moment the path
holds the previous complete output or the new one, never a mixture, and a stray
temporary directory is removed on the way out. An existing output is replaced only
with ``output.overwrite`` (in one atomic exchange where the OS has one), and only if
it *is* a job output: an unrelated directory is never deleted.

Layout::

    <directory>/
      zarr.json            zarr v3 group; its "dasknmf" attribute marks a job output
      W.zarr/ H.zarr/      dense matrix stores (dasknmf.open_matrix reads them)
      summary.json         what ran and how it went (SUMMARY_VERSION); written last
      convergence.png      error against iteration (report.plot)
      top_features.json    heaviest features per component (when there is a
      top_features.txt     vocabulary and report.top_features > 0)

The directory is a zarr group so that it carries the same kind of marker as a store:
that is what lets the store's atomic replacement recognise it as replaceable.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dasknmf.errors import DaskNMFError
from dasknmf.jobs import report
from dasknmf.storage import MARKER_KEY, StoreLocation, atomic_store, write_matrix

__all__ = [
    "OUTPUT_FORMAT",
    "SUMMARY_VERSION",
    "FittedJob",
    "OutputExistsError",
    "atomic_output",
    "check_output_target",
    "is_job_output",
    "write_outputs",
]

logger = logging.getLogger(__name__)

#: The ``format`` of the marker of a job output directory.
OUTPUT_FORMAT = "dasknmf-job-output"
#: Version of the layout of ``summary.json`` (its ``schema_version`` key).
SUMMARY_VERSION = 1

W_STORE, H_STORE = "W.zarr", "H.zarr"
SUMMARY = "summary.json"
PLOT = "convergence.png"
TOP_JSON, TOP_TXT = "top_features.json", "top_features.txt"


class OutputExistsError(DaskNMFError, FileExistsError):
    """The output directory exists and may not (or can never) be replaced."""


def is_job_output(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds the output of a job (complete or not).

    Examples
    --------
    >>> is_job_output("/no/such/dir")
    False
    """
    loc = StoreLocation.from_user(path)
    if not loc.holds_marker():
        return False
    return loc.open_existing().attrs.get(MARKER_KEY, {}).get("format") == OUTPUT_FORMAT


def check_output_target(directory: str, *, overwrite: bool) -> bool:
    """Check that a job may write ``directory``; return whether it replaces an output.

    Called before a job starts, so that it fails before any work, not after the fit.

    Raises
    ------
    OutputExistsError
        ``directory`` exists (and is not an empty directory) and ``overwrite`` is
        false, or it holds something other than a job output.
    """
    loc = StoreLocation.from_user(directory)
    if not loc.exists() or loc.is_empty_dir():
        return False
    if not os.path.isdir(directory) or not is_job_output(directory):
        raise OutputExistsError(
            f"output.directory {directory!r} exists and is not the output of a dasknmf "
            "job; it is never replaced, not even with output.overwrite: choose another "
            "directory or remove it yourself"
        )
    if not overwrite:
        raise OutputExistsError(
            f"output.directory {directory!r} already holds a job's output; set "
            "output.overwrite: true (on the command line: --overwrite) to replace it"
        )
    return True


@dataclass(frozen=True)
class FittedJob:
    """What the fit of a job (a single fit, or a rank sweep: :mod:`dasknmf.jobs.sweep`)
    hands to the runner.

    Attributes
    ----------
    model : estimator
        The fitted :class:`dasknmf.NMF` or :class:`dasknmf.RankSweep`.
    result : dict
        ``summary.json``'s ``result``.
    extra : dict
        Further sections of ``summary.json`` (``evaluation``, ``sweep``).
    write : callable
        ``write(summary, started)`` writes the outputs atomically and returns their
        names (:func:`write_outputs` for a single fit).
    lines : tuple of str
        The result in words, printed even by ``--quiet``.
    """

    model: Any = field(repr=False)
    result: dict[str, Any] = field(repr=False)
    extra: dict[str, Any] = field(repr=False)
    write: Callable[[dict[str, Any], float], list[str]] = field(repr=False)
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutputWriter:
    """The hidden directory a job's results are written into (see :func:`atomic_output`)."""

    path: Path

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write the file ``name``."""
        (self.path / name).write_bytes(data)

    def write_text(self, name: str, text: str) -> None:
        """Write the UTF-8 text file ``name``."""
        (self.path / name).write_text(text, encoding="utf-8")

    def write_matrix(self, name: str, X: Any) -> None:
        """Write ``X`` (NumPy or dask) as the dense store ``name``."""
        write_matrix(X, self.path / name, format="dense")


@contextmanager
def atomic_output(directory: str, *, overwrite: bool) -> Iterator[OutputWriter]:
    """Context manager: write into the yielded :class:`OutputWriter`; on normal exit
    the result is at ``directory``, on any exception nothing has changed there.

    Examples
    --------
    >>> import tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "result")
    >>> with atomic_output(out, overwrite=False) as w:
    ...     w.write_text("note.txt", "hello")
    >>> sorted(os.listdir(out))
    ['note.txt', 'zarr.json']
    """
    check_output_target(directory, overwrite=overwrite)
    with atomic_store(StoreLocation.from_user(directory), overwrite=overwrite) as target:
        group = target.open_group("w")
        group.update_attributes(
            {MARKER_KEY: {"format": OUTPUT_FORMAT, "version": SUMMARY_VERSION}}
        )
        yield OutputWriter(Path(target.path))


def output_names(*, save_w: bool, plot: bool, top_features: bool) -> list[str]:
    """The names a job output will hold, in the order they are written."""
    names = [H_STORE] + ([W_STORE] if save_w else [])
    names += [TOP_JSON, TOP_TXT] if top_features else []
    names += [PLOT] if plot else []
    return [*names, SUMMARY]


def write_outputs(
    directory: str,
    *,
    overwrite: bool,
    W: Any,
    H: Any,
    summary: dict[str, Any],
    curve: Sequence[tuple[int, float]],
    plot: bool,
    top: Sequence[Sequence[dict[str, Any]]] | None,
    started: float,
) -> list[str]:
    """Write a job's results atomically to ``directory``; return the names written.

    ``W`` is left out when ``None``. ``summary`` is completed with ``outputs`` and the
    write and total times (``started`` is the job's ``time.perf_counter()`` at its
    start) and written last.
    """
    names = output_names(save_w=W is not None, plot=plot, top_features=top is not None)
    t0 = time.perf_counter()
    with atomic_output(directory, overwrite=overwrite) as out:
        out.write_matrix(H_STORE, H)
        if W is not None:
            out.write_matrix(W_STORE, W)
        if top is not None:
            out.write_text(TOP_JSON, json.dumps({"components": top}, indent=2) + "\n")
            out.write_text(TOP_TXT, report.format_top_features(top) + "\n")
        if plot:
            result, solver = summary["result"], summary["config"]["model"]["solver"]
            title = f"dasknmf {solver}, k = {result['n_components']}"
            out.write_bytes(PLOT, report.convergence_png(curve, title=title))
        now = time.perf_counter()
        summary["outputs"] = names
        summary["timings"]["write"] = now - t0
        summary["timings"]["total"] = now - started
        out.write_text(SUMMARY, json.dumps(summary, indent=2, default=_json_default) + "\n")
    logger.info("job output written to %s", directory)
    return names


def _json_default(value: Any) -> Any:
    """NumPy scalars and paths in the summary."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
