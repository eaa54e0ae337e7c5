"""The iteration driver: how graphs are run, what callbacks see, when it stops."""

from __future__ import annotations

import gc
import itertools
import threading
import weakref
from dataclasses import dataclass, replace

import dask.array as da
import numpy as np
import pytest
from dask.core import flatten

from dasknmf import fit
from dasknmf.solvers.mu import FrobeniusMU
from tests import reference
from tests.helpers import make_factors, make_matrix


@dataclass(frozen=True)
class Rebuilt:
    """The same solver, but declared non-reusable: a fresh graph every iteration."""

    inner: FrobeniusMU
    reusable: bool = False

    def step(self, W, H):
        return self.inner.step(W, H)

    def error(self, W, H):
        return self.inner.error(W, H)


def setup(chunks=(10, 20), in_memory=True, counter=None):
    X = make_matrix(40, 20, density=0.3)
    V = da.from_array(X, chunks=chunks, asarray=False)
    if counter is not None:
        lock = threading.Lock()

        def count(tile):
            with lock:
                counter.append(1)
            return tile

        V = V.map_blocks(count, dtype=V.dtype, meta=V._meta)  # meta: no probing call
    W0, H0 = make_factors(40, 20, 3)
    W = da.from_array(W0, chunks=(chunks[0], 3))
    H = da.from_array(H0, chunks=(3, chunks[1]))
    norm2 = float((X.toarray() ** 2).sum())
    return X, W0, H0, FrobeniusMU(V, norm2, in_memory=in_memory), W, H


@pytest.mark.parametrize("in_memory", [True, False])
def test_compiled_graph_gives_the_same_factors_as_rebuilding_it(in_memory):
    X, W0, H0, solver, W, H = setup(in_memory=in_memory)
    assert solver.reusable
    compiled = fit.run(solver, W, H, max_iter=7, tol=0)
    rebuilt = fit.run(Rebuilt(solver), W, H, max_iter=7, tol=0)
    np.testing.assert_array_equal(compiled.W.compute(), rebuilt.W.compute())
    np.testing.assert_array_equal(compiled.H.compute(), rebuilt.H.compute())
    _W_ref, H_ref, errors = reference.mu_frobenius(X, W0, H0, 7)
    np.testing.assert_allclose(compiled.H.compute(), H_ref, rtol=1e-10)
    np.testing.assert_allclose(compiled.error, errors[-1], rtol=1e-10)
    assert compiled.W.chunks == W.chunks and compiled.H.chunks == H.chunks


def test_out_of_core_tiles_are_read_again_every_iteration():
    reads: list[int] = []
    _, _, _, solver, W, H = setup(in_memory=False, counter=reads)
    n_tiles = solver.V.npartitions
    fit.run(solver, W, H, max_iter=5, tol=0)
    # one pass per iteration: the first also gives the initial factors' error, the
    # last the final error, from the same pass's products (docs/benchmarks.md)
    assert len(reads) == n_tiles * 5


def test_zero_iterations_out_of_core_read_v_once_for_the_initial_error():
    reads: list[int] = []
    _, _, _, solver, W, H = setup(in_memory=False, counter=reads)
    result = fit.run(solver, W, H, max_iter=0, tol=0)
    assert len(reads) == solver.V.npartitions
    assert result.error == result.error_at_init


