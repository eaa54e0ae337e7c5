"""Fixtures of the job tests: a small matrix file, job files written from mappings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import scipy.sparse as sp
import yaml

from dasknmf.storage.reader import clear_cache
from tests.helpers import make_matrix
from tests.jobs.jobs_testing import M, N


@pytest.fixture(autouse=True)
def _fresh_handle_cache():
    # Outputs are rewritten at the same paths; start each test from an empty cache.
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def matrix() -> sp.csr_matrix:
    return make_matrix(M, N, density=0.3, seed=5)


@pytest.fixture
def matrix_file(tmp_path: Path, matrix: sp.csr_matrix) -> Path:
    """The small matrix as a scipy .npz file (ingested by the job)."""
    path = tmp_path / "data" / "V.npz"
    path.parent.mkdir()
    sp.save_npz(path, matrix)
    return path


@pytest.fixture
def write_job(tmp_path: Path) -> Callable[..., Path]:
    """Write a job mapping (or raw YAML text) to a file; return its path."""

    def write(job: dict[str, Any] | str, name: str = "job.yaml") -> Path:
        path = tmp_path / name
        path.write_text(job if isinstance(job, str) else yaml.safe_dump(job, sort_keys=False))
        return path

    return write
