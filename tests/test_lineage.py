"""Bounded scheduler state on a cluster: re-rooting the factors, and restoring them."""

from __future__ import annotations

import logging
import os
import signal

import numpy as np
import pytest
from distributed import Client, LocalCluster, futures_of

import dasknmf
from dasknmf import fit as fit_loop
from tests.helpers import make_factors, make_matrix

M, N, CHUNKS = 400, 300, (100, 150)  # a 4 × 2 grid of tiles
TILES = 8


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        yield cluster


def fit(cluster, reroot_every, monkeypatch, callbacks=(), max_iter=40, **params):
    """A fit on the cluster; the scheduler's task count after each iteration."""
    monkeypatch.setattr(fit_loop, "REROOT_EVERY", reroot_every)
    X = make_matrix(M, N, density=0.2, seed=3)
    W0, H0 = make_factors(M, N, 4, seed=5)
    counts = []
    with Client(cluster) as client:
        scheduler = cluster.scheduler

        def count(info):
            counts.append(len(scheduler.tasks))

        model = dasknmf.NMF(
            4,
            init="custom",
            max_iter=max_iter,
            tol=0,
            chunks=CHUNKS,
            callbacks=[count, *callbacks],
            **params,
        )
        W = np.asarray(model.fit_transform(X, W=W0, H=H0))
        client.run_on_scheduler(lambda: None)  # let releases settle
    return W, model, counts


@pytest.mark.parametrize("solver", ["mu", pytest.param("hals", marks=pytest.mark.slow)])
def test_scheduler_state_stays_bounded(cluster, monkeypatch, solver):
    """The scheduler holds as many tasks after 25 iterations as after 10: O(tiles),
    one iteration's worth. Without the cut (factors planted as they are, their history
    attached) it grows by O(tiles) every iteration."""
    _, _, bounded = fit(cluster, 5, monkeypatch, max_iter=25, solver=solver)
    assert max(bounded[15:]) <= max(bounded[:10]) + TILES
    assert max(bounded) <= 20 * TILES
    monkeypatch.setattr(fit_loop, "planted", lambda client, anchor: (anchor.W_like, anchor.H_like))
    _, _, growing = fit(cluster, 5, monkeypatch, max_iter=20, solver=solver)
    assert growing[-1] - growing[9] >= 10 * TILES  # the test can tell the difference


@pytest.mark.slow
def test_rerooting_does_not_change_the_result(cluster, monkeypatch):
    W1, m1, _ = fit(cluster, 3, monkeypatch)
    W2, m2, _ = fit(cluster, 10**6, monkeypatch)
    np.testing.assert_array_equal(W1, W2)
    np.testing.assert_array_equal(m1.components_, m2.components_)
    assert m1.error_curve_ == m2.error_curve_


@pytest.mark.slow
def test_float32_on_worker_processes_gives_the_same_bits_whatever_the_roots(monkeypatch):
    """Blocks scattered to worker processes (a re-root, the start of a resumed fit)
    arrive deserialised, sometimes at unaligned addresses; the Gram kernels must not
    round them differently (they did in float32: 1e-7 relative, issue 18)."""
    X = make_matrix(4000, 2000, density=0.05, seed=3).astype(np.float32)
    W0, H0 = (f.astype(np.float32) for f in make_factors(4000, 2000, 12, seed=5))
    results = []
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        for every in (3, 10**6):
            monkeypatch.setattr(fit_loop, "REROOT_EVERY", every)
            model = dasknmf.NMF(12, init="custom", max_iter=20, tol=0, chunks=(1000, 1000))
            W = np.asarray(model.fit_transform(X, W=W0, H=H0))
            results.append((W, np.asarray(model.components_)))
    (W1, H1), (W2, H2) = results
    np.testing.assert_array_equal(W1, W2)
    np.testing.assert_array_equal(H1, H2)


