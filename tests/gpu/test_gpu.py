"""``device='cuda'`` on a real GPU: the same fits as on the CPU, float32, to 1e-4.

Skipped (marker ``gpu``) where CuPy or a GPU is missing; the device plumbing is
checked everywhere on the fake GPU of :mod:`tests.fake_cupy` (``tests/test_devices.py``).
Run on a GPU machine with ``pytest -m gpu tests/gpu`` (the default ``-m 'not slow'``
includes them too).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

import dasknmf
from dasknmf import devices
from dasknmf.kernels.sampled import wh_at_nonzeros
from tests.helpers import make_matrix

cupy = pytest.importorskip("cupy")

pytestmark = pytest.mark.gpu

FITS = {
    "mu": dict(),
    "hals": dict(solver="hals", alpha_W=0.01, l1_ratio=0.5),
    "kl": dict(beta_loss="kullback-leibler"),
    "beta": dict(beta_loss=0.5),
    "masked": dict(missing="ignore"),
}


def _fit(X, **params):
    model = dasknmf.NMF(5, init="random", random_state=0, max_iter=30, tol=0, **params)
    return model, model.fit_transform(X)


def test_device_arrays_dispatch_to_cupy():
    x = cupy.ones((3, 2), dtype=cupy.float32)
    assert devices.array_module(x) is cupy
    tile = devices.block_to_device(sp.random(4, 3, density=0.5, format="csr"))
    assert devices.array_module(tile) is cupy
    assert type(devices.block_to_host(tile)) is sp.csr_matrix


def test_sampled_product_on_the_gpu_equals_the_compiled_one():
    rng = np.random.default_rng(0)
    w = rng.random((300, 8), dtype=np.float32)
    h = rng.random((8, 200), dtype=np.float32)
    tile = sp.random(300, 200, density=0.05, format="csr", random_state=1, dtype=np.float32)
    _, host = wh_at_nonzeros(w, h, tile)
    tile_d = devices.block_to_device(tile)
    _, dev = wh_at_nonzeros(cupy.asarray(w), cupy.asarray(h), tile_d)
    np.testing.assert_allclose(cupy.asnumpy(dev), host, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(FITS))
@pytest.mark.parametrize("layout", ["one tile", "tiles in memory", "out of core"])
def test_gpu_fit_reaches_the_cpu_loss(name, layout, kind, tmp_path):
    X = make_matrix(600, 300, density=0.05, kind=kind, seed=2, dtype=np.float32)
    if layout != "one tile":
        store = tmp_path / "v.zarr"
        dasknmf.write_matrix(X, store, chunks=(150, 300))
        X = str(store)
    params = dict(FITS[name], persist=layout != "out of core")
    cpu, W_cpu = _fit(X, **params)
    gpu, W_gpu = _fit(X, device="cuda", **params)
    assert gpu.reconstruction_err_ == pytest.approx(cpu.reconstruction_err_, rel=1e-4)
    assert type(gpu.components_) is np.ndarray
    np.testing.assert_allclose(gpu.components_, cpu.components_, rtol=2e-3, atol=1e-4)
    W_gpu = W_gpu.compute() if isinstance(W_gpu, da.Array) else W_gpu
    W_cpu = W_cpu.compute() if isinstance(W_cpu, da.Array) else W_cpu
    assert type(W_gpu) is np.ndarray
    np.testing.assert_allclose(W_gpu, W_cpu, rtol=2e-3, atol=1e-4)


def test_output_cupy_and_transform_on_the_gpu():
    X = make_matrix(400, 200, density=0.05, seed=3, dtype=np.float32)
    model = dasknmf.NMF(
        4, init="random", random_state=0, max_iter=20, tol=0, device="cuda", output="cupy"
    )
    W = model.fit_transform(X)
    assert isinstance(W, cupy.ndarray) and isinstance(model.components_, cupy.ndarray)
    assert isinstance(model.transform(X), cupy.ndarray)
    cpu = dasknmf.NMF(4, init="random", random_state=0, max_iter=20, tol=0).fit(X)
    np.testing.assert_allclose(
        cupy.asnumpy(model.transform(X)), cpu.transform(X), rtol=2e-3, atol=1e-4
    )


def test_one_worker_per_gpu_with_dask_cuda(tmp_path):
    dask_cuda = pytest.importorskip("dask_cuda")
    from distributed import Client

    X = make_matrix(800, 300, density=0.05, seed=4, dtype=np.float32)
    store = tmp_path / "v.zarr"
    dasknmf.write_matrix(X, store, chunks=(200, 300))
    cpu, _ = _fit(str(store))
    with dask_cuda.LocalCUDACluster(threads_per_worker=1) as cluster, Client(cluster):
        gpu, W = _fit(str(store), device="cuda")
        assert type(W.blocks[0, 0].compute()) is np.ndarray
    assert gpu.reconstruction_err_ == pytest.approx(cpu.reconstruction_err_, rel=1e-4)
