"""Observers of a fit: the phases before the first iteration are reported; the progress
lines and the relative error; why a fit stopped, in words."""

from __future__ import annotations

import io
import re

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf import NMF, callbacks
from dasknmf.callbacks import PhaseInfo, PrintProgress, StopRecorder
from dasknmf.fit_state import IterationInfo
from dasknmf.stopping import ToleranceRule, describe_rule
from tests.helpers import make_factors, make_matrix


class Recorder:
    def __init__(self):
        self.phases: list[PhaseInfo] = []

    def __call__(self, info):
        pass

    def on_phase(self, info: PhaseInfo) -> None:
        self.phases.append(info)


def test_observers_hear_the_statistics_and_every_read_of_the_initialisation(monkeypatch):
    monkeypatch.setattr(callbacks, "_TASK_EVENT_S", 0.0)
    X = da.from_array(make_matrix(90, 40, density=0.3), chunks=(30, 20), asarray=False)
    recorder = Recorder()
    NMF(3, init="nndsvda", random_state=0, max_iter=2, callbacks=[recorder]).fit(X)
    names = [info.phase for info in recorder.phases]
    assert names[0] == "statistics" and names[-1] == "initialization (nndsvda)"
    ends = [info.phase for info in recorder.phases if info.finished]
    assert ends == ["statistics", "initialization (nndsvda)"]
    passes = [(i.passes, i.total_passes) for i in recorder.phases if i.total_passes]
    # k = 3 < 0.1 · 40: scikit-learn's 7 power iterations, one read of V each, plus one.
    assert passes == sorted(passes) and sorted(set(passes)) == [(p, 8) for p in range(1, 9)]
    # Tasks of the local scheduler are counted as they finish.
    tasks = [(i.tasks, i.total_tasks) for i in recorder.phases if i.total_tasks]
    assert tasks and all(0 < done <= total for done, total in tasks)


def test_print_progress_writes_phases_that_last(monkeypatch):
    stream = io.StringIO()
    quick = PrintProgress(stream, quiet_s=60.0)
    chatty = PrintProgress(stream, quiet_s=0.0, phase_every_s=0.0)
    X = make_matrix(60, 30, density=0.3)  # k = 3 ≥ 0.1 · 30: 4 power iterations
    NMF(3, random_state=0, max_iter=1, callbacks=[quick]).fit(X)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("iter     1")  # quick phases: silent
    stream.seek(0), stream.truncate()
    NMF(3, random_state=0, max_iter=1, callbacks=[chatty]).fit(X)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("statistics") and lines[0].endswith("s")
    assert any(line.startswith("statistics") and "  done  " in line for line in lines)
    assert any(
        line.startswith("initialization (nndsvda)") and "reads of V 5/5" in line for line in lines
    )
    assert any(
        line.startswith("initialization (nndsvda)") and "  done  " in line for line in lines
    )
    assert lines[-1].startswith("iter     1")


def test_a_slow_phase_is_written_at_a_limited_rate():
    stream = io.StringIO()
    progress = PrintProgress(stream, quiet_s=2.0, phase_every_s=10.0)
    for elapsed in (0.5, 1.0, 2.5, 3.0, 12.0, 12.5, 25.0):
        progress.on_phase(PhaseInfo("statistics", elapsed, tasks=1, total_tasks=9))
    progress.on_phase(PhaseInfo("statistics", 26.0, finished=True))
    lines = stream.getvalue().splitlines()
    assert [line.split()[-1] for line in lines] == ["2.5s", "12.5s", "25.0s", "26.0s"]
    assert "tasks 1/9" in lines[0] and "done" in lines[-1]


# -- one relative error: ‖X − WH‖_F / ‖X‖_F ---------------------------------------------


def dense_relative_error(X, W, H, observed=None) -> float:
    """‖X − WH‖_F / ‖X‖_F by dense NumPy in float64, over ``observed`` entries only."""
    X = X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    residual = X - np.asarray(W, dtype=np.float64) @ np.asarray(H, dtype=np.float64)
    if observed is not None:
        X, residual = X[observed], residual[observed]
    return float(np.linalg.norm(residual) / np.linalg.norm(X))


@pytest.mark.parametrize(
    "kind, solver",
    [("sparse", "mu"), ("dense", "hals"), ("tiled", "mu"), ("float32", "mu")],
)
def test_relative_error_is_the_error_over_the_norm_of_X(kind, solver):
    X = make_matrix(60, 30, density=0.4, dtype=np.float32 if kind == "float32" else np.float64)
    if kind == "dense":
        X = X.toarray()
    fitted = da.from_array(X, chunks=(20, 15), asarray=False) if kind == "tiled" else X
    model = NMF(3, init="random", random_state=0, max_iter=20, solver=solver, tol=0)
    W = np.asarray(model.fit_transform(fitted))
    expected = dense_relative_error(X, W, model.components_)
    assert model.relative_error_ == pytest.approx(expected, rel=1e-5)


def test_relative_error_of_a_ratings_model_is_over_the_observed_entries():
    X = make_matrix(60, 30, density=0.4).toarray()
    X[X == 0] = np.nan
    model = NMF(3, missing="ignore", random_state=0, max_iter=10, tol=0)
    W = model.fit_transform(X)
    expected = dense_relative_error(np.nan_to_num(X), W, model.components_, ~np.isnan(X))
    assert model.relative_error_ == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "params",
    [{"beta_loss": "kullback-leibler"}, {"missing": "ignore", "validation": 0.2}],
    ids=["kl", "validation"],
)
def test_no_relative_error_where_the_norm_of_X_is_not_its_scale(params, capsys):
    X = make_matrix(60, 30, density=0.4)
    model = NMF(3, init="random", random_state=0, max_iter=4, tol=0, verbose=1, **params)
    model.fit(X)
    assert model.relative_error_ is None
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("iter")]
    assert lines and all("relative" not in line and "  of initial " in line for line in lines)


