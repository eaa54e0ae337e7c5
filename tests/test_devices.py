"""The device layer on the CPU: dispatch, placement, errors, and a whole fit on the fake
GPU of :mod:`tests.fake_cupy` compared with the same fit on the CPU.

The real GPU runs are in ``tests/gpu`` (marker ``gpu``, skipped without one).
"""

from __future__ import annotations

import importlib.util

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

import dasknmf
from dasknmf import devices
from dasknmf.errors import DeviceUnavailableError, InvalidParameterError
from dasknmf.kernels.beta import beta_divergence_terms, beta_h_terms, beta_update_rows
from dasknmf.kernels.frobenius import (
    h_update_terms,
    hals_rule,
    mu_rule,
    update_cols,
    update_rows,
)
from dasknmf.kernels.kl import kl_divergence_terms, kl_update_cols, kl_update_rows
from dasknmf.kernels.masked import divergence_terms as masked_divergence_terms
from dasknmf.kernels.masked import h_terms as masked_h_terms
from dasknmf.kernels.masked import predict_pairs
from dasknmf.kernels.masked import update_rows as masked_update_rows
from dasknmf.kernels.penalty import Penalty
from dasknmf.kernels.sampled import sampled_product, wh_at_nonzeros
from dasknmf.kernels.stats import tile_stats
from tests.fake_cupy import DeviceArray, DeviceCSR, on_device
from tests.helpers import make_matrix

HAVE_CUPY = importlib.util.find_spec("cupy") is not None

# -- dispatch -------------------------------------------------------------------------


def test_host_arrays_belong_to_numpy():
    assert devices.array_module(np.ones(2), sp.eye(2, format="csr"), 1.0) is np
    assert not devices.is_device_array(np.ones(2))


def test_device_arrays_belong_to_cupy(fake_cupy):
    assert devices.array_module(np.ones(2), on_device(np.ones(2))) is fake_cupy
    assert devices.array_module(on_device(sp.eye(2))) is fake_cupy
    assert devices.is_device_array(on_device(sp.eye(2)))


def test_blocks_move_to_the_device_and_back(fake_cupy):
    dense, tile = np.arange(6.0).reshape(2, 3), sp.random(4, 5, density=0.5, format="csc")
    moved = devices.block_to_device(dense)
    assert type(moved) is DeviceArray
    back = devices.block_to_host(moved)
    assert type(back) is np.ndarray
    np.testing.assert_array_equal(back, dense)
    moved_tile = devices.block_to_device(tile)
    assert type(moved_tile) is DeviceCSR  # CSR whatever the host format
    np.testing.assert_array_equal(devices.block_to_host(moved_tile).toarray(), tile.toarray())
    assert devices.block_to_device(moved) is moved


def test_dask_arrays_move_blockwise_and_keep_their_chunks(fake_cupy):
    X = da.from_array(np.arange(12.0).reshape(4, 3), chunks=(2, 3))
    on = devices.to_device(X, "cuda")
    assert on.chunks == X.chunks
    assert type(on.blocks[1, 0].compute()) is DeviceArray
    off = devices.to_host(on)
    assert type(off.blocks[0, 0].compute()) is np.ndarray
    np.testing.assert_array_equal(off.compute(), X.compute())
    assert devices.to_device(X, "cpu") is X


# -- kernels create their arrays in their inputs' module -------------------------------
# A kernel that made a NumPy array (np.zeros, np.asarray ...) where its inputs are on
# the device would return, or mix in, a plain ndarray: on a GPU, a host array.


def _dense_inputs(seed=0):
    rng = np.random.default_rng(seed)
    w, h = rng.random((6, 3)) + 0.1, rng.random((3, 5)) + 0.1
    tile = rng.random((6, 5))
    return w, h, tile


KERNEL_CASES = {
    "mu_rule": lambda w, h, t: mu_rule(w, t @ h.T, h @ h.T, Penalty(0.1, 0.2)),
    "hals_rule": lambda w, h, t: hals_rule(w, t @ h.T, h @ h.T, Penalty(0.1, 0.2)),
    "update_rows": lambda w, h, t: update_rows(mu_rule, Penalty(), w, [t], [h], h @ h.T),
    "update_cols": lambda w, h, t: update_cols(hals_rule, Penalty(), h, w.T @ t, w.T @ w),
    "h_update_terms": lambda w, h, t: h_update_terms(w, [t])[1][0],
    "kl_update_rows": lambda w, h, t: kl_update_rows(Penalty(), w, [t], [h], h.sum(axis=1)[None]),
    "kl_update_cols": lambda w, h, t: kl_update_cols(Penalty(), h, w.T @ t, w.sum(axis=0)[None]),
    "beta_update_rows": lambda w, h, t: beta_update_rows(0.5, Penalty(), w, [t], [h]),
    "beta_h_terms": lambda w, h, t: beta_h_terms(0.5, w, [t], [h])[1][0],
    "beta_h_small": lambda w, h, t: beta_h_terms(0.5, w, [t], [h])[2],
    "masked_update_rows": lambda w, h, t: masked_update_rows(1.0, Penalty(), w, [t], [h]),
    "masked_h_terms": lambda w, h, t: masked_h_terms(1.5, w, [t], [h])[1][0],
    "masked_h_small": lambda w, h, t: masked_h_terms(1.5, w, [t], [h])[2],
    "predict_pairs": lambda w, h, t: predict_pairs(w[:3], h[:, :3]),
}


