"""Checkpoints of a job: the fit's :class:`~dasknmf.fit_state.FitState` on disk, written
atomically every few iterations and read back by ``dasknmf resume``.

The state itself (what the fit loop needs to continue exactly) belongs to
:mod:`dasknmf.fit`; this module only stores it. A checkpoint lives in the job's work
area (the hidden ``.NAME.dasknmf-work`` next to the output directory)::

    checkpoints/
      state.json                 the latest checkpoint; written last
      iter-000012-1f0c9a3e/      its factors: W.zarr and H.zarr, dense dasknmf stores
                                 (W.factor.zarr for a W kept in a factor store)

A factor that the fit keeps in a :class:`~dasknmf.storage.FactorStore` (``factors=
"store"``: larger than memory) is not copied: its current generation, whose files are
never written again, is hard-linked into the checkpoint (``W.factor.zarr``), so the
checkpoint costs no I/O whatever the factor's size.

``state.json`` holds the state's numbers (iteration, errors, the stopping rule's
reference), the name of the folder of its factors, and a ``job`` record that this
module stores without reading (the runner puts there the resolved job configuration
and the input's fingerprint, so that resuming needs nothing but the directory).

Writing one: the factors go to a hidden temporary folder, are flushed to disk and
renamed to ``iter-…``; then ``state.json`` is written to a temporary file, flushed
and renamed over the previous one (``os.replace``, the commit); then every other
entry of ``checkpoints/`` (the previous factors, leftovers of an interrupted write) is
removed. A crash at any moment leaves ``state.json`` naming complete factors: the
previous checkpoint's until the commit, the new one's after it.

When to write one (every few iterations, and on a stop request) is
:mod:`dasknmf.jobs.checkpoint_writer`'s.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dasknmf.errors import DaskNMFError
from dasknmf.fit_state import FitState
from dasknmf.jobs.sweep_state import SWEEP_KIND, sweep_arrays, sweep_numbers, sweep_state
from dasknmf.storage import open_matrix, write_matrix
from dasknmf.storage.factors import link_generation, open_generation, stored_source
from dasknmf.sweep.loop import SweepState

__all__ = [
    "CHECKPOINTS",
    "Checkpoint",
    "CorruptCheckpointError",
    "NoCheckpointError",
    "read_checkpoint",
    "write_checkpoint",
]

logger = logging.getLogger(__name__)

#: Folder of the checkpoints inside a work area, and the file naming the latest one.
CHECKPOINTS = "checkpoints"
STATE = "state.json"
#: ``format`` and ``version`` of ``state.json``.
CHECKPOINT_FORMAT = "dasknmf-checkpoint"
CHECKPOINT_VERSION = 1
W_STORE, H_STORE = "W.zarr", "H.zarr"
#: The name of a factor linked from a factor store's generation, for each of the above.
LINKED = {W_STORE: "W.factor.zarr", H_STORE: "H.factor.zarr"}
_TMP = ".tmp-"


class NoCheckpointError(DaskNMFError, FileNotFoundError):
    """There is no checkpoint to resume from."""


class CorruptCheckpointError(DaskNMFError, ValueError):
    """A checkpoint exists but cannot be read back whole."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read back by :func:`read_checkpoint`.

    Attributes
    ----------
    state : FitState or SweepState
        Where the fit (or the rank sweep, :mod:`dasknmf.jobs.sweep_state`) stood;
        its factors are dask arrays read lazily from the checkpoint's stores.
    job : dict
        The record given to :func:`write_checkpoint`.
    written_at : str
        When it was written (ISO 8601, UTC).
    path : Path
        Its ``state.json``.
    """

    state: FitState | SweepState = field(repr=False)
    job: dict[str, Any] = field(repr=False)
    written_at: str
    path: Path


def write_checkpoint(
    directory: str | os.PathLike[str], state: FitState | SweepState, job: Mapping
) -> Path:
    """Write ``state`` as the latest checkpoint in ``directory``, atomically.

    Parameters
    ----------
    directory : str or os.PathLike
        The checkpoints folder (created if needed).
    state : FitState or SweepState
        From :meth:`dasknmf.IterationInfo.state` (or a rank sweep's
        :meth:`dasknmf.SweepProgress.state`); its factors (NumPy or dask arrays) are
        written as dense stores.
    job : mapping
        JSON-compatible record stored with it (given back as :attr:`Checkpoint.job`).

    Returns
    -------
    Path
        The ``state.json`` written.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from dasknmf.fit_state import FitState
    >>> d = tempfile.mkdtemp()
    >>> s = FitState(2, np.ones((4, 2)), np.ones((2, 3)), 1.0, 3.0, 3.0, ((1, 2.0), (2, 1.0)))
    >>> _ = write_checkpoint(d, s, {"note": "example"})
    >>> read_checkpoint(d).state.iteration
    2
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"iter-{state.iteration:06d}-{uuid.uuid4().hex[:8]}"
    tmp = folder / f"{_TMP}{name}"
    if isinstance(state, SweepState):
        arrays, numbers = sweep_arrays(state, W_STORE, H_STORE), sweep_numbers(state)
    else:
        arrays, numbers = {W_STORE: state.W, H_STORE: state.H}, _fit_numbers(state)
    try:
        tmp.mkdir()
        for store, X in arrays.items():
            source = stored_source(X)
            if source is not None:
                link_generation(source, tmp / LINKED[store])
            else:
                write_matrix(X, tmp / store, format="dense")
        _fsync_tree(tmp)
        os.rename(tmp, folder / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    record = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "factors": name,
        "state": numbers,
        "job": dict(job),
    }
    path = folder / STATE
    _replace_file(path, json.dumps(record, indent=1, allow_nan=True) + "\n")
    for entry in folder.iterdir():
        if entry.name not in (STATE, name):
            _remove(entry)
    logger.info("checkpoint at iteration %d written to %s", state.iteration, folder / name)
    return path