@pytest.mark.slow
def test_lost_factor_blocks_are_restored_from_the_last_root(monkeypatch, caplog):
    """The worker processes holding blocks of W after iteration 12, and those holding
    the iteration-11 blocks they were computed from, are killed: the loop goes back
    to its last anchor (iteration 10), replays, and ends where a fit that lost
    nothing ends."""
    monkeypatch.setattr(fit_loop, "REROOT_EVERY", 5)
    X = make_matrix(M, N, density=0.2, seed=3)
    W0, H0 = make_factors(M, N, 4, seed=5)
    params = dict(init="custom", max_iter=20, tol=0, chunks=CHUNKS)
    reference = dasknmf.NMF(4, **params).fit(X, W=W0, H=H0)
    seen = []
    with (
        LocalCluster(
            n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = client.run(os.getpid)

        previous: list = []

        def kill_a_holder_of_w(info):
            seen.append(info.iteration)
            if info.iteration == 11 and seen.count(11) == 1:
                previous.extend(f.key for f in futures_of(info.W) + futures_of(info.H))
            if info.iteration == 12 and seen.count(12) == 1:
                blocks = [f for f in futures_of(info.W) if f.key[0] == info.W.name]
                holder = next(iter(client.who_has(blocks).values()))[0]
                # The loop still holds iteration 11's factors while the callbacks of
                # iteration 12 run: a worker that survived with the blocks a lost one
                # was computed from would let the scheduler recompute it, and nothing
                # would be lost for the loop to restore. Kill those workers too.
                sources = client.run_on_scheduler(_holders_of, keys=previous)
                for worker in {holder, *sources}:
                    os.kill(pids[worker], signal.SIGKILL)

        with caplog.at_level(logging.WARNING, logger="dasknmf.fit"):
            model = dasknmf.NMF(4, callbacks=[kill_a_holder_of_w], **params)
            model.fit(X, W=W0, H=H0)
    assert "replaying from iteration 10" in caplog.text
    assert seen[:12] == list(range(1, 13)) and seen[12] in (11, 12, 13)
    np.testing.assert_allclose(model.components_, reference.components_, rtol=1e-6)
    assert model.n_iter_ == 20


def _holders_of(dask_scheduler, keys) -> list[str]:
    """Workers holding any of ``keys`` in memory."""
    tasks = dask_scheduler.tasks
    return sorted({ws.address for k in keys if k in tasks for ws in tasks[k].who_has or ()})


def test_data_lost_again_and_again_is_an_error(cluster, monkeypatch):
    """Replays are bounded: a loss that recurs from the same anchor is raised."""
    from concurrent.futures import CancelledError

    seen = []

    def always_lost(info):
        seen.append(info.iteration)
        if info.iteration == 3:
            raise CancelledError("data lost with a worker (simulated)")

    with pytest.raises(CancelledError, match="simulated"):
        fit(cluster, 5, monkeypatch, callbacks=[always_lost])
    assert seen.count(3) == fit_loop.MAX_REPLAYS + 1


class _FlakyClient:
    """Scatters like a client whose first ``failures`` scatters hit a worker that has
    just gone away."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def scatter(self, blocks, hash=False):
        from distributed.comm.core import CommClosedError

        self.calls += 1
        if self.calls <= self.failures:
            raise CommClosedError("in <TCP (closed) ConnectionPool.scatter>: Stream is closed")
        return [f"future-{i}" for i in range(len(blocks))]


def _anchor():
    import dask.array as da

    from dasknmf.lineage import Anchor

    W = da.ones((4, 2), chunks=(2, 2))
    H = da.ones((2, 3), chunks=(2, 3))
    return Anchor(5, [np.ones((2, 2))] * 2, [np.ones((2, 3))], W, H)


def test_a_scatter_to_a_worker_that_just_left_is_retried(monkeypatch):
    from dasknmf import lineage

    monkeypatch.setattr(lineage, "SCATTER_RETRY_SECONDS", 0.0)
    client = _FlakyClient(failures=lineage.SCATTER_ATTEMPTS - 1)
    W, H = lineage.planted(client, _anchor())
    assert W.shape == (4, 2) and H.shape == (2, 3)
    assert client.calls == lineage.SCATTER_ATTEMPTS + 1  # W's retried, then H's at once
    with pytest.raises(OSError, match="Stream is closed"):
        lineage.planted(_FlakyClient(failures=lineage.SCATTER_ATTEMPTS), _anchor())