@pytest.mark.parametrize("name", sorted(KERNEL_CASES))
def test_kernels_keep_device_arrays_on_the_device(fake_cupy, name):
    w, h, tile = _dense_inputs()
    expected = KERNEL_CASES[name](w, h, tile)
    out = KERNEL_CASES[name](*(on_device(a) for a in (w, h, tile)))
    assert type(out) is DeviceArray, f"{name} returned a {type(out).__name__}"
    np.testing.assert_allclose(out.view(np.ndarray), expected, rtol=1e-12)


def test_sampled_product_of_a_device_tile_matches_the_dense_product(fake_cupy):
    # On the host the compiled SDDMM runs; a device tile takes the array-only path.
    w, h, _ = _dense_inputs()
    tile = sp.random(6, 5, density=0.4, format="csr", random_state=1)
    tile_d = on_device(tile)
    values = sampled_product(on_device(w), on_device(h), tile_d)
    assert type(values) is DeviceArray
    rows, cols = np.repeat(np.arange(6), np.diff(tile.indptr)), tile.indices
    np.testing.assert_allclose(values.view(np.ndarray), (w @ h)[rows, cols], rtol=1e-12)
    v, wh = wh_at_nonzeros(on_device(w), on_device(h), tile_d)
    assert v is tile_d
    np.testing.assert_allclose(np.asarray(wh), values.view(np.ndarray))


def test_scalar_kernels_return_host_numbers_from_device_inputs(fake_cupy):
    w, h, tile = _dense_inputs()
    sparse = sp.csr_matrix(tile * (tile > 0.5))
    for beta in (0.0, 1.5):
        host = beta_divergence_terms(w, h, sparse, beta)
        dev = beta_divergence_terms(on_device(w), on_device(h), on_device(sparse), beta)
        assert type(dev) is np.ndarray
        np.testing.assert_allclose(dev, host, rtol=1e-12)
    host = kl_divergence_terms(w, h, sparse)
    dev = kl_divergence_terms(on_device(w), on_device(h), on_device(sparse))
    assert type(dev) is np.ndarray
    np.testing.assert_allclose(dev, host, rtol=1e-12)
    dev = masked_divergence_terms(on_device(w), on_device(h), on_device(sparse), 1.0)
    np.testing.assert_allclose(dev, masked_divergence_terms(w, h, sparse, 1.0))
    assert type(tile_stats(on_device(sparse), 0, 0, 5)) is np.ndarray


# -- errors ----------------------------------------------------------------------------


def test_unknown_device_is_refused_by_name():
    with pytest.raises(InvalidParameterError, match=r"'device' parameter must be .*'tpu'"):
        dasknmf.NMF(2, device="tpu").fit(make_matrix(10, 8))
    with pytest.raises(InvalidParameterError, match=r"'output' parameter must be .*'torch'"):
        dasknmf.NMF(2, output="torch").fit(make_matrix(10, 8))


@pytest.mark.skipif(HAVE_CUPY, reason="CuPy is installed here")
@pytest.mark.parametrize("params", [{"device": "cuda"}, {"output": "cupy"}])
def test_gpu_without_cupy_says_how_to_install_it(params):
    model = dasknmf.NMF(2, max_iter=2, **params)
    with pytest.raises(DeviceUnavailableError, match=r"needs CuPy.*pip install 'dasknmf\[gpu\]'"):
        model.fit(make_matrix(10, 8))
    assert not hasattr(model, "components_")  # refused before any work


def test_cuda_without_a_gpu_is_refused(fake_cupy, monkeypatch):
    monkeypatch.setattr(fake_cupy.cuda.runtime, "getDeviceCount", lambda: 0)
    with pytest.raises(DeviceUnavailableError, match="sees no GPU"):
        dasknmf.NMF(2, device="cuda").fit(make_matrix(10, 8))


def test_cuda_without_a_driver_names_the_cuda_error(fake_cupy, monkeypatch):
    def broken():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    monkeypatch.setattr(fake_cupy.cuda.runtime, "getDeviceCount", broken)
    with pytest.raises(DeviceUnavailableError, match=r"could not start.*cudaErrorNoDevice"):
        dasknmf.NMF(2, device="cuda").fit(make_matrix(10, 8))


# -- whole fits on the fake device equal the CPU's -------------------------------------

FITS = {
    "mu": dict(),
    "hals": dict(solver="hals", alpha_W=0.01, l1_ratio=0.5),
    "kl": dict(beta_loss="kullback-leibler"),
    "beta": dict(beta_loss=0.5),
    "masked": dict(missing="ignore", beta_loss=1.5),
}


