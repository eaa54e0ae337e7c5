"""Factors on disk: a factor matrix kept in a zarr store between iterations.

When ``W`` (``m × k``) does not fit in memory, a fit keeps it here. Each iteration
writes the new factor as a new *generation* (its own zarr array, chunked like the
factor's blocks) while the current one is still being read, then switches a small
pointer file to it. The pointer is replaced atomically (``os.replace``), so a crash
mid-iteration leaves the last committed generation whole: never a factor half old
and half new.

A generation is removed once nothing refers to it any more: the dask arrays read
from a generation hold its ``zarr.Array`` handle in their graphs, and a finaliser on
that handle deletes the generation when the last of them goes, unless the pointer
names it. So a callback may keep an iteration's factor (as early stopping keeps its
best one) and it stays readable for as long as it is kept, while an ordinary fit
holds at most two generations on disk: the one being read and the one being written.

Layout of a store directory::

    current.json        {"dasknmf_factor": 1, "generation": 7, ...} (the pointer)
    g00000007.zarr/     the committed generation
    g00000008.zarr/     the one being written (if any)
    scratch-*/          a fit's temporary arrays (the NNDSVD sketch), each a store
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import threading
import uuid
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr

from dasknmf.errors import InvalidParameterError, NotAStoreError

from .chunkfiles import LAYOUT, ChunkFiles, read_array, write_array

__all__ = [
    "FactorStore",
    "PendingFactor",
    "link_generation",
    "open_generation",
    "stored_source",
]

logger = logging.getLogger(__name__)

POINTER = "current.json"
#: Prefix of the directories :meth:`FactorStore.scratch` makes inside a store.
SCRATCH = "scratch-"
_OPEN: weakref.WeakValueDictionary[str, FactorStore] = weakref.WeakValueDictionary()
_OPEN_LOCK = threading.Lock()
FORMAT_KEY = "dasknmf_factor"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PendingFactor:
    """A generation being written: ``task`` writes ``array``'s blocks when computed."""

    generation: int
    target: zarr.Array
    task: Any
    chunks: tuple[tuple[int, ...], ...]


