from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from tests.fake_cupy import make_modules


def _gpu_missing() -> str | None:
    """Why the ``gpu`` tests cannot run here, or ``None`` when they can."""
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy sees no GPU"
    except Exception as exc:  # CUDARuntimeError without a driver
        return f"CUDA cannot start: {exc}"
    return None


#: Slow tests that start real scheduler and worker processes (or a real Slurm) run on
#: one test process, one after another (``--dist loadgroup``): each checks that it
#: left no dask process behind, which another such test running beside it would break.
PROCESS_GROUP = pytest.mark.xdist_group("cluster-processes")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if "slow" in item.keywords and "cluster" in item.path.parts:
            item.add_marker(PROCESS_GROUP)
    gpu_items = [item for item in items if "gpu" in item.keywords]
    reason = _gpu_missing() if gpu_items else None
    if reason:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=f"gpu test: {reason}"))


@pytest.fixture(params=["sparse", "dense"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def fake_cupy(monkeypatch) -> Iterator[types.ModuleType]:
    """A NumPy-backed stand-in for CuPy (:mod:`tests.fake_cupy`), installed in
    ``sys.modules`` for one test."""
    modules = make_modules()
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    yield modules["cupy"]
