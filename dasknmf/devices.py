"""Where the numbers live: the CPU (NumPy/SciPy) or a CUDA GPU (CuPy/cupyx).

Nothing else in dasknmf imports CuPy. The kernels ask :func:`array_module` which
module their inputs belong to; the estimator moves ``V``'s tiles and the factors to
the device with :func:`to_device` and the results back with :func:`to_host`. Both are
blockwise steps of the dask graph, so a tile read from a store goes to the GPU of
the worker that read it, in the same task stream as the products that use it: in
memory the device copy is what is persisted, out of core every pass streams the tiles
from the store to the GPU again.

CuPy is an optional dependency (``pip install 'dasknmf[gpu]'``); importing this module
never needs it.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

from dasknmf.errors import DeviceUnavailableError

#: The values of ``NMF(device=...)`` and of the ``model.device`` job key.
DEVICES = ("cpu", "cuda")
#: The values of ``NMF(output=...)``: the array module of the results.
OUTPUTS = ("numpy", "cupy")

#: With ``device='cuda'`` and one GPU, an in-memory input below this size is one tile.
GPU_SINGLE_TILE_BYTES = 2**31

INSTALL_HINT = "install the GPU extras: pip install 'dasknmf[gpu]'"


def is_device_array(x: object) -> bool:
    """Whether ``x`` is a CuPy array or a cupyx sparse matrix (by its type's module,
    so that no import is needed to tell)."""
    return type(x).__module__.partition(".")[0] in ("cupy", "cupyx")


def array_module(*arrays: object) -> types.ModuleType:
    """``cupy`` if any of ``arrays`` lives on a GPU, else ``numpy``.

    Examples
    --------
    >>> import numpy as np, scipy.sparse
    >>> array_module(np.ones(2), scipy.sparse.eye(2)).__name__
    'numpy'
    """
    # By name, as cupy: `dasknmf --help` reads DEVICES from this module, without NumPy.
    return importlib.import_module("cupy" if any(is_device_array(a) for a in arrays) else "numpy")


def block_to_host(block: Any) -> Any:
    """A NumPy array or SciPy matrix with ``block``'s values (``block`` itself if it
    is on the host already)."""
    # CuPy arrays and cupyx sparse matrices both copy themselves to the host by get().
    return block.get() if is_device_array(block) else block


def block_to_device(block: Any) -> Any:
    """``block`` on the current GPU: a CuPy array, or a cupyx CSR matrix for a sparse
    block (the format the kernels' sparse products are fastest on)."""
    if is_device_array(block):
        return block
    if hasattr(block, "tocsr") and hasattr(block, "nnz"):
        sparse = importlib.import_module("cupyx.scipy.sparse")
        return sparse.csr_matrix(block.tocsr())
    return importlib.import_module("cupy").asarray(block)


def to_device(X: Any, device: str) -> Any:
    """``X`` (a dask array, NumPy array or SciPy matrix) with its blocks on ``device``.

    For ``'cpu'`` ``X`` is returned unchanged. A dask array
    keeps its chunks and its (NumPy) meta: the client that builds the graph needs no
    GPU, only the workers that run it.
    """
    if device == "cpu":
        return X
    import dask.array as da  # not at the top, as NumPy in array_module

    if isinstance(X, da.Array):
        return X.map_blocks(block_to_device, dtype=X.dtype, meta=X._meta)
    return block_to_device(X)


def to_host(X: Any) -> Any:
    """``X`` with its blocks as NumPy arrays or SciPy matrices (dask arrays stay lazy)."""
    import dask.array as da  # not at the top, as NumPy in array_module

    if isinstance(X, da.Array):
        return X.map_blocks(block_to_host, dtype=X.dtype, meta=X._meta)
    return block_to_host(X)


def gpu_count() -> int:
    """GPUs CuPy sees in this process (raises :class:`DeviceUnavailableError` with the
    reason when CuPy is missing or CUDA cannot start)."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as exc:
        raise DeviceUnavailableError(
            f"device='cuda' needs CuPy, which is not installed ({exc}): {INSTALL_HINT}."
        ) from exc
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # CUDARuntimeError without a driver or with no device
        raise DeviceUnavailableError(
            f"device='cuda': CuPy is installed but CUDA could not start ({exc}); is a GPU "
            "and its driver present?"
        ) from exc


def require_gpu(client: Any = None) -> None:
    """Raise :class:`DeviceUnavailableError` unless every place that runs tasks has a
    GPU: this process for dask's local schedulers, every worker of ``client``."""
    if client is None:
        if gpu_count() < 1:
            raise DeviceUnavailableError("device='cuda': CuPy sees no GPU in this process.")
        return
    counts = client.run(_worker_gpu_count)  # a count, or why there is none
    missing = {
        worker: count if isinstance(count, str) else "no GPU"
        for worker, count in counts.items()
        if isinstance(count, str) or count < 1
    }
    if missing:
        listed = "; ".join(f"{worker}: {reason}" for worker, reason in sorted(missing.items()))
        raise DeviceUnavailableError(
            f"device='cuda': {len(missing)} of {len(counts)} workers cannot use a GPU "
            f"({listed}). Start GPU workers (dask-cuda's LocalCUDACluster or dask-cuda-worker)."
        )


def device_memory(client: Any = None) -> int:
    """Free bytes of GPU memory: this process's GPU, or all of ``client``'s workers'."""
    if client is None:
        return _free_gpu_memory()
    return int(sum(client.run(_free_gpu_memory).values()))


def _free_gpu_memory() -> int:
    free, _total = importlib.import_module("cupy").cuda.runtime.memGetInfo()
    return int(free)


def _worker_gpu_count() -> int | str:
    try:
        return gpu_count()
    except DeviceUnavailableError as exc:
        return str(exc)
