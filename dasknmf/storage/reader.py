"""Lazy tile reading shared by both formats: tile sources and the per-process cache.

The dask graph of an opened store holds, per tile, a small picklable
:class:`TileSource` (path, options, store uuid, shapes) plus a few integers locating
that tile. No open zarr array travels in the graph: each process opens the store
once, on first use, and keeps the handles in a small thread-safe LRU cache keyed by
the store's uuid, so a store replaced on disk is never read through stale handles.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import dask.array as da
import numpy as np
import zarr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from dasknmf.errors import CorruptStoreError

from .layout import MARKER_KEY
from .location import StoreLocation

__all__ = ["TileSource", "clear_cache", "tile_array"]

_CACHE_SIZE = 16
_cache: OrderedDict[tuple[str, str, str], dict[str, zarr.Array]] = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every store handle opened by this process.

    Examples
    --------
    >>> clear_cache()
    """
    with _cache_lock:
        _cache.clear()


@dataclass(frozen=True)
class TileSource:
    """Reads tiles of one store; subclasses implement :meth:`read`.

    Instances are called by dask tasks as ``source(i, j, *locator)`` where the
    locator is a tuple of integers computed at open time (see the subclasses).
    """

    path: str
    storage_options: dict[str, Any] = field(hash=False, compare=False)
    uuid: str
    shape: tuple[int, int]
    tile_shape: tuple[int, int]
    dtype: np.dtype

    array_names: ClassVar[tuple[str, ...]] = ()

    def tile_bounds(self, i: int, j: int) -> tuple[int, int, int, int]:
        """Row and column ranges ``(r0, r1, c0, c1)`` of tile ``(i, j)``."""
        tr, tc = self.tile_shape
        return (
            i * tr,
            min((i + 1) * tr, self.shape[0]),
            j * tc,
            min((j + 1) * tc, self.shape[1]),
        )

    def arrays(self) -> dict[str, zarr.Array]:
        """The store's zarr arrays, opened once per process and cached."""
        key = (
            self.path,
            self.uuid,
            json.dumps(self.storage_options, sort_keys=True, default=repr),
        )
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
        # Opened outside the lock: a slow object store must not serialise all threads.
        group = StoreLocation(self.path, self.storage_options).open_group("r")
        found = (group.attrs.get(MARKER_KEY) or {}).get("uuid")
        if found != self.uuid:
            raise CorruptStoreError(
                f"store {self.path!r} was replaced or removed after it was opened "
                f"(uuid {self.uuid} expected, found {found}); open it again with open_matrix"
            )
        handles = {name: group[name] for name in self.array_names}
        with _cache_lock:
            _cache[key] = handles
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        return handles

    def __call__(self, i: int, j: int, *locator: int) -> Any:
        try:
            return self.read(self.arrays(), i, j, *locator)
        except (CorruptStoreError, OSError):
            # Ours already name the tile; I/O failures (network, permissions) are not
            # evidence of corruption.
            raise
        except Exception as exc:
            raise CorruptStoreError(
                f"store {self.path!r}, tile ({i}, {j}) could not be decoded "
                f"({type(exc).__name__}: {exc}); the store is corrupt"
            ) from exc

    def read(self, arrays: dict[str, zarr.Array], i: int, j: int, *locator: int) -> Any:
        """Read and validate tile ``(i, j)``; implemented by each format."""
        raise NotImplementedError

    def corrupt(self, i: int, j: int, what: str) -> CorruptStoreError:
        """A :class:`CorruptStoreError` naming this store and tile."""
        return CorruptStoreError(f"store {self.path!r}, tile ({i}, {j}) is corrupt: {what}")


def tile_array(
    source: TileSource,
    chunks: tuple[tuple[int, ...], tuple[int, ...]],
    locators: Sequence[Sequence[tuple[int, ...]]],
    meta: Any,
    prefix: str,
) -> da.Array:
    """A dask array whose chunk ``(i, j)`` is ``source(i, j, *locators[i][j])``."""
    # The uuid makes the name unique per written store, so an overwritten store never
    # reuses results cached under the old keys.
    name = f"{prefix}-{tokenize(source.path, source.uuid, chunks)}"
    dsk = {
        (name, i, j): (source, i, j, *locators[i][j])
        for i in range(len(chunks[0]))
        for j in range(len(chunks[1]))
    }
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    return da.Array(graph, name, chunks, meta=meta)