class FactorStore:
    """A directory holding one factor matrix in generations (see the module notes).

    Parameters
    ----------
    path : str or os.PathLike
        A local directory (on a file system every worker sees, for a cluster). It is
        created if missing; an existing directory must be empty or a factor store
        written before (whose generations the next commit replaces).
    remove_on_close : bool, default=False
        Whether :meth:`close` (or the garbage collection of this object) deletes the
        whole directory; :meth:`temporary` stores do.

    Examples
    --------
    >>> import dask.array as da, tempfile
    >>> store = FactorStore(tempfile.mkdtemp() + "/W")
    >>> X = da.ones((10, 3), chunks=(4, 3))
    >>> W = store.commit(store.write(X), compute=True)
    >>> float(W.sum().compute()), W.chunks
    (30.0, ((4, 4, 2), (3,)))
    >>> store.generation
    1
    """

    def __new__(cls, path: str | os.PathLike[str], **kwargs: Any) -> FactorStore:
        # One object per directory in a process: a second fit into the same store
        # must know which generations the first one's arrays still read.
        key = str(Path(os.fspath(path)).absolute())
        with _OPEN_LOCK:
            store = _OPEN.get(key)
            if store is None:
                store = super().__new__(cls)
                _OPEN[key] = store
        return store

    def __init__(self, path: str | os.PathLike[str], *, remove_on_close: bool = False) -> None:
        if getattr(self, "path", None) is not None:
            return  # an open store of this directory (see __new__)
        text = os.fspath(path)
        if "://" in text:
            raise InvalidParameterError(
                f"factor_store={text!r}: factors can be stored in a local directory (a "
                "shared file system for a cluster), not at a URL"
            )
        self.path = Path(text).absolute()
        self._check_directory()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.generation = 0
        self._live: dict[int, int] = {}  # generation -> handles alive
        pointer = self._read_pointer()
        if pointer is not None:
            self.generation = int(pointer["generation"])
        self._next = self.generation + 1
        self._sweep()
        self._closer = None
        if remove_on_close:
            self._closer = weakref.finalize(self, shutil.rmtree, str(self.path), True)

    @classmethod
    def temporary(cls, name: str = "W") -> FactorStore:
        """A store in a new directory under dask's ``temporary-directory`` (or the
        system's), deleted when the store is closed or garbage-collected."""
        parent = dask.config.get("temporary-directory", None) or None
        root = tempfile.mkdtemp(prefix="dasknmf-factors-", dir=parent)
        return cls(os.path.join(root, name), remove_on_close=True)._owning(root)

    def _owning(self, root: str) -> FactorStore:
        # A temporary store removes the directory mkdtemp made, not only its own.
        if self._closer is not None:
            self._closer.detach()
        self._closer = weakref.finalize(self, shutil.rmtree, root, True)
        return self

    def scratch(self, name: str) -> FactorStore:
        """A store for a fit's temporary arrays in a new directory inside this one
        (``scratch-<name>-<random>``: visible to every worker that sees this store),
        deleted when closed or garbage-collected, or else when this store is next
        opened (after a crash)."""
        path = self.path / f"{SCRATCH}{name}-{uuid.uuid4().hex[:12]}"
        return FactorStore(path, remove_on_close=True)

    def close(self) -> None:
        """Delete the directory now if this store owns it (a no-op otherwise)."""
        if self._closer is not None:
            self._closer()

    # -- writing -----------------------------------------------------------------

    def write(self, X: da.Array) -> PendingFactor:
        """A new generation holding ``X`` (written when the returned task is
        computed; nothing is switched until :meth:`commit`).

        ``X``'s blocks must be regular (all of one size along each axis but the
        last), as zarr's chunks are: each block is then one chunk, written by the task
        that computes it without any lock.
        """
        chunks = _regular(X.chunks)
        with self._lock:
            generation, self._next = self._next, self._next + 1
        target = zarr.create_array(
            str(self._generation_path(generation)),
            shape=X.shape,
            chunks=tuple(c[0] if c else 1 for c in chunks),
            dtype=X.dtype,
            fill_value=0,
            # Uncompressed (factor values barely compress; decoding would cost time),
            # in the layout whose chunk files the tasks write themselves; every chunk
            # on disk, so that a generation linked into a checkpoint can be checked
            # whole by counting them.
            **LAYOUT,
            config={"write_empty_chunks": True},
        )
        task = write_array(X, _files(target))
        return PendingFactor(generation, target, task, X.chunks)

    def commit(self, pending: PendingFactor, *, compute: bool = False) -> da.Array:
        """Make ``pending`` the current generation and return a dask array over it.

        With ``compute``, its write runs first; otherwise the caller has computed
        :attr:`PendingFactor.task` already. The previous generation stays on disk as
        long as something still reads it.
        """
        if compute:
            dask.compute(pending.task)
        self._write_pointer(pending)
        with self._lock:
            previous, self.generation = self.generation, pending.generation
        if previous and not self._live.get(previous):
            self._remove(previous)
        return self._open(pending.generation, pending.target, pending.chunks)

    def put(self, X: Any, chunks: Any = None) -> da.Array:
        """Write ``X`` (a dask or NumPy array, chunked as ``chunks`` if NumPy) and
        commit it."""
        if not isinstance(X, da.Array):
            X = da.from_array(np.asarray(X), chunks=chunks)
        return self.commit(self.write(X), compute=True)

    def current(self, chunks: Any = None) -> da.Array | None:
        """The committed generation as a dask array (``None`` if there is none),
        chunked as it was written unless ``chunks`` is given."""
        pointer = self._read_pointer()
        if pointer is None:
            return None
        generation = int(pointer["generation"])
        target = zarr.open_array(str(self._generation_path(generation)), mode="r")
        chunks = chunks or tuple(tuple(c) for c in pointer["chunks"])
        return self._open(generation, target, chunks)

    def hold(self, X: da.Array) -> da.Array:
        """Write ``X`` now as the next generation, without committing it, and return
        a dask array over it: for a ``W`` update that runs as a graph of its own,
        before the rest of the iteration reads it. The iteration then commits it
        (:meth:`pending_for`)."""
        pending = self.write(X)
        dask.compute(pending.task)
        held = self._open(pending.generation, pending.target, pending.chunks)
        self._held = (held.name, replace(pending, task=None))
        return held

    def pending_for(self, X: Any) -> PendingFactor | None:
        """The generation :meth:`hold` wrote for ``X`` (its task already run), or
        ``None`` if ``X`` is not such an array."""
        held = getattr(self, "_held", None)
        if held is None or not isinstance(X, da.Array) or X.name != held[0]:
            return None
        self._held = None
        return held[1]

    def holds(self, X: Any) -> bool:
        """Whether ``X`` is a dask array read straight from one of this store's
        generations."""
        return isinstance(X, da.Array) and X.name.startswith(self._name_prefix)

    def is_current(self, X: Any) -> bool:
        """Whether ``X`` is read straight from the committed generation."""
        return self.holds(X) and self.source(X) == self._generation_path(self.generation)

    def source(self, X: Any) -> Path | None:
        """The generation directory ``X`` is read straight from, or ``None``."""
        if not self.holds(X):
            return None
        generation = int(X.name[len(self._name_prefix) :].split("-", 1)[0])
        return self._generation_path(generation)

    # -- generations ---------------------------------------------------------------

    @property
    def _name_prefix(self) -> str:
        return f"factor-{abs(hash(str(self.path))):x}-g"

    def _generation_path(self, generation: int) -> Path:
        return self.path / f"g{generation:08d}.zarr"

    def _open(self, generation: int, target: zarr.Array, chunks) -> da.Array:
        with self._lock:
            self._live[generation] = self._live.get(generation, 0) + 1
        weakref.finalize(target, self._release, generation)
        name = f"{self._name_prefix}{generation}-{id(target):x}"
        X = read_array(_files(target), target.shape, name, target)
        wanted = da.core.normalize_chunks(chunks, target.shape, dtype=target.dtype)
        return X if X.chunks == wanted else X.rechunk(wanted)

    def _release(self, generation: int) -> None:
        with self._lock:
            left = self._live.get(generation, 1) - 1
            if left > 0:
                self._live[generation] = left
                return
            self._live.pop(generation, None)
            keep = generation == self.generation
        if not keep:
            self._remove(generation)

    def _remove(self, generation: int) -> None:
        shutil.rmtree(self._generation_path(generation), ignore_errors=True)

    def _sweep(self) -> None:
        """Remove generations left by a run that stopped (never the committed one)."""
        for entry in self.path.glob("g*.zarr"):
            if entry.name != self._generation_path(self.generation).name:
                shutil.rmtree(entry, ignore_errors=True)
        for entry in self.path.glob(f"{SCRATCH}*"):
            shutil.rmtree(entry, ignore_errors=True)

    # -- the pointer ---------------------------------------------------------------

    def _check_directory(self) -> None:
        if not self.path.exists():
            return
        if not self.path.is_dir():
            raise NotAStoreError(f"factor_store {str(self.path)!r} exists and is not a directory")
        if any(self.path.iterdir()) and not (self.path / POINTER).is_file():
            raise NotAStoreError(
                f"refusing to use {str(self.path)!r} as factor_store: it is a non-empty "
                "directory that no dasknmf fit wrote; give a new or empty directory"
            )

    def _read_pointer(self) -> dict | None:
        file = self.path / POINTER
        try:
            pointer = json.loads(file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise NotAStoreError(f"{str(file)!r} is not a readable factor pointer: {exc}") from exc
        if not isinstance(pointer, dict) or pointer.get(FORMAT_KEY) != FORMAT_VERSION:
            raise NotAStoreError(f"{str(file)!r} is not a dasknmf factor pointer")
        return pointer

    def _write_pointer(self, pending: PendingFactor) -> None:
        pointer = {
            FORMAT_KEY: FORMAT_VERSION,
            "generation": pending.generation,
            "shape": list(pending.target.shape),
            "chunks": [list(c) for c in pending.chunks],
            "dtype": str(pending.target.dtype),
        }
        tmp = self.path / f".{POINTER}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(pointer, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / POINTER)


def _files(target: zarr.Array) -> ChunkFiles:
    root = Path(target.store_path.store.root) / target.path
    return ChunkFiles(str(root), target.chunks, str(target.dtype))


def stored_source(X: Any) -> Path | None:
    """The generation directory of an open :class:`FactorStore` that ``X`` is read
    straight from (``None`` for any other array)."""
    with _OPEN_LOCK:
        stores = list(_OPEN.values())
    for store in stores:
        path = store.source(X)
        if path is not None:
            return path
    return None


def link_generation(source: Path, destination: Path) -> None:
    """Make ``destination`` a copy of the generation ``source`` by hard links.

    A generation's files are written once and never changed (the next iteration
    writes a new generation), so a link is a copy that costs no I/O: a checkpoint of
    a stored factor takes no time and no space until the fit moves on. Where links
    cannot be made (another file system), the files are copied.
    """
    for folder, _, files in os.walk(source):
        target = destination / Path(folder).relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            try:
                os.link(os.path.join(folder, name), target / name)
            except OSError:
                shutil.copy2(os.path.join(folder, name), target / name)


def open_generation(path: Path) -> da.Array:
    """A generation written by a :class:`FactorStore` (or linked from one), read-only,
    as a dask array chunked as it was written.

    Raises
    ------
    NotAStoreError
        ``path`` is not a zarr array, or some of its chunks are missing (a generation
        always has all of them).
    """
    try:
        array = zarr.open_array(str(path), mode="r")
    except (FileNotFoundError, ValueError, TypeError, KeyError) as exc:
        raise NotAStoreError(f"{str(path)!r} is not a stored factor: {exc}") from None
    if array.ndim != 2 or array.nchunks_initialized != array.nchunks:
        raise NotAStoreError(
            f"{str(path)!r} is not a whole stored factor: {array.nchunks_initialized} of "
            f"its {array.nchunks} chunks on disk, shape {array.shape}"
        )
    return da.from_zarr(array)


def _regular(chunks: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
    """``chunks`` if every axis's blocks are of one size except a smaller last one."""
    for axis, sizes in enumerate(chunks):
        if len(sizes) > 1 and (len(set(sizes[:-1])) > 1 or sizes[-1] > sizes[0]):
            raise InvalidParameterError(
                f"factors can be stored only with blocks of one size along each axis "
                f"(but the last); axis {axis} has blocks {sizes[:8]}"
                f"{' ...' if len(sizes) > 8 else ''}: give the input regular chunks"
            )
    return chunks


def factor_bytes(shape: tuple[int, int], dtype: Any) -> int:
    """Bytes a dense factor of ``shape`` and ``dtype`` takes in memory."""
    return math.prod(shape) * np.dtype(dtype).itemsize