def test_progress_lines_show_the_relative_error_and_the_time(capsys):
    X = make_matrix(60, 30, density=0.4)
    model = NMF(3, init="random", random_state=0, max_iter=6, tol=0, verbose=1)
    model.fit(X)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("iter")]
    norm = np.linalg.norm(X.data)
    line = re.compile(r"iter +(\d+)  error (\S+)  relative (\S+)  (\S+) s  (\S+) s/iter")
    assert len(lines) == 6
    for text, (iteration, error) in zip(lines, model.error_curve_, strict=True):
        m = line.fullmatch(text)
        assert int(m.group(1)) == iteration and m.group(2) == f"{error:.6e}"
        assert m.group(3) == f"{error / norm:.4f}"
    assert m.group(3) == f"{model.relative_error_:.4f}"


def test_print_progress_shows_seconds_so_far_and_per_iteration():
    stream = io.StringIO()
    progress = PrintProgress(stream, every=2, norm=20.0)
    for iteration, elapsed in [(1, 0.5), (2, 1.0), (3, 1.5), (4, 3.0)]:
        progress(IterationInfo(iteration, 5.0, 10.0, elapsed, None, None))
    assert stream.getvalue().splitlines() == [
        "iter     2  error 5.000000e+00  relative 0.2500  1.0 s  0.500 s/iter",
        "iter     4  error 5.000000e+00  relative 0.2500  3.0 s  1.000 s/iter",
    ]


# -- why a fit stopped ------------------------------------------------------------------


def test_the_stop_line_says_which_rule_stopped_the_fit_and_by_how_much():
    X = make_matrix(60, 30, density=0.4)
    W0, H0 = make_factors(60, 30, 3)
    initial = np.linalg.norm(X.toarray() - W0 @ H0)  # the rule's scale, by NumPy
    record = StopRecorder()
    model = NMF(3, init="custom", max_iter=500, tol=1e-3, check_every=5, callbacks=[record])
    model.fit(X, W=W0, H=H0)
    n = model.n_iter_
    assert n < 500 and n % 5 == 0 and model.converged_
    errors = dict(model.error_curve_)
    decrease = (errors[n - 5] - errors[n]) / initial
    assert decrease < 1e-3 <= (errors[n - 10] - errors[n - 5]) / initial
    assert record.error_at_init == pytest.approx(initial, rel=1e-9)
    reason = record.reason(model)
    assert (reason.rule, reason.iteration, reason.max_iter) == ("tol", n, 500)
    assert reason.decrease == pytest.approx(decrease, rel=1e-9)
    assert reason.describe() == (
        f"stopped at iteration {n} of 500: relative decrease {decrease:.2e} < tol 0.001 "
        "(tol=0 to run every iteration)"
    )


def test_the_stop_line_of_a_fit_that_ran_every_iteration():
    record = StopRecorder()
    model = NMF(3, init="random", random_state=0, max_iter=7, tol=0, callbacks=[record])
    model.fit(make_matrix(60, 30, density=0.4))
    assert record.reason(model).describe("set tol: 0") == "ran all 7 iterations (max_iter)"
    assert record.reason(model).to_dict()["rule"] == "max_iter"


def test_the_stop_line_of_a_fit_stopped_by_its_validation_entries():
    X = make_matrix(80, 40, density=0.5).toarray()
    X[X == 0] = np.nan
    record = StopRecorder()
    params = dict(missing="ignore", validation=0.3, tol=0.05, random_state=0)
    model = NMF(3, **params, max_iter=300, check_every=1000, callbacks=[record])
    model.fit(X)
    assert model.n_iter_ < 300
    best = model.best_iteration_
    assert record.reason(model).describe() == (
        f"stopped at iteration {model.n_iter_} of 300: the validation RMSE has not improved "
        f"by a relative 0.05 for 3 iterations in a row; the factors of iteration {best} are "
        "kept (best validation RMSE)"
    )


def test_the_stopping_rule_in_words():
    assert describe_rule(30, 1e-4, 10) == (
        "stops at a check (every 10 iterations) where the error fell by less than 0.0001 "
        "times the initial error since the previous check (the first: since the initial "
        "factors), or after 30 iterations"
    )
    assert describe_rule(30, 0, 10) == "runs all 30 iterations (tol 0: no early stop)"
    assert describe_rule(5, 1e-4, 10) == (
        "runs all 5 iterations (the first check of the tol rule would come at iteration 10)"
    )
    assert describe_rule(30, 0, 10, patience=3) == (
        "runs all 30 iterations (tol 0: no early stop); also stops once the validation RMSE "
        "has not improved at all for 3 iterations in a row, keeping the factors of the best "
        "iteration"
    )


def test_the_words_are_what_the_rule_does():
    """describe_rule's "fell by less than tol times the initial error since the previous
    check" is ToleranceRule's comparison."""
    rule = ToleranceRule(tol=0.01, check_every=10, error_at_init=100.0)
    assert not rule.converged(90.0)  # fell by 10 ≥ 0.01 x 100 since the initial factors
    assert not rule.converged(88.9)  # by 1.1 since the previous check (90)
    assert rule.converged(88.0)  # by 0.9 < 1
