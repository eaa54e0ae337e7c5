"""Sweeps with ``W`` kept in factor stores (``RankSweep(factors='store')``, and
``NMF(n_init=R, factors='store')``): the same replicates as in memory, the stacked
``W`` and each finished replicate's in their own stores, memory bounded whatever
``m × Σk``, and resume from a state that reads the stores."""

from __future__ import annotations

import gc
import os
import tracemalloc
import warnings

import dask.array as da
import numpy as np
import pytest

import dasknmf
from dasknmf import RankSweep
from dasknmf.storage.factors import stored_source
from tests.helpers import make_matrix

M, N = 180, 120

#: The solver families a sweep stacks in its kernels (HALS, MU) and those it runs
#: side by side (a divergence, the masked solvers).
SOLVERS = {
    "hals": dict(solver="hals"),
    "mu": dict(solver="mu"),
    "kl": dict(solver="mu", beta_loss="kullback-leibler"),
    "als-masked": dict(missing="ignore", solver="als"),
}


@pytest.fixture(scope="module")
def X():
    return make_matrix(M, N, density=0.25, seed=11)


def sweep_params(**params) -> dict:
    # tol > 0: the replicates stop at different iterations, so the stack shrinks
    # (its W rewritten narrower) while others run on.
    return dict(
        n_replicates=2, holdout=0.1, random_state=0, max_iter=40, tol=1e-3, check_every=5,
        chunks=(60, 40), density_threshold=1.5,
    ) | params  # fmt: skip


def fit(X, **params) -> RankSweep:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RankSweep([2, 3], **sweep_params(**params)).fit(X)


def assert_same_sweep(a: RankSweep, b: RankSweep, rtol: float = 1e-9) -> None:
    for column in ("n_iter", "converged"):
        assert list(a.results_[column]) == list(b.results_[column])
    for column in ("train_error", "test_error"):
        np.testing.assert_allclose(a.results_[column], b.results_[column], rtol=rtol)
    for k in (2, 3):
        np.testing.assert_allclose(a.components_[k], b.components_[k], rtol=rtol, atol=1e-12)


#: Both ways of holding V for the stacked kernels; the side-by-side solvers (slower
#: here) out of core only, where the stored W matters. Slow: all but HALS out of core
#: and the in-memory cases.
CASES = [("hals", True), ("hals", False), ("mu", True), ("mu", False), ("kl", False),
         ("als-masked", False)]  # fmt: skip
SLOW = {("mu", False), ("kl", False), ("als-masked", False)}


@pytest.mark.parametrize(
    ("name", "persist"),
    [pytest.param(n, p, marks=[pytest.mark.slow] if (n, p) in SLOW else []) for n, p in CASES],
    ids=[f"{n}-{'in-memory-V' if p else 'out-of-core'}" for n, p in CASES],
)
def test_a_sweep_with_w_stored_is_the_sweep_in_memory(X, name, persist, tmp_path):
    memory = fit(X, factors="memory", persist=persist, **SOLVERS[name])
    stored = fit(X, factors="store", factor_store=tmp_path, persist=persist, **SOLVERS[name])
    assert len(set(memory.results_["n_iter"])) > 1  # the stack did shrink
    assert_same_sweep(memory, stored)
    # The stacked W, then one store per replicate, in the order of results_.
    assert sorted(os.listdir(tmp_path)) == sorted(["W"] + [f"W-{r}" for r in range(4)])
    assert memory.consensus(3).reconstruction_err_ == pytest.approx(
        stored.consensus(3).reconstruction_err_, rel=1e-9
    )


def test_a_stored_sweep_keeps_every_replicate_w_in_its_store(X):
    states = []
    fit(X, factors="store", callbacks=[states.append])
    state = states[-1].state()
    assert not state.active
    for r, result in enumerate(state.finished):
        assert isinstance(result.W, da.Array), r
        assert stored_source(result.W) is not None  # read from the store, never loaded
        # The held-in rows only (holdout=0.1 of them are left out).
        assert result.W.shape == (M - round(0.1 * M), state.ranks[r])


def test_temporary_replicate_stores_go_with_the_last_array_reading_them(X):
    states = []
    fit(X, factors="store", callbacks=[states.append])
    result = states[-1].state().finished[0]
    directory = stored_source(result.W)
    assert directory is not None and os.path.isdir(directory)
    del result, states
    gc.collect()
    assert not os.path.exists(directory)


def test_a_stored_sweep_resumes_to_the_sweep_never_stopped(X):
    states = []
    whole = fit(X, factors="memory", callbacks=[lambda info: states.append(info.state())])
    middle = next(s for s in states if s.active and any(f is not None for f in s.finished))
    resumed = RankSweep([2, 3], **sweep_params(factors="store"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed.fit(X, resume=middle)
    assert_same_sweep(whole, resumed)
    # And a stored sweep's own state (W reading its store) resumes in memory.
    stored_states = []
    fit(X, factors="store", callbacks=[lambda info: stored_states.append(info.state())])
    middle = next(s for s in stored_states if s.active and any(f is not None for f in s.finished))
    assert stored_source(middle.W) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = RankSweep([2, 3], **sweep_params(factors="memory")).fit(X, resume=middle)
    assert_same_sweep(whole, again)


def test_n_init_with_w_stored_is_the_best_start_in_memory(X):
    params = dict(n_components=3, n_init=3, init="random", random_state=0, max_iter=30)
    memory = dasknmf.NMF(**params, factors="memory").fit(X)
    stored = dasknmf.NMF(**params, factors="store").fit(X)
    np.testing.assert_allclose(stored.init_errors_, memory.init_errors_, rtol=1e-9)
    np.testing.assert_allclose(
        np.asarray(stored.components_), memory.components_, rtol=1e-9, atol=1e-12
    )


@pytest.mark.slow  # tracemalloc slows every allocation: 15 s
def test_a_stored_sweep_holds_blocks_of_w_not_the_stack(tmp_path):
    # m × Σk = 24,000 × 40 float64: 7.3 MiB of W; a block of 1,000 rows is 0.3 MiB.
    # What the store leaves is the fixed part: the initial factors' generator
    # blocks, V's decode buffers and tiles, the graph.
    m, n = 24_000, 60
    V = make_matrix(m, n, density=0.05, seed=5)
    store = tmp_path / "V.zarr"
    dasknmf.write_matrix(V, store, chunks=(1_000, n))
    params = dict(
        n_replicates=4, holdout=0, random_state=0, max_iter=4, tol=0, persist=False,
        solver="hals",
    )  # fmt: skip
    stacked_w = m * sum(k * 4 for k in (4, 6)) * 8
    peaks = {}
    for factors in ("memory", "store"):
        RankSweep([4, 6], factors=factors, **params).fit(str(store))  # imports, caches
        tracemalloc.start()
        RankSweep([4, 6], factors=factors, **params).fit(str(store))
        peaks[factors] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks["memory"] - peaks["store"] > 2 * stacked_w, peaks
    assert peaks["store"] < stacked_w, peaks
