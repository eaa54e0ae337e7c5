"""The fit of a single-model job: :class:`dasknmf.NMF` built from the job's ``model``
section, fitted (from a checkpoint's state when resuming), a missing-entry model scored,
and the lines that say how it went; the runner (:mod:`dasknmf.jobs.runner`) wires it
to the scheduler, the input, the checkpoints and the outputs, as it does
:func:`dasknmf.jobs.sweep.run_sweep` for a rank sweep.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

from sklearn.exceptions import ConvergenceWarning

from dasknmf import NMF
from dasknmf.callbacks import StopRecorder
from dasknmf.fit_state import FitState
from dasknmf.jobs import report
from dasknmf.jobs.config import JobConfig
from dasknmf.jobs.inputs import JobInput
from dasknmf.jobs.outputs import FittedJob, write_outputs

__all__ = ["fit_single"]


def fit_single(
    config: JobConfig,
    source: JobInput,
    callbacks: list[Callable[[Any], object]],
    state: FitState | None,
    *,
    say: Callable[[str], object],
    timings: dict[str, float],
    factor_store: str,
) -> FittedJob:
    """Fit :class:`dasknmf.NMF` as the job says (from ``state`` when resuming); score a
    missing-entry model; say how it went. A stored ``W`` goes to ``factor_store``
    unless ``model.factor_store`` is set."""
    record = StopRecorder()
    params = config.model.nmf_params()
    params["factor_store"] = params["factor_store"] or factor_store
    model = NMF(**params, chunks=source.chunks, callbacks=[*callbacks, record])
    t0 = time.perf_counter()
    W, converged = _fit(model, source.X, state)
    timings["fit"] = time.perf_counter() - t0
    initial = record.error_at_init
    if initial is None and state is not None:  # resumed with no iteration left to run
        initial = state.error_at_init
    stop = record.reason(model)
    lines = [_describe_fit(model, initial, timings["fit"])]
    say(lines[-1])
    extra: dict[str, Any] = {}
    if config.model.missing == "ignore":
        t0 = time.perf_counter()
        extra["evaluation"] = _evaluate(model, source)
        timings["evaluate"] = time.perf_counter() - t0
        lines.append(_describe_evaluation(extra["evaluation"]))
        say(lines[-1])
    # Last, so that the run's last line before the outputs says why it stopped.
    lines.append(stop.describe(report.TOL_OFF))
    say(lines[-1])
    top = None
    if config.report.top_features and source.column_ids is not None:
        top = report.top_features(model.components_, source.column_ids, config.report.top_features)
    out = config.output

    def write(summary: dict[str, Any], started: float) -> list[str]:
        return write_outputs(
            out.directory,
            overwrite=out.overwrite,
            W=W if out.save_w else None,
            H=model.components_,
            summary=summary,
            curve=model.error_curve_,
            plot=config.report.plot,
            top=top,
            started=started,
        )

    result = {
        "n_components": int(model.n_components_),
        "iterations": int(model.n_iter_),
        "converged": converged,
        "initial_error": initial,
        "final_error": float(model.reconstruction_err_),
        "relative_error": model.relative_error_,
        "stop": stop.to_dict(report.TOL_OFF),
        "error_curve": [[int(i), float(e)] for i, e in model.error_curve_],
        "persisted": bool(model.persisted_),
    }
    return FittedJob(model, result, extra, write, tuple(lines))


def _fit(model: NMF, X: Any, resume: FitState | None = None) -> tuple[Any, bool]:
    """``W`` and whether the ``tol`` rule stopped the fit.

    NMF warns (``ConvergenceWarning``) exactly when ``tol > 0`` and ``max_iter``
    iterations ran without reaching it; here that warning becomes the ``converged``
    flag of the summary. Other warnings are passed on.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        W = model.fit_transform(X, resume=resume)
    warned = False
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            warned = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    converged = model.tol > 0 and model.n_iter_ > 0 and not warned
    return W, bool(getattr(model, "converged_", converged))


def _evaluate(model: NMF, source: JobInput) -> dict[str, Any]:
    """RMSE of a missing-entry model on its training entries, on held-out entries when
    the job has them (``input.holdout``), and on its validation entries with the
    iteration whose factors were kept (``model.validation``)."""
    result: dict[str, Any] = {
        "train_entries": int(model.n_observed_),
        "train_rmse": float(model.rmse(source.X)),
        "holdout_entries": None,
        "holdout_rmse": None,
    }
    if source.holdout is not None:
        result["holdout_entries"] = int(source.description["holdout_entries"])
        if result["holdout_entries"]:
            result["holdout_rmse"] = float(model.rmse(source.holdout))
    if getattr(model, "validation_rmse_", None) is not None:  # model.validation
        result["validation_entries"] = int(model.n_validation_)
        result["validation_rmse"] = float(model.validation_rmse_)
        result["best_iteration"] = int(model.best_iteration_)
    return result


def _describe_fit(model: NMF, initial: float | None, seconds: float) -> str:
    """The fit's line: iterations, final error, relative error and initial error."""
    scale = []
    if model.relative_error_ is not None:
        scale.append(f"relative error {model.relative_error_:.4f}")
    if initial is not None:
        scale.append(f"initial error {initial:.6e}")
    within = f" ({', '.join(scale)})" if scale else ""
    return (
        f"fit: {model.n_iter_} iterations, error {model.reconstruction_err_:.6e}{within} "
        f"in {seconds:.1f} s"
    )


def _describe_evaluation(e: dict[str, Any]) -> str:
    text = f"RMSE: train {e['train_rmse']:.4f} ({e['train_entries']:,} entries)"
    if e["holdout_rmse"] is not None:
        text += f", held out {e['holdout_rmse']:.4f} ({e['holdout_entries']:,} entries)"
    elif e["holdout_entries"] == 0:
        text += ", held out: no entries"
    if "validation_rmse" in e:
        text += (
            f", validation {e['validation_rmse']:.4f} ({e['validation_entries']:,} entries, "
            f"best at iteration {e['best_iteration']})"
        )
    return text
