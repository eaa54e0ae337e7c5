"""RankSweep: every replicate is the fit it stands for; the k it suggests is right."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import dasknmf
from dasknmf import InvalidParameterError, RankSweep
from dasknmf.datasets import planted_counts
from tests.helpers import make_matrix


def planted(m: int, n: int, k: int, *, seed: int):
    """Poisson counts around a sparse non-negative rank-``k`` ``W₀ H₀``."""
    return planted_counts(m, n, k, seed=seed)[0]


def _inputs(tmp_path, kind):
    X = make_matrix(60, 45, density=0.3, seed=3)
    if kind == "one tile":
        return X.toarray(), {}, 1e-9
    if kind == "tiles in memory":
        return X, dict(chunks=(16, 20)), 1e-9
    if kind == "store, out of core":
        path = str(tmp_path / "V.zarr")
        dasknmf.write_matrix(X, path, chunks=(16, 45))
        return path, dict(persist=False), 1e-9
    return X.astype(np.float32), dict(chunks=(16, 20)), 1e-4


# Slow: out of core (the default suite checks sweeps out of core with W stored,
# tests/sweep/test_stored_sweep.py).
@pytest.mark.parametrize(
    ("kind", "solver"),
    [
        pytest.param(
            kind,
            solver,
            id=f"{kind}-{solver}",
            marks=[pytest.mark.slow] if kind == "store, out of core" else [],
        )
        for solver in ("mu", "hals")
        for kind in ("one tile", "tiles in memory", "store, out of core", "float32")
    ],
)
def test_each_replicate_is_the_single_fit_it_stands_for(tmp_path, solver, kind):
    X, options, rtol = _inputs(tmp_path, kind)
    params = dict(solver=solver, max_iter=60, tol=1e-3, check_every=5, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sweep = RankSweep([2, 4], n_replicates=3, holdout=0, random_state=7, **params).fit(X)
    assert list(sweep.results_.columns[:7]) == [
        "k", "replicate", "seed", "n_iter", "converged", "train_error", "test_error"
    ]  # fmt: skip
    assert len(sweep.results_) == 6 and sweep.results_["test_error"].isna().all()
    assert sweep.results_["n_iter"].nunique() > 1  # replicates stop at their own time
    for row in sweep.results_.itertuples():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            alone = dasknmf.NMF(row.k, init="random", random_state=row.seed, **params).fit(X)
        assert row.n_iter == alone.n_iter_
        np.testing.assert_allclose(row.train_error, alone.reconstruction_err_, rtol=rtol)
        H = sweep.components_[row.k][row.replicate]
        np.testing.assert_allclose(H, alone.components_, rtol=rtol * 10, atol=rtol * 1e-3)


@pytest.mark.parametrize("rank", [5, 10])
def test_the_planted_rank_is_found_and_has_the_lowest_held_out_error(rank):
    X = planted(400, 300, rank, seed=1)
    sweep = RankSweep(list(range(rank - 2, rank + 3)), n_replicates=3, random_state=0).fit(X)
    summary = sweep.summary_.set_index("k")
    assert sweep.best_k_ == rank
    assert summary["test_error"].idxmin() == rank
    assert summary["stability"].idxmax() == rank
    assert summary.loc[rank, "stability"] > 0.95


def test_the_consensus_recovers_the_planted_components():
    rng = np.random.default_rng(4)
    W0 = rng.random((200, 4)) * (rng.random((200, 4)) < 0.5)
    H0 = rng.random((4, 120)) * (rng.random((4, 120)) < 0.4)
    X = W0 @ H0 + 0.01 * rng.random((200, 120))
    sweep = RankSweep([3, 4, 5], n_replicates=4, holdout=0, random_state=0, max_iter=400)
    sweep.fit(X)
    assert sweep.best_k_ == 4
    model = sweep.consensus(4)
    assert isinstance(model, dasknmf.NMF) and model.n_iter_ == 0
    H = model.components_
    cosine = (H / np.linalg.norm(H, axis=1, keepdims=True)) @ (
        H0 / np.linalg.norm(H0, axis=1, keepdims=True)
    ).T
    assert (cosine.max(axis=1) > 0.99).all(), cosine
    # W refitted to the consensus: as good as a fit of that rank.
    assert model.reconstruction_err_ < 1.05 * sweep.summary_.set_index("k").loc[4, "train_error"]
    np.testing.assert_allclose(model.W_ @ H, X, atol=0.05 * X.max())


def test_a_held_out_fit_keeps_full_width_components_and_test_errors():
    X = planted(120, 90, 3, seed=2)
    sweep = RankSweep([2, 3], n_replicates=2, holdout=0.2, random_state=0).fit(X)
    assert sweep.components_[3].shape == (2, 3, 90)
    assert (sweep.results_["test_error"] > 0).all()
    assert set(sweep.summary_.columns) >= {"k", "train_error", "test_error", "stability"}
    # Fitted on fewer rows and columns: the fitted error is not that of all of X.
    alone = dasknmf.NMF(3, init="random", random_state=int(sweep.seeds_[0]), solver="hals")
    alone.fit(X)
    assert sweep.results_["train_error"].iloc[2] < alone.reconstruction_err_


def test_the_plot_is_written_whole(tmp_path):
    X = planted(80, 60, 2, seed=3)
    sweep = RankSweep([1, 2, 3], n_replicates=2, random_state=0, holdout=0.1).fit(X)
    path = sweep.plot(tmp_path / "k_selection.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["k_selection.png"]


def test_progress_shows_iteration_running_replicates_and_speed(capsys):
    X = make_matrix(40, 30, seed=1)
    RankSweep([2, 3], n_replicates=2, holdout=0, random_state=0, verbose=1, max_iter=20).fit(X)
    out = capsys.readouterr().out
    assert "iteration 10: " in out and "of 4 replicates running" in out and "s/iteration" in out


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (dict(n_components=[]), "non-empty list"),
        (dict(n_components=[2, 2]), "lists a rank twice"),
        (dict(n_components=[0, 2]), "int >= 1"),
        (dict(holdout=0.7), "'holdout' parameter must be a real number"),
        (dict(n_replicates=0), "'n_replicates'"),
        (dict(init="nndsvda"), "'random' or 'nndsvdar'"),
        (dict(beta_loss="kullback-leibler", solver="hals"), "needs solver='mu'"),
        (dict(missing="ignore", solver="hals"), "'hals'"),
        (dict(solver="nope"), "'solver' parameter"),
    ],
)
def test_bad_parameters_are_named(params, message):
    params = {"n_components": [2, 3], **params}
    with pytest.raises(InvalidParameterError, match=message):
        RankSweep(**params).fit(np.ones((10, 8)))


def test_a_rank_above_the_held_in_block_is_refused_with_the_shapes():
    with pytest.raises(InvalidParameterError, match=r"k = 9, above .* = 8 .* 18 × 8 block"):
        RankSweep([2, 9], holdout=0.1).fit(sp.random(20, 9, density=0.5, random_state=0))


def test_consensus_of_a_rank_not_swept_is_refused():
    sweep = RankSweep([2, 3], n_replicates=2, holdout=0, random_state=0, max_iter=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sweep.fit(make_matrix(30, 20, seed=2))
    with pytest.raises(InvalidParameterError, match=r"k in \[2, 3\]"):
        sweep.consensus(5)


def test_one_replicate_has_no_stability_but_a_consensus():
    X = planted(60, 40, 2, seed=5)
    sweep = RankSweep([1, 2], n_replicates=1, random_state=0, holdout=0.2).fit(X)
    assert sweep.summary_["stability"].isna().all()
    assert sweep.best_k_ == 2  # from the held-out error alone
    np.testing.assert_allclose(sweep.consensus(2).components_, sweep.components_[2][0])


@pytest.mark.parametrize("chunks", [None, (16, 20)], ids=["one tile", "tiles"])
def test_a_resumed_sweep_ends_as_the_sweep_never_stopped(chunks):
    X = planted(60, 45, 3, seed=6)
    params = dict(
        n_replicates=2, holdout=0.2, random_state=None, max_iter=60, tol=1e-3, chunks=chunks
    )
    states = []
    whole = RankSweep([2, 3], callbacks=[lambda info: states.append(info.state())], **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole.fit(X)
        # Halfway (random_state=None: how long the sweep runs varies with its seeds;
        # before its last iteration some replicate is always still running).
        middle = len(states) // 2
        state = states[middle - 1]
        assert state.iteration == middle >= 5 and 0 < len(state.active) <= 4
        resumed = RankSweep([2, 3], **params).fit(X, resume=state)
    # random_state=None: the seeds and held-out rows come from the state.
    np.testing.assert_array_equal(resumed.seeds_, whole.seeds_)
    for column in ("n_iter", "converged"):
        assert list(resumed.results_[column]) == list(whole.results_[column])
    for column in ("train_error", "test_error"):
        np.testing.assert_allclose(resumed.results_[column], whole.results_[column], rtol=1e-9)
    np.testing.assert_allclose(resumed.components_[3], whole.components_[3], rtol=1e-9)


def test_a_state_of_another_sweep_is_refused():
    X = planted(40, 30, 2, seed=7)
    states = []
    RankSweep([2], n_replicates=2, holdout=0, max_iter=5, tol=0,
              callbacks=[lambda info: states.append(info.state())]).fit(X)  # fmt: skip
    with pytest.raises(InvalidParameterError, match=r"ranks \[2\] with 2 replicates each"):
        RankSweep([2, 3], n_replicates=2, holdout=0).fit(X, resume=states[-1])
    with pytest.raises(InvalidParameterError, match="must be a SweepState"):
        RankSweep([2], n_replicates=2).fit(X, resume="state")


@pytest.mark.parametrize(
    "params",
    [
        dict(beta_loss="kullback-leibler"),
        dict(beta_loss=0.5, max_iter=20),
        dict(missing="ignore"),  # ALS, the default for ratings
        dict(missing="ignore", solver="mu"),
    ],
    ids=["kl", "beta-0.5", "masked-als", "masked-mu"],
)
def test_replicates_of_other_losses_and_masks_are_their_single_fits(params):
    """Solvers that cannot stack in their kernels run side by side, each replicate
    still exactly its own fit."""
    X = make_matrix(40, 30, density=0.4, seed=8)
    params = {**dict(chunks=(15, 30), max_iter=30, tol=1e-3, check_every=5), **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sweep = RankSweep([2, 3], n_replicates=2, holdout=0, random_state=1, **params).fit(X)
        for row in sweep.results_.itertuples():
            alone = dasknmf.NMF(row.k, init="random", random_state=row.seed, **params).fit(X)
            assert row.n_iter == alone.n_iter_
            np.testing.assert_allclose(row.train_error, alone.reconstruction_err_, rtol=1e-9)
            np.testing.assert_allclose(
                sweep.components_[row.k][row.replicate], alone.components_, rtol=1e-8
            )


def test_ratings_hold_out_entries_and_score_their_rmse():
    from dasknmf import validation
    from dasknmf.datasets import ratings

    X, _, _ = ratings(300, 120, 6_000, rank=3, seed=2)
    sweep = RankSweep([2, 3, 5], n_replicates=2, missing="ignore", random_state=0).fit(X)
    train, test = validation.split(X, 0.2, sweep._base_seed)
    test = test.tocoo()
    for row in sweep.results_.itertuples():
        alone = dasknmf.NMF(row.k, init="random", random_state=row.seed, missing="ignore")
        alone.fit(train)
        predicted = (alone.W_[test.row] * alone.components_[:, test.col].T).sum(axis=1)
        rmse = np.sqrt(np.mean((predicted - test.data) ** 2))
        np.testing.assert_allclose(row.test_error, rmse, rtol=1e-5)
    assert sweep.best_k_ == 3
