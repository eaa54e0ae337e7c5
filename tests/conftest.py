from __future__ import annotations

import pytest


@pytest.fixture(params=["sparse", "dense"])
def kind(request) -> str:
    return request.param
