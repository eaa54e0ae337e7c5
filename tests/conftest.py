from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from tests.fake_cupy import make_modules


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
