"""The MU solver against the dense reference and scikit-learn."""

from __future__ import annotations

import itertools
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from dask.core import flatten, get_dependencies
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.decomposition import NMF as SklearnNMF

import dasknmf
from dasknmf import fit
from dasknmf.datasets import term_document
from dasknmf.solvers.mu import FrobeniusMU
from tests import reference
from tests.helpers import make_factors, make_matrix
from tests.solvers.solver_testing import SolverTests


def run_mu(X, W0, H0, chunks, n_iter, in_memory=True, **kwargs):
    V = da.from_array(X, chunks=chunks, asarray=False)
    norm2 = float((reference.dense(X) ** 2).sum())
    W = da.from_array(W0, chunks=(chunks[0], W0.shape[1]))
    H = da.from_array(H0, chunks=(H0.shape[0], chunks[1]))
    solver = FrobeniusMU(V, norm2, in_memory=in_memory)
    return fit.run(solver, W, H, max_iter=n_iter, tol=0, **kwargs)


def test_float32_matches_reference_to_float32_tolerance():
    X = make_matrix(60, 40, dtype=np.float32)
    W0, H0 = make_factors(60, 40, 5, dtype=np.float32)
    W_ref, _H_ref, errors = reference.mu_frobenius(X, W0, H0, 20)
    result = run_mu(X, W0, H0, (16, 40), 20)
    assert result.W.dtype == np.float32
    np.testing.assert_allclose(result.W.compute(), W_ref, rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(result.error, errors[-1], rtol=1e-4)


@pytest.mark.parametrize("sparse_input", [True, False])
def test_same_loss_as_sklearn_after_50_iterations(sparse_input):
    X = make_matrix(120, 80, density=0.15)
    X = X if sparse_input else X.toarray()
    W0, H0 = make_factors(120, 80, 6, seed=7)
    sk = SklearnNMF(6, solver="mu", init="custom", max_iter=50, tol=0)
    W_sk = sk.fit_transform(X, W=W0.copy(), H=H0.copy())
    ours = dasknmf.NMF(6, init="custom", max_iter=50, tol=0, chunks=(32, 30))
    W = ours.fit_transform(X, W=W0, H=H0)
    assert abs(ours.reconstruction_err_ - sk.reconstruction_err_) <= 1e-4 * sk.reconstruction_err_
    np.testing.assert_allclose(W, W_sk, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(ours.components_, sk.components_, rtol=1e-6, atol=1e-10)


def test_stops_at_the_same_iteration_as_sklearn():
    X = make_matrix(100, 70, density=0.2)
    W0, H0 = make_factors(100, 70, 5, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SklearnNMF(5, solver="mu", init="custom", max_iter=500, tol=1e-3).fit(
            X, W=W0.copy(), H=H0.copy()
        )
    ours = dasknmf.NMF(5, init="custom", max_iter=500, tol=1e-3, chunks=(25, 70))
    ours.fit(X, W=W0, H=H0)
    assert 10 < sk.n_iter_ < 500
    assert ours.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(ours.reconstruction_err_, sk.reconstruction_err_, rtol=1e-8)


def test_all_zero_rows_and_columns_stay_finite(kind):
    X = make_matrix(30, 20, density=0.3, kind="dense")
    X[3, :] = 0
    X[:, 5] = 0
    X = sp.csr_matrix(X) if kind == "sparse" else X
    W0, H0 = make_factors(30, 20, 3)
    result = run_mu(X, W0, H0, (7, 6), 30)
    W, H = result.W.compute(), result.H.compute()
    assert np.isfinite(W).all() and np.isfinite(H).all()
    assert np.all(W[3] < 1e-6) and np.all(H[:, 5] < 1e-6)


@settings(max_examples=12, deadline=None)
@given(
    m=st.integers(2, 30),
    n=st.integers(2, 30),
    k=st.integers(1, 5),
    seed=st.integers(0, 10_000),
    density=st.floats(0.05, 1.0),
    rows=st.integers(1, 30),
    cols=st.integers(1, 30),
)
def test_error_never_increases(m, n, k, seed, density, rows, cols):
    X = make_matrix(m, n, density=density, seed=seed)
    W0, H0 = make_factors(m, n, k, seed=seed + 1)
    result = run_mu(X, W0, H0, (min(rows, m), min(cols, n)), 12, callbacks=[lambda info: None])
    errors = [result.error_at_init] + [e for _, e in result.errors]
    assert len(errors) == 13
    # The error comes from ‖V‖² − 2Σ H∘WᵀV + Σ WᵀW∘HHᵀ, exact up to cancellation of
    # order eps·‖V‖² in the squared error.
    slack = 1e-12 * max(reference.dense(X).sum() ** 2, 1.0)
    assert all(b**2 <= a**2 + slack for a, b in itertools.pairwise(errors))


@pytest.mark.parametrize("chunks", [(37, 23), (10, 7), (13, 23)], ids=lambda c: f"{c[0]}x{c[1]}")
def test_fit_from_a_store_matches_dense_reference(tmp_path, kind, chunks):
    """The whole path: write a sparse or dense store, fit from its path, compare."""
    X = make_matrix(37, 23, kind=kind)
    path = str(tmp_path / "V.zarr")
    dasknmf.write_matrix(X, path, chunks=chunks)
    assert dasknmf.matrix_info(path).format == kind
    W0, H0 = make_factors(37, 23, 4)
    W_ref, H_ref, errors = reference.mu_frobenius(X, W0, H0, 12)
    model = dasknmf.NMF(4, init="custom", max_iter=12, tol=0)
    W = model.fit_transform(path, W=W0, H=H0)
    assert isinstance(W, da.Array)
    np.testing.assert_allclose(W.compute(), W_ref, rtol=1e-9)
    np.testing.assert_allclose(model.components_, H_ref, rtol=1e-9)
    np.testing.assert_allclose(model.reconstruction_err_, errors[-1], rtol=1e-9)


@pytest.mark.parametrize("chunks", [(37, 23), (10, 7), (1, 23)], ids=lambda c: f"{c[0]}x{c[1]}")
def test_one_pass_is_the_two_pass_update_sequence(kind, chunks):
    from dasknmf.kernels.frobenius import mu_rule
    from dasknmf.solvers.frobenius import one_pass, update_h, update_w

    X = make_matrix(37, 23, kind=kind)
    W0, H0 = make_factors(37, 23, 4)
    V = da.from_array(X, chunks=chunks, asarray=False)
    W = da.from_array(W0, chunks=(chunks[0], 4))
    H = da.from_array(H0, chunks=(4, chunks[1]))
    W1, wtv1, wtw1 = one_pass(V, W, H, mu_rule)
    W2 = update_w(V, W, H, mu_rule)
    _, wtv2, wtw2 = update_h(V, W2, H, mu_rule)
    np.testing.assert_array_equal(W1.compute(), W2.compute())
    np.testing.assert_allclose(wtv1.compute(), wtv2.compute(), rtol=1e-13)
    np.testing.assert_allclose(wtw1.compute(), wtw2.compute(), rtol=1e-13)


def _consumers_of_tiles(V: da.Array, out: da.Array) -> list[int]:
    """How many tasks of ``out``'s graph read each tile of ``V``."""
    graph = dict(out.__dask_graph__())
    tiles = {k for k in graph if isinstance(k, tuple) and k[0] == V.name}
    counts = dict.fromkeys(tiles, 0)
    for key in graph:
        for dep in get_dependencies(graph, key):
            if dep in counts:
                counts[dep] += 1
    return sorted(counts.values())


@pytest.mark.parametrize("chunks, one_pass", [((10, 10), True), ((10, 2), False)])
def test_out_of_core_each_tile_feeds_one_task_per_graph(chunks, one_pass):
    """Out of core, a tile read from the store is held until its last consumer in the
    graph has run: one consumer per tile per graph keeps memory to a row of tiles.
    With more column tiles than SPLIT_EVERY the two passes run as two graphs."""
    from dasknmf import products

    X = make_matrix(40, 20, density=0.3)
    V = da.from_array(X, chunks=chunks, asarray=False)
    assert products.few_column_tiles(V) is one_pass
    W0, H0 = make_factors(40, 20, 3)
    W = da.from_array(W0, chunks=(10, 3))
    H = da.from_array(H0, chunks=(3, chunks[1]))
    step = FrobeniusMU(V, 1.0, in_memory=False).step(W, H)
    assert _consumers_of_tiles(V, step.H) == [1] * V.npartitions
    _, H_ref, _ = reference.mu_frobenius(X, W0, H0, 1)
    np.testing.assert_allclose(step.H.compute(), H_ref, rtol=1e-12)
    # In memory, the faster two-pass graph reads each (persisted) tile twice.
    in_memory = FrobeniusMU(V, 1.0, in_memory=True).step(W, H)
    assert _consumers_of_tiles(V, in_memory.H) == [2] * V.npartitions
    np.testing.assert_allclose(in_memory.H.compute(), H_ref, rtol=1e-12)


# Slow: two penalties wide and out of core, the heaviest case; the full elastic net
# runs there by default, and every penalty in the three other placements.
@pytest.mark.parametrize(
    ("alpha_W", "alpha_H", "l1_ratio", "chunks", "persist"),
    [
        pytest.param(
            *penalty,
            chunks,
            persist,
            id=f"{'-'.join(map(str, penalty))}-{chunks_id}-{persist_id}",
            marks=[pytest.mark.slow]
            if (chunks_id, persist_id, penalty[0]) == ("wide", "out-of-core", 0.01)
            else [],
        )
        for penalty in [(0.01, "same", 0.0), (0.01, "same", 1.0), (0.02, 0.005, 0.5)]
        for chunks, chunks_id in [((32, 30), "few-column-tiles"), ((32, 8), "wide")]
        for persist, persist_id in [(True, "in-memory"), (False, "out-of-core")]
    ],
)
def test_regularised_fit_and_transform_match_sklearn(persist, chunks, alpha_W, alpha_H, l1_ratio):
    X = make_matrix(120, 80, density=0.15)
    W0, H0 = make_factors(120, 80, 6, seed=7)
    params = dict(
        init="custom", max_iter=50, tol=0, alpha_W=alpha_W, alpha_H=alpha_H, l1_ratio=l1_ratio
    )
    sk = SklearnNMF(6, solver="mu", **params)
    W_sk = sk.fit_transform(X, W=W0.copy(), H=H0.copy())
    ours = dasknmf.NMF(6, chunks=chunks, persist=persist, **params)
    W = ours.fit_transform(X, W=W0, H=H0)
    assert ours.persisted_ is persist
    np.testing.assert_allclose(W, W_sk, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.components_, sk.components_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.reconstruction_err_, sk.reconstruction_err_, rtol=1e-10)
    np.testing.assert_allclose(ours.transform(X[:40]), sk.transform(X[:40]), rtol=1e-9, atol=1e-12)
    # the penalty really acts: an unregularised fit ends elsewhere
    plain = dasknmf.NMF(6, init="custom", max_iter=50, tol=0, chunks=chunks).fit(X, W=W0, H=H0)
    assert not np.allclose(plain.components_, ours.components_, rtol=1e-3)


def _tasks_per_iteration(row_tiles: int, col_tiles: int, in_memory: bool) -> int:
    X = make_matrix(8 * row_tiles, 5 * col_tiles, density=0.5)
    V = da.from_array(X, chunks=(8, 5), asarray=False)
    (V,) = dask.persist(V)
    W0, H0 = make_factors(*X.shape, 3)
    W = da.from_array(W0, chunks=(8, 3)).persist()
    H = da.from_array(H0, chunks=(3, 5)).persist()
    step = FrobeniusMU(V, 1.0, in_memory=in_memory).step(W, H)
    graph = {**step.W.__dask_graph__(), **step.H.__dask_graph__(), **step.error().__dask_graph__()}
    inputs = {k for a in (V, W, H) for k in flatten(a.__dask_keys__())}
    return len(set(graph) - inputs)


@pytest.mark.parametrize("in_memory", [True, False])
def test_tasks_per_iteration_grow_linearly_with_the_tiles(in_memory):
    """docs/architecture.md: an iteration is O(tiles) tasks, at most 4 per tile + 32."""
    for rows, cols in [(1, 1), (2, 1), (4, 2), (16, 3), (32, 4)]:
        assert _tasks_per_iteration(rows, cols, in_memory) <= 4 * rows * cols + 32
    # and really proportional: doubling the row tiles adds a bounded number per tile
    small, large = _tasks_per_iteration(16, 3, in_memory), _tasks_per_iteration(32, 3, in_memory)
    assert 0 < large - small <= 4 * 16 * 3


class TestFrobeniusMU(SolverTests):
    """The conformance suite (:mod:`tests.solvers.solver_testing`) for MU."""

    loss, solver = "frobenius", "mu"

    @staticmethod
    def reference(V, mask, W0, H0, n_iter):
        return reference.mu_frobenius(V, W0, H0, n_iter)


def test_a_float32_fit_reports_the_error_of_its_factors_to_float64_accuracy():
    """Long columns of skewed counts: float32 sums of ``WᵀV`` over the rows leave
    ``Σ H∘(WᵀV)`` 10⁻⁵ off (the cheap error: 1.8 × 10⁻⁵ here), which can move the
    stopping rule; where the rule reads it and at the end, the error is exact."""
    X = sp.csr_matrix(term_document(200_000, 300), dtype=np.float32)
    model = dasknmf.NMF(20, random_state=0, max_iter=30, tol=0)
    W = model.fit_transform(X)
    V, W, H = X.astype(np.float64), W.astype(np.float64), model.components_.astype(np.float64)
    # ‖V − WH‖² in float64 (V dense would be 460 MiB).
    squared = V.data @ V.data - 2 * np.sum(W * (V @ H.T)) + np.sum((W.T @ W) * (H @ H.T))
    assert abs(model.reconstruction_err_ / np.sqrt(squared) - 1) < 2e-6
