"""Where a fit's arrays live: in memory or out of core, on the host or a GPU, and in
what form the results reach the user."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dask
import dask.array as da
import numpy as np

from dasknmf import devices, inputs
from dasknmf.errors import InvalidParameterError
from dasknmf.init import NNDSVD_METHODS, InitStores
from dasknmf.resources import active_client, available_memory
from dasknmf.storage import FactorStore, factor_bytes

__all__ = [
    "FACTOR_FRACTION",
    "PERSIST_FRACTION",
    "as_result",
    "components_like",
    "components_on_host",
    "factor_stores",
    "is_lazy",
    "keeps_in_memory",
    "on_device",
    "runs_eagerly",
    "zero_missing",
]

logger = logging.getLogger(__name__)

#: With ``persist="auto"``, V is kept in memory when it takes less than this share of
#: the memory the scheduler has; the rest is left for factors and partial products.
PERSIST_FRACTION = 0.5

#: With ``factors="auto"``, W stays in memory when three W-sized arrays (W, its update
#: and ``V Hᵀ``) and a persisted V take at most this share of the scheduler's memory.
FACTOR_FRACTION = 0.75


def is_lazy(X: Any) -> bool:
    """Whether the user gave a lazy input (a dask array or a store path): results
    then come back as dask arrays."""
    return isinstance(X, (da.Array, str, os.PathLike))


def runs_eagerly(V: da.Array) -> bool:
    """Whether to iterate on in-memory arrays: a single tile gains nothing from a
    scheduler and would pay its overhead on every iteration."""
    return V.numblocks == (1, 1) and active_client() is None


def zero_missing(V: da.Array) -> da.Array:
    """``V`` with NaN (missing entries of dense tiles) read as zero, for the init."""
    if not isinstance(V._meta, np.ndarray):
        return V  # sparse tiles: unobserved entries are the unstored zeros already
    return V.map_blocks(lambda t: np.where(np.isnan(t), 0, t), dtype=V.dtype)


def keeps_in_memory(V: da.Array, stats: inputs.MatrixStats, persist: Any, device: str) -> bool:
    """Whether the fit keeps ``V`` in memory: ``persist`` itself when it is a bool;
    for ``'auto'``, whether ``V`` takes less than :data:`PERSIST_FRACTION` of the
    memory of the scheduler (of the GPUs for ``device='cuda'``)."""
    if persist != "auto":
        return bool(persist)
    needed = inputs.in_memory_bytes(V, stats)
    on_gpu = device == "cuda"
    memory = devices.device_memory(active_client()) if on_gpu else available_memory()
    budget = PERSIST_FRACTION * memory
    keep = needed < budget
    logger.info(
        "V needs %.3g GB in memory, budget %.3g GB: %s",
        needed / 1e9,
        budget / 1e9,
        "persisting" if keep else "out of core",
    )
    return keep


def on_device(V: Any, W: Any, H: Any, *, device: str, persist: bool) -> tuple[Any, Any, Any]:
    """``V``, ``W`` and ``H`` on ``device`` (``V`` persisted there if asked)."""
    if device == "cpu":
        return V, W, H
    V, W, H = (devices.to_device(X, device) for X in (V, W, H))
    if persist and isinstance(V, da.Array):
        (V,) = dask.persist(V)
    return V, W, H


def as_result(W: Any, *, lazy: bool, device: str, output: str) -> Any:
    """A result factor as the user gets it: a (persisted) dask array for lazy inputs
    (dask arrays, store paths), else in memory; NumPy blocks unless ``output='cupy'``."""
    if device != "cpu":
        W = devices.to_host(W)
    if lazy:
        W = W if isinstance(W, da.Array) else da.from_array(W)
        if output == "cupy":
            W = devices.to_device(W, "cuda")
        if device != "cpu" or output == "cupy":
            (W,) = dask.persist(W)
        return W
    W = np.asarray(W)
    return W if output == "numpy" else devices.to_device(W, "cuda")


def factor_stores(
    factors: str,
    path: Any,
    shapes: dict[str, tuple[int, int]],
    *,
    dtype: Any,
    v_bytes: int,
    device: str,
) -> dict[str, FactorStore | None]:
    """Where a fit keeps each factor of ``shapes`` (``{"W": (m, k), "H": (k, n)}``):
    ``None`` for memory, else the :class:`~dasknmf.storage.FactorStore` at
    ``path/name`` (a temporary one when ``path`` is ``None``).

    ``factors='store'`` stores them all. ``'auto'`` keeps them in memory while three
    arrays of each (the factor, its update and its product with ``V``) beside
    ``v_bytes`` (V's bytes when it is persisted, else 0) take at most
    :data:`FACTOR_FRACTION` of the scheduler's memory, and otherwise stores the
    largest first until the rest fit. A store must be visible to every worker of an
    active ``distributed`` cluster.
    """
    if factors == "memory":
        return dict.fromkeys(shapes)
    if device != "cpu":
        if factors == "auto":
            return dict.fromkeys(shapes)  # stored factors are read and written by the host
        raise InvalidParameterError(
            f"factors='store' keeps the factors in zarr stores on the host; with "
            f"device={device!r} they live in GPU memory: use factors='memory' (or 'auto')"
        )
    sizes = {name: factor_bytes(shape, dtype) for name, shape in shapes.items()}
    stored = set(shapes) if factors == "store" else _too_large(sizes, v_bytes)
    stores: dict[str, FactorStore | None] = {}
    for name in shapes:
        if name not in stored:
            stores[name] = None
            continue
        where = None if path is None else os.path.join(path, name)
        stores[name] = FactorStore.temporary(name) if where is None else FactorStore(where)
        check_visible(stores[name])
    return stores


def _too_large(sizes: dict[str, int], v_bytes: int) -> set[str]:
    """The factors ``factors='auto'`` stores (see :func:`factor_stores`)."""
    budget = FACTOR_FRACTION * available_memory() - v_bytes
    held, stored = dict(sizes), set()
    while held and 3 * sum(held.values()) > budget:
        largest = max(held, key=held.__getitem__)
        stored.add(largest)
        del held[largest]
    logger.info(
        "factors need %.3g GB, budget %.3g GB: %s",
        sum(sizes.values()) / 1e9,
        max(budget, 0) / 1e9,
        f"storing {', '.join(sorted(stored))}" if stored else "in memory",
    )
    return stored


def check_visible(store: FactorStore) -> None:
    """Raise if a worker of the active cluster cannot see ``store``'s directory."""
    client = active_client()
    if client is None:
        return
    seen = client.run(os.path.isdir, str(store.path))
    blind = sorted(worker for worker, ok in seen.items() if not ok)
    if blind:
        raise InvalidParameterError(
            f"a factor is kept in {str(store.path)!r}, which {len(blind)} of {len(seen)} workers "
            f"cannot see ({', '.join(blind[:3])}{' ...' if len(blind) > 3 else ''}): give "
            "factor_store a directory on a file system every worker mounts"
        )


def components_like(H: Any, V: da.Array) -> da.Array:
    """``components_`` as a dask array chunked like ``V``'s columns, in ``V``'s dtype
    (a stored ``H`` stays lazy)."""
    chunks = ((H.shape[0],), V.chunks[1])
    if isinstance(H, da.Array):
        return H.astype(V.dtype).rechunk(chunks)
    return da.from_array(devices.block_to_host(H).astype(V.dtype, copy=False), chunks=chunks)


def components_on_host(H: Any, columns: Any = None) -> np.ndarray:
    """``components_`` (its ``columns``, or all of it) as a NumPy array: a stored
    ``H`` is read, the columns asked for only."""
    if isinstance(H, da.Array):
        return np.asarray((H if columns is None else H[:, columns]).compute())
    H = devices.block_to_host(H)
    return H if columns is None else H[:, columns]


@contextmanager
def init_stores(
    w_store: FactorStore | None, method: str, *, persisted: bool
) -> Iterator[InitStores | None]:
    """Where an NNDSVD initialisation (``method``) writes instead of memory: its
    sketch (``m × (k + 10)``, larger than ``W``), removed on exit, and ``W`` itself
    when the fit keeps it in ``w_store``.

    The sketch goes to a scratch store inside ``w_store``, or, out of core
    (``persisted`` false) under dask's local schedulers, to a temporary store (any
    directory this machine's threads see). ``None`` otherwise: all in memory (a
    cluster's workers may share no directory but ``w_store``'s).
    """
    if method not in NNDSVD_METHODS:
        yield None
        return
    if w_store is not None:
        sketch = w_store.scratch("nndsvd-sketch")
    elif not persisted and active_client() is None:
        sketch = FactorStore.temporary("nndsvd-sketch")
    else:
        yield None
        return
    try:
        yield InitStores(w_store, sketch)
    finally:
        sketch.close()
