"""A stand-in for CuPy on machines without a GPU: NumPy arrays that claim to be CuPy's.

:class:`DeviceArray` and :class:`DeviceCSR` are NumPy/SciPy subclasses whose type
lives (by name) in the ``cupy`` and ``cupyx`` packages, which is how
:func:`dasknmf.devices.array_module` tells a GPU array. The fake ``cupy`` module
forwards to NumPy and returns :class:`DeviceArray`; ``cupyx.scipy.sparse.csr_matrix``
makes a :class:`DeviceCSR`. Installed in ``sys.modules`` by the ``fake_cupy``
fixture (``tests/conftest.py``), it lets the device plumbing (tiles and factors moved
in the graph, results moved back, kernels creating arrays in their inputs' module) run
and be checked on any machine.

Like CuPy, a device array refuses to meet a host array in an operation (a kernel that
made its scratch with ``np.zeros`` fails here as it would on a GPU), and products of a
device sparse matrix stay on the device. What it cannot check: CuPy's other
restrictions (no implicit conversion to NumPy, functions CuPy lacks or spells
differently). Those are for the ``gpu`` tests on a real GPU (``tests/gpu``).
"""

from __future__ import annotations

import types

import numpy as np
import scipy.sparse as sp


class DeviceArray(np.ndarray):
    """A NumPy array that passes for a CuPy one, and that refuses, as CuPy does, to be
    combined with a host (plain NumPy) array in an operation."""

    __module__ = "cupy._core.core"

    def get(self) -> np.ndarray:
        return np.array(self.view(np.ndarray))

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        operands = inputs + (out or ())
        host = [type(a).__name__ for a in operands if _is_host_array(a)]
        if host:
            raise TypeError(f"fake CuPy: {ufunc.__name__} mixes device and host arrays ({host})")
        plain = tuple(_plain(a) for a in inputs)
        if out is not None:
            kwargs["out"] = tuple(_plain(a) for a in out)
        result = getattr(ufunc, method)(*plain, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _on_device(result)

    def __array_function__(self, func, types, args, kwargs):
        # NumPy functions (concatenate, stack ...) of device arrays give device arrays.
        operands = [a for arg in args for a in (arg if isinstance(arg, list | tuple) else [arg])]
        if any(_is_host_array(a) for a in operands):
            raise TypeError(f"fake CuPy: {func.__name__} mixes device and host arrays")
        plain = [
            [_plain(a) for a in arg] if isinstance(arg, list | tuple) else _plain(arg)
            for arg in args
        ]
        out = kwargs.get("out")
        if out is not None:
            func(*plain, **{**kwargs, "out": _plain(out)})
            return out
        return _on_device(func(*plain, **kwargs))


def _is_host_array(a) -> bool:
    return isinstance(a, np.ndarray) and not isinstance(a, DeviceArray)


def _plain(a):
    return a.view(np.ndarray) if isinstance(a, DeviceArray) else a


class _DeviceSparse:
    """Products of a fake device sparse matrix give device arrays, its transpose and
    values stay on the device, as cupyx's do."""

    __module__ = "cupyx.scipy.sparse._compressed"

    def get(self):
        host = sp.csr_matrix if self.format == "csr" else sp.csc_matrix
        parts = (_plain(self.data), _plain(self.indices), _plain(self.indptr))
        return host(tuple(np.array(p) for p in parts), shape=self.shape)

    def _host(self):
        return self.get()

    def __matmul__(self, other):
        if _is_host_array(other):
            raise TypeError("fake cupyx: sparse @ host array")
        return _on_device(self._host() @ _plain(other))

    def transpose(self, axes=None, copy=False):
        return _device_sparse(self._host().transpose())

    @property
    def T(self):
        return self.transpose()

    def tocsr(self, copy=False):
        return self if self.format == "csr" else _device_sparse(self._host().tocsr())

    def tocoo(self, copy=False):
        raise TypeError("fake cupyx: tocoo is not used on device tiles")

    def sum(self, axis=None, dtype=None, out=None):
        return self._host().sum(axis=axis, dtype=dtype)


def _device_csr(values, indices, indptr, shape):
    return _device_sparse(sp.csr_matrix((_plain(values), _plain(indices), _plain(indptr)), shape))


class DeviceCSR(_DeviceSparse, sp.csr_matrix):
    """A SciPy CSR matrix that passes for a cupyx one."""

    __module__ = "cupyx.scipy.sparse._csr"


class DeviceCSC(_DeviceSparse, sp.csc_matrix):
    """The transpose of a :class:`DeviceCSR`."""

    __module__ = "cupyx.scipy.sparse._csc"


def _device_sparse(host):
    """A fake device copy of a SciPy CSR/CSC matrix, its values a DeviceArray."""
    cls = DeviceCSR if host.format == "csr" else DeviceCSC
    out = cls((host.data.copy(), host.indices.copy(), host.indptr.copy()), shape=host.shape)
    out.data, out.indices, out.indptr = (
        a.view(DeviceArray) for a in (out.data, out.indices, out.indptr)
    )
    return out


def _on_device(value):
    if isinstance(value, np.ndarray) and not isinstance(value, DeviceArray):
        return value.view(DeviceArray)
    if isinstance(value, tuple):
        return tuple(_on_device(v) for v in value)
    return value


def _forward(name: str):
    target = getattr(np, name)
    if isinstance(target, type) or not callable(target):
        return target  # dtypes and constants as they are

    def function(*args, **kwargs):
        return _on_device(target(*args, **kwargs))

    function.__name__ = name
    return function


class _Runtime:
    @staticmethod
    def getDeviceCount() -> int:
        return 1

    @staticmethod
    def memGetInfo() -> tuple[int, int]:
        return 8 * 2**30, 16 * 2**30


def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def make_modules() -> dict[str, types.ModuleType]:
    """The fake ``cupy``, ``cupyx``, ``cupyx.scipy`` and ``cupyx.scipy.sparse``."""
    cupy = _module("cupy", cuda=types.SimpleNamespace(runtime=_Runtime()))
    cupy.__getattr__ = _forward  # module-level __getattr__ (PEP 562)
    # dask registers its CuPy dispatch (concatenate, take ...) for ``cupy.ndarray``
    # when it first meets a type of the ``cupy`` package: it must find DeviceArray
    # there, or it would register the fake functions for every NumPy array.
    cupy.ndarray = DeviceArray
    cupy.asarray = lambda x, dtype=None: np.asarray(_plain(x), dtype=dtype).view(DeviceArray)
    cupy.asnumpy = lambda x: np.array(np.asarray(x).view(np.ndarray))
    sparse = _module(
        "cupyx.scipy.sparse",
        csr_matrix=lambda m: _device_sparse(sp.csr_matrix(m)),
        spmatrix=_DeviceSparse,
        hstack=sp.hstack,
        vstack=sp.vstack,
    )
    scipy = _module("cupyx.scipy", sparse=sparse)
    cupyx = _module("cupyx", scipy=scipy)
    return {"cupy": cupy, "cupyx": cupyx, "cupyx.scipy": scipy, "cupyx.scipy.sparse": sparse}


def on_device(x):
    """``x`` (NumPy or SciPy) as the fake device's array or CSR matrix."""
    if sp.issparse(x):
        return _device_sparse(sp.csr_matrix(x))
    return np.asarray(x).view(DeviceArray)
