"""``NMF(n_init=R)``: R random starts fitted together, the best one kept, and it is
exactly the single fit of its seed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import dasknmf
from dasknmf import inputs
from dasknmf.errors import InvalidParameterError
from tests.helpers import make_matrix


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.mark.parametrize(
    ("params", "chunks"),
    [
        ({"solver": "mu"}, None),
        ({"solver": "hals"}, (50, 40)),
        ({"solver": "mu", "beta_loss": "kullback-leibler"}, (50, 80)),
        ({"missing": "ignore", "alpha_weighted": 0.05}, (50, 40)),
    ],
    ids=["mu", "hals-tiled", "kl", "ratings-als"],
)
def test_the_best_start_is_the_single_fit_of_its_seed(params, chunks):
    X = make_matrix(120, 80, density=0.2, seed=1)
    common = dict(n_components=4, random_state=0, max_iter=60, chunks=chunks, **params)
    model = dasknmf.NMF(n_init=4, init="random", **common).fit(X)
    assert model.init_errors_.shape == model.init_seeds_.shape == (4,)
    assert len(set(model.init_seeds_)) == 4
    best = int(np.argmin(model.init_errors_))
    assert model.reconstruction_err_ == pytest.approx(model.init_errors_[best], rel=1e-12)
    single = dasknmf.NMF(init="random", **{**common, "random_state": int(model.init_seeds_[best])})
    W = single.fit_transform(X)
    np.testing.assert_allclose(model.components_, single.components_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.transform(X), single.transform(X), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(model.W_, W, rtol=1e-9, atol=1e-12)
    assert model.n_iter_ == single.n_iter_ and model.converged_ == single.converged_
    np.testing.assert_allclose(model.error_curve_, single.error_curve_, rtol=1e-12)
    # every start is its own seed's fit: the worst one too
    worst = int(np.argmax(model.init_errors_))
    other = dasknmf.NMF(init="random", **{**common, "random_state": int(model.init_seeds_[worst])})
    assert other.fit(X).reconstruction_err_ == pytest.approx(model.init_errors_[worst], rel=1e-9)


def test_more_starts_never_end_worse_and_none_is_the_default():
    X = make_matrix(100, 70, density=0.3, seed=2)
    one = dasknmf.NMF(5, init="random", random_state=3, max_iter=40).fit(X)
    many = dasknmf.NMF(5, random_state=3, max_iter=40, n_init=6).fit(X)  # init=None: random
    assert not hasattr(one, "init_errors_")
    assert many.reconstruction_err_ == min(many.init_errors_)
    assert many.reconstruction_err_ <= max(many.init_errors_)
    many.set_params(n_init=1).fit(X)  # a refit with one start drops the starts' record
    assert not hasattr(many, "init_errors_")


@pytest.mark.parametrize(
    ("params", "fit_args", "message"),
    [
        ({"init": "nndsvda"}, {}, "init='nndsvda' starts every fit alike"),
        ({"init": "custom"}, {"W": "W", "H": "H"}, "init='custom' starts every fit alike"),
        ({"init": "random"}, {"W": "W", "H": "H"}, "W, H and resume give one start"),
        ({"missing": "ignore", "validation": 0.1}, {}, "validation early stopping runs one fit"),
        ({"callbacks": [print]}, {}, "callbacks see one fit's iterations"),
    ],
)
def test_what_a_multi_start_fit_cannot_honour_is_refused(params, fit_args, message):
    X = make_matrix(40, 30, density=0.3)
    rng = np.random.default_rng(0)
    factors = {"W": rng.random((40, 3)), "H": rng.random((3, 30))}
    args = {name: factors[value] for name, value in fit_args.items()}
    with pytest.raises(InvalidParameterError, match=rf"^The 'n_init' parameter 3: .*{message}"):
        dasknmf.NMF(3, n_init=3, **params).fit(X, **args)


@pytest.mark.parametrize("value", [0, -1, 2.5, "3"])
def test_n_init_must_be_a_positive_int(value):
    with pytest.raises(InvalidParameterError, match=r"The 'n_init' parameter must be an int"):
        dasknmf.NMF(2, n_init=value).fit(np.ones((4, 3)))


def test_verbose_prints_the_starts_progress(capsys):
    X = make_matrix(60, 40, density=0.3)
    dasknmf.NMF(3, n_init=3, max_iter=20, tol=0, verbose=1).fit(X)
    out = capsys.readouterr().out
    lines = [line.rsplit("  ", 1)[0] for line in out.splitlines()]
    assert lines == [
        "iter    10  running    3 of 3 starts",
        "iter    20  running    0 of 3 starts",
    ]


def test_the_statistics_pass_is_made_once_for_all_the_starts(monkeypatch):
    """One read of X for its statistics, shared by the starts and the fit they end in."""
    calls = []
    real = inputs.compute_stats

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(inputs, "compute_stats", counted)
    X = make_matrix(60, 40, density=0.3)
    dasknmf.NMF(3, n_init=3, max_iter=10).fit(X)
    assert len(calls) == 1