@pytest.mark.parametrize("callbacks", [False, True])
def test_the_first_pass_scores_the_initial_factors_as_a_pass_of_its_own_would(callbacks):
    """Out of core the initial error comes from the first iteration's pass: the same
    number as the error computed on its own, the same stopping decisions and, for
    callbacks, the same ``error_at_init`` from the first iteration on."""
    X, W0, H0, solver, W, H = setup(in_memory=False)
    assert solver.scores_input
    seen: list = []
    options = dict(max_iter=60, tol=1e-3, check_every=2, callbacks=[seen.append] * callbacks)
    folded = fit.run(solver, W, H, **options)
    separate = fit.run(Rebuilt(solver), W, H, **options)
    dense = np.linalg.norm(X.toarray() - W0 @ H0)
    np.testing.assert_allclose(folded.error_at_init, dense, rtol=1e-12)
    np.testing.assert_allclose(folded.error_at_init, separate.error_at_init, rtol=1e-12)
    assert folded.n_iter == separate.n_iter < 60 and folded.converged
    assert [i for i, _ in folded.errors] == [i for i, _ in separate.errors]
    np.testing.assert_array_equal(folded.H.compute(), separate.H.compute())
    if callbacks:
        assert {info.error_at_init for info in seen} == {folded.error_at_init}


@pytest.mark.parametrize("in_memory", [True, False])
def test_the_loop_lets_go_of_the_initial_factors(in_memory):
    """Handed over, the initial W is freed once the loop has moved past it: no frame
    or compiled graph keeps a whole extra W for the rest of the fit (both did)."""
    _, W0, _, solver, W, H = setup(in_memory=in_memory)
    W = da.from_array(W0.copy(), chunks=W.chunks).persist()
    (key, *_) = flatten(W.__dask_keys__())
    ref = weakref.ref(W.__dask_graph__()[key])
    handed = [W, H]
    del W
    alive = []

    def check(info):
        gc.collect()
        alive.append(ref() is not None)

    fit.run_handed(solver, handed, max_iter=3, tol=0, callbacks=[check])
    # During an iteration its old and new W coexist; after it, the old one is gone.
    assert handed == [] and alive[1:] == [False, False]


def test_callbacks_see_every_iteration_and_the_factors():
    _, _W0, _H0, solver, W, H = setup()
    seen = []
    result = fit.run(solver, W, H, max_iter=4, tol=0, callbacks=[seen.append])
    assert [info.iteration for info in seen] == [1, 2, 3, 4]
    assert [info.error for info in seen] == [e for _, e in result.errors]
    np.testing.assert_array_equal(seen[-1].H.compute(), result.H.compute())
    curve = [seen[0].error_at_init] + [info.error for info in seen]
    assert all(b <= a for a, b in itertools.pairwise(curve))


@dataclass(frozen=True)
class Halved:
    """The same solver, whose exact error (``Step.exact_error``) is half its error:
    which one the loop asked for shows in the errors it reports."""

    inner: FrobeniusMU
    reusable: bool = True

    def step(self, W, H):
        step = self.inner.step(W, H)
        return replace(step, exact_error=lambda: step.error() * 0.5)

    def error(self, W, H):
        return self.inner.error(W, H)


@pytest.mark.parametrize("reusable", [True, False], ids=["compiled", "rebuilt"])
def test_the_exact_error_is_asked_where_the_rule_reads_it_and_at_the_end(reusable):
    _, _W0, _H0, solver, W, H = setup()
    options = dict(max_iter=7, tol=1e-12, check_every=3)
    plain = fit.run(solver, W, H, callbacks=[lambda info: None], **options)
    seen = []
    halved = fit.run(Halved(solver, reusable), W, H, callbacks=[seen.append], **options)
    exact = {3, 6, 7}  # the checks and the last iteration
    expected = [e * 0.5 if i in exact else e for i, e in plain.errors]
    np.testing.assert_allclose([e for _, e in halved.errors], expected, rtol=1e-12)
    assert [info.error for info in seen] == [e for _, e in halved.errors]
    np.testing.assert_allclose(halved.error, plain.error * 0.5, rtol=1e-12)


def test_zero_iterations_return_the_initial_factors():
    _, W0, _H0, solver, W, H = setup()
    result = fit.run(solver, W, H, max_iter=0, tol=1e-4)
    assert result.n_iter == 0 and result.errors == []
    np.testing.assert_array_equal(result.W.compute(), W0)
    assert result.error == result.error_at_init


