"""Jobs with ``model.device: cuda`` and ``cluster.type: cuda``, on the fake GPU of
:mod:`tests.fake_cupy` (real GPU runs are in ``tests/gpu``)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import dasknmf
from dasknmf.errors import DeviceUnavailableError
from dasknmf.jobs.loading import parse_config
from dasknmf.jobs.runner import run_job
from tests.jobs.jobs_testing import base_job, dense, hidden


def read_back(directory):
    return tuple(
        dense(dasknmf.open_matrix(directory / name).compute()) for name in ("W.zarr", "H.zarr")
    )


@pytest.mark.parametrize("persist", [True, False])
def test_a_cuda_job_writes_what_the_cpu_job_writes(fake_cupy, matrix_file, tmp_path, persist):
    results = {}
    for device in ("cpu", "cuda"):
        job = base_job(matrix_file, tmp_path / device, device=device, persist=persist)
        job["checkpoint"] = {"every": 5}  # states of a device fit are written from the host
        result = run_job(parse_config(job))
        results[device] = (read_back(tmp_path / device), result.model.reconstruction_err_)
    (W_cpu, H_cpu), err_cpu = results["cpu"]
    (W_gpu, H_gpu), err_gpu = results["cuda"]
    np.testing.assert_allclose(H_gpu, H_cpu, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(W_gpu, W_cpu, rtol=1e-9, atol=1e-12)
    assert err_gpu == pytest.approx(err_cpu, rel=1e-10)


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_a_cuda_job_without_cupy_fails_naming_the_fix_and_writes_nothing(matrix_file, tmp_path):
    job = parse_config(base_job(matrix_file, tmp_path / "out", device="cuda"))
    with pytest.raises(DeviceUnavailableError, match=r"pip install 'dasknmf\[gpu\]'"):
        run_job(job)
    assert not (tmp_path / "out").exists()
    assert hidden(tmp_path) == []


@pytest.mark.skipif(importlib.util.find_spec("dask_cuda") is not None, reason="dask-cuda found")
def test_a_cuda_cluster_without_dask_cuda_fails_naming_the_fix(matrix_file, tmp_path):
    job = base_job(matrix_file, tmp_path / "out", device="cuda")
    job["cluster"] = {"type": "cuda", "n_workers": 1}
    with pytest.raises(DeviceUnavailableError, match=r"cluster\.type 'cuda' needs dask-cuda"):
        run_job(parse_config(job))
    assert not (tmp_path / "out").exists()


def test_cuda_cluster_keys_are_checked(tmp_path, matrix_file):
    job = base_job(matrix_file, tmp_path / "out")
    job["cluster"] = {"type": "cuda", "processes": False}
    with pytest.raises(ValueError, match=r"cluster\.processes.*n_workers, memory_limit"):
        parse_config(job)
    job["cluster"] = {"type": "threads"}
    job["model"]["device"] = "gpu"
    with pytest.raises(ValueError, match=r"model\.device.*'cpu', 'cuda'"):
        parse_config(job)
