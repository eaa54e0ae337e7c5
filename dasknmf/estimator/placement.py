"""Where a fit's arrays live: in memory or out of core, on the host or a GPU, and in
what form the results reach the user."""

from __future__ import annotations

import logging
import os
from typing import Any

import dask
import dask.array as da
import numpy as np

from dasknmf import devices, inputs
from dasknmf.resources import active_client, available_memory

__all__ = [
    "PERSIST_FRACTION",
    "as_result",
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
