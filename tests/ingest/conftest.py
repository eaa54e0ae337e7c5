"""Fixtures of the importer tests."""

from __future__ import annotations

import pytest

from dasknmf.storage.reader import clear_cache


@pytest.fixture(autouse=True)
def _fresh_handle_cache():
    # Tests rewrite stores at the same paths; start each from an empty handle cache.
    clear_cache()
    yield
    clear_cache()