def _fit_numbers(state: FitState) -> dict[str, Any]:
    return {
        "iteration": int(state.iteration),
        "error": float(state.error),
        "error_at_init": float(state.error_at_init),
        "check_error": float(state.check_error),
        "converged": bool(state.converged),
        "elapsed": float(state.elapsed),
        "errors": [[int(i), float(e)] for i, e in state.errors],
    }


def read_checkpoint(directory: str | os.PathLike[str]) -> Checkpoint:
    """Read the latest checkpoint in ``directory`` (its factors lazily).

    Raises
    ------
    NoCheckpointError
        ``directory`` or its ``state.json`` does not exist.
    CorruptCheckpointError
        ``state.json`` or the factors it names are unreadable, incomplete or
        inconsistent; the message names the file.
    """
    path = Path(directory) / STATE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NoCheckpointError(f"no checkpoint: {str(path)!r} does not exist") from None
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise CorruptCheckpointError(
            f"checkpoint {str(path)!r} is not valid JSON: {exc}"
        ) from None
    state_record = record.get("state") if isinstance(record, dict) else None
    if isinstance(state_record, dict) and state_record.get("kind") == SWEEP_KIND:
        return _read_sweep(record, path)
    state, factors, written_at = _parse(record, path)
    try:
        W, H = (_open_factor(path.parent / factors, name) for name in (W_STORE, H_STORE))
    except DaskNMFError as exc:
        raise CorruptCheckpointError(
            f"checkpoint {str(path)!r}: its factors cannot be read: {exc}"
        ) from None
    if W.ndim != 2 or H.ndim != 2 or W.shape[1] != H.shape[0]:
        raise CorruptCheckpointError(
            f"checkpoint {str(path)!r}: factors of shapes {W.shape} and {H.shape} do not "
            "form a product W H"
        )
    return Checkpoint(FitState(W=W, H=H, **state), dict(record["job"]), written_at, path)


def _open_factor(folder: Path, store: str) -> Any:
    """A checkpoint's factor ``store``, or the factor-store generation linked in its
    place (a factor the fit kept in a store)."""
    linked = folder / LINKED[store] if store in LINKED else None
    if linked is not None and linked.exists():
        return open_generation(linked)
    return open_matrix(folder / store)


def _read_sweep(record: dict[str, Any], path: Path) -> Checkpoint:
    """A rank sweep's checkpoint (:mod:`dasknmf.jobs.sweep_state`)."""
    folder = _check_record(record, path)

    def open_store(name: str) -> Any:
        try:
            return _open_factor(path.parent / folder, name)
        except DaskNMFError as exc:
            raise CorruptCheckpointError(
                f"checkpoint {str(path)!r}: its factors cannot be read: {exc}"
            ) from None

    try:
        state = sweep_state(record["state"], open_store, W_STORE, H_STORE)
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptCheckpointError(
            f"checkpoint {str(path)!r}: malformed sweep state ({type(exc).__name__}: {exc})"
        ) from None
    return Checkpoint(state, dict(record["job"]), str(record.get("written_at", "unknown")), path)


def _check_record(record: Any, path: Path) -> str:
    """The factors' folder of a ``state.json`` record whose frame is checked."""
    factors, raw, job = record.get("factors"), record.get("state"), record.get("job")
    version = record.get("version")
    if record.get("format") != CHECKPOINT_FORMAT:
        what = f"not a dasknmf checkpoint (no format {CHECKPOINT_FORMAT!r})"
    elif not isinstance(version, int) or not 1 <= version <= CHECKPOINT_VERSION:
        what = f"version {version!r}; this dasknmf reads version {CHECKPOINT_VERSION}"
    elif not isinstance(factors, str) or "/" in factors or not factors.startswith("iter-"):
        what = f"invalid 'factors' entry {factors!r}"
    elif not isinstance(raw, dict) or not isinstance(job, dict):
        what = "'state' and 'job' must be mappings"
    else:
        return factors
    raise CorruptCheckpointError(f"checkpoint {str(path)!r}: {what}")


def _parse(record: Any, path: Path) -> tuple[dict[str, Any], str, str]:
    """The :class:`FitState` fields (factors aside), the factors' folder and the date
    of a ``state.json`` record, checked."""

    def bad(what: str) -> CorruptCheckpointError:
        return CorruptCheckpointError(f"checkpoint {str(path)!r}: {what}")

    if not isinstance(record, dict):
        raise bad(f"not a dasknmf checkpoint (no format {CHECKPOINT_FORMAT!r})")
    factors, raw = _check_record(record, path), record["state"]
    try:
        errors = tuple((int(i), float(e)) for i, e in raw["errors"])
        state = {
            "iteration": _count(raw["iteration"]),
            "error": float(raw["error"]),
            "error_at_init": float(raw["error_at_init"]),
            "check_error": float(raw["check_error"]),
            "converged": _flag(raw["converged"]),
            "elapsed": float(raw["elapsed"]),
            "errors": errors,
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise bad(f"malformed state {raw!r} ({type(exc).__name__}: {exc})") from None
    if errors and errors[-1] != (state["iteration"], state["error"]):
        raise bad(f"the error curve ends at {errors[-1]}, not at iteration {state['iteration']}")
    return state, factors, str(record.get("written_at", "unknown"))


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


# -- files -----------------------------------------------------------------------------


def _replace_file(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a flushed temporary file renamed over it."""
    tmp = path.with_name(f"{_TMP}{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` to disk, so that a rename made
    after it never names data still in the page cache (a machine crash)."""
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every OS; the data is flushed already
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)