def _fit(X, params, **extra):
    seen: list = []
    model = dasknmf.NMF(
        3,
        init="random",
        random_state=0,
        max_iter=12,
        tol=0,
        callbacks=[lambda info: seen.append(info)],
        **params,
        **extra,
    )
    W = model.fit_transform(X)
    return model, W, seen


def _first_block(X):
    return X.blocks[0, 0].compute() if isinstance(X, da.Array) else X


@pytest.mark.parametrize("name", sorted(FITS))
@pytest.mark.parametrize(
    "layout", ["one tile", "tiles in memory", "out of core"]
)  # eager kernels; one graph per iteration; one pass over V per iteration
def test_fit_on_the_device_equals_the_fit_on_the_cpu(fake_cupy, name, layout, kind):
    X = make_matrix(40, 24, kind=kind, seed=3)
    if layout != "one tile":
        X = da.from_array(X, chunks=(10, 24), asarray=False)
    params = dict(FITS[name], persist=layout != "out of core")
    cpu, W_cpu, _ = _fit(X, params)
    gpu, W_gpu, seen = _fit(X, params, device="cuda")
    # The factors lived on the device during the fit...
    assert all(type(_first_block(i.W)) is DeviceArray for i in seen)
    assert all(type(_first_block(i.H)) is DeviceArray for i in seen)
    # ...and came back as NumPy.
    assert type(gpu.components_) is np.ndarray
    assert type(_first_block(W_gpu)) is np.ndarray
    np.testing.assert_allclose(gpu.components_, cpu.components_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(W_gpu), np.asarray(W_cpu), rtol=1e-9, atol=1e-12)
    assert gpu.reconstruction_err_ == pytest.approx(cpu.reconstruction_err_, rel=1e-10)
    assert gpu.persisted_ == cpu.persisted_


def test_tiles_reach_the_device_inside_the_graph(fake_cupy, monkeypatch):
    moved = []
    real = devices.block_to_device
    monkeypatch.setattr(devices, "block_to_device", lambda b: moved.append(b) or real(b))
    X = da.from_array(make_matrix(40, 24), chunks=(10, 24), asarray=False)
    dasknmf.NMF(
        3, init="random", random_state=0, max_iter=3, tol=0, persist=False, device="cuda"
    ).fit(X)
    # Out of core, each of the 4 tiles is moved on every pass (stats and init run on
    # the host and move nothing).
    tiles = [t for t in moved if sp.issparse(t)]
    assert len(tiles) >= 4 * 3 and len(tiles) % 4 == 0


def test_output_cupy_returns_device_arrays(fake_cupy):
    X = make_matrix(30, 20, seed=2)
    model = dasknmf.NMF(
        3, init="random", random_state=0, max_iter=5, tol=0, device="cuda", output="cupy"
    )
    W = model.fit_transform(X)
    assert type(W) is DeviceArray and type(model.components_) is DeviceArray
    assert type(model.transform(X)) is DeviceArray
    lazy = model.transform(da.from_array(X, chunks=(10, 20), asarray=False))
    assert type(lazy.blocks[0, 0].compute()) is DeviceArray
    # Methods that compute on the host accept device components.
    assert model.inverse_transform(W.view(np.ndarray)).shape == (30, 20)


def test_transform_on_the_device_equals_the_cpu(fake_cupy, kind):
    X = make_matrix(40, 24, kind=kind, seed=4)
    cpu = dasknmf.NMF(3, init="random", random_state=0, max_iter=20, tol=0).fit(X)
    gpu = dasknmf.NMF(3, init="random", random_state=0, max_iter=20, tol=0, device="cuda").fit(X)
    tiled = da.from_array(X, chunks=(10, 24), asarray=False)
    W_cpu, W_gpu = cpu.transform(tiled), gpu.transform(tiled)
    assert type(W_gpu.blocks[0, 0].compute()) is np.ndarray
    np.testing.assert_allclose(W_gpu.compute(), W_cpu.compute(), rtol=1e-9, atol=1e-12)


def test_a_device_fit_state_is_on_the_host_and_resumes(fake_cupy):
    X = da.from_array(make_matrix(40, 24, seed=5), chunks=(10, 24), asarray=False)
    states = []
    params = dict(n_components=3, init="random", random_state=0, max_iter=10, tol=0)
    full = dasknmf.NMF(**params, device="cuda", callbacks=[lambda i: states.append(i.state())])
    W_full = full.fit_transform(X)
    state = states[3]
    assert type(state.W.blocks[0, 0].compute()) is np.ndarray
    for device in ("cuda", "cpu"):
        resumed = dasknmf.NMF(**params, device=device)
        W = resumed.fit_transform(X, resume=state)
        np.testing.assert_allclose(W.compute(), W_full.compute(), rtol=1e-9)


def test_a_device_input_is_accepted(fake_cupy):
    X = make_matrix(30, 20, seed=6, kind="dense")
    host = dasknmf.NMF(3, init="random", random_state=0, max_iter=5, tol=0).fit(X)
    dev = dasknmf.NMF(3, init="random", random_state=0, max_iter=5, tol=0, device="cuda")
    dev.fit(on_device(X))
    np.testing.assert_allclose(dev.components_, host.components_, rtol=1e-9)