def test_stops_at_a_check_when_progress_is_below_tol():
    _, _, _, solver, W, H = setup()
    result = fit.run(solver, W, H, max_iter=1000, tol=1e-2, check_every=5)
    assert result.converged and result.n_iter % 5 == 0 and result.n_iter < 1000
    assert [i for i, _ in result.errors] == list(range(5, result.n_iter + 1, 5))


# -- stopping and resuming -------------------------------------------------------------


def test_resume_from_a_state_continues_the_same_loop():
    """fit.resume from the state at iteration k equals the loop that never stopped,
    with errors computed at every iteration (callbacks) or at checks only."""
    _, _, _, solver, W, H = setup()
    seen = []
    options = dict(max_iter=400, tol=1e-3, check_every=3)
    full = fit.run(solver, W, H, callbacks=[seen.append], **options)
    assert full.converged and 7 < full.n_iter < 400
    plain = fit.run(solver, W, H, **options)  # errors at checks only
    for k in (4, 6):  # between checks, and at a check (the rule's reference moved)
        state = seen[k - 1].state()
        assert state.iteration == k and state.errors == tuple(full.errors[:k])
        with_callbacks = fit.resume(solver, state, callbacks=[lambda info: None], **options)
        quiet = fit.resume(solver, state, **options)
        for result in (with_callbacks, quiet):
            np.testing.assert_array_equal(result.W.compute(), full.W.compute())
            np.testing.assert_array_equal(result.H.compute(), full.H.compute())
            assert (result.n_iter, result.converged) == (full.n_iter, True)
            assert result.error == full.error and result.error_at_init == full.error_at_init
        assert with_callbacks.errors == full.errors
        assert quiet.errors == full.errors[:k] + [e for e in plain.errors if e[0] > k]


def test_resume_from_the_converged_iteration_runs_nothing_more():
    _, _, _, solver, W, H = setup()
    seen = []
    full = fit.run(solver, W, H, max_iter=400, tol=1e-3, check_every=3, callbacks=[seen.append])
    last = seen[-1].state()
    assert last.converged and last.iteration == full.n_iter
    again = fit.resume(solver, last, max_iter=400, tol=1e-3, check_every=3)
    assert (again.n_iter, again.converged, again.errors) == (full.n_iter, True, full.errors)
    np.testing.assert_array_equal(again.H.compute(), full.H.compute())


def test_resume_refuses_a_state_past_max_iter():
    _, _, _, solver, W, H = setup()
    seen = []
    fit.run(solver, W, H, max_iter=5, tol=0, callbacks=[seen.append])
    with pytest.raises(ValueError, match="iteration 5 a loop of max_iter=3"):
        fit.resume(solver, seen[-1].state(), max_iter=3, tol=0)


@pytest.mark.parametrize("persist", [True, False], ids=["in-memory-V", "out-of-core"])
def test_an_iteration_replaces_w_block_by_block(persist):
    """The current W's blocks are handed to the step's graph, which lets each go once
    its row block is updated: past the first iteration, a fit holds one W and a few
    blocks, not the current W beside the whole new one (two W's were the peak of every
    fit with W in memory)."""
    import tracemalloc

    import dasknmf

    X = make_matrix(40_000, 30, density=0.1, seed=2)
    k, w_bytes = 16, 40_000 * 16 * 8
    peaks = []

    def measure(info):
        if tracemalloc.is_tracing():
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.reset_peak()

    model = dasknmf.NMF(
        k, init="random", max_iter=5, tol=0, chunks=(2_000, 30), persist=persist,
        factors="memory", callbacks=[measure], random_state=0,
    )  # fmt: skip
    model.fit(X)  # imports and caches outside the trace
    tracemalloc.start()
    try:
        model.fit(X)
    finally:
        tracemalloc.stop()
    # From the second iteration on (the first also scores its input factors).
    # 2.5-2.6 W's before (the current and the new W whole, the tiles, a block of
    # each), 1.7 now.
    assert max(peaks[1:]) < 2 * w_bytes
