"""Early stopping on held-out entries, as :class:`~dasknmf.estimator.nmf.NMF` runs it
(``validation``): the entries held out, the callback that stops the loop, the best
iteration's factors kept, and the closing line of a verbose ratings fit."""

from __future__ import annotations

import math

import dask.array as da

from dasknmf import validation
from dasknmf.errors import InvalidInputError
from dasknmf.fit_state import FitResult

__all__ = ["ValidationMixin"]


class ValidationMixin:
    """The ``validation`` steps of ``NMF.fit`` (the estimator's parameters and
    attributes are documented there)."""

    def _hold_validation(self, V: da.Array, seed: int) -> tuple[da.Array, da.Array | None]:
        """``(train, validation)`` entries of ``V`` (``validation`` persisted), or
        ``(V, None)`` without ``validation``."""
        if self.validation is None:
            return V, None
        V, V_valid = validation.split(V, self.validation, seed)
        return V, validation.persist(V_valid)

    def _early_stopping(self, V_valid) -> validation.EarlyStopping | None:
        if V_valid is None:
            return None
        count = validation.observed_count(V_valid)
        if count == 0:
            raise InvalidInputError(
                f"validation={self.validation!r} held out none of X's observed entries: "
                "X has too few of them; give a larger fraction or set validation=None."
            )
        return validation.EarlyStopping(V_valid, count, self.tol, bounds=self._clip_bounds())

    def _keep_best(self, stopper: validation.EarlyStopping, result: FitResult | None) -> FitResult:
        """The fit's outcome with the factors of the best validation RMSE; sets the
        validation attributes."""
        self.n_validation_ = stopper.count
        self.validation_curve_ = list(stopper.curve)
        best, last = stopper.best, stopper.last
        if best is None:  # no iteration ran
            assert result is not None
            self.validation_rmse_ = stopper.rmse(result.W, result.H)
            self.best_iteration_ = result.n_iter
            return result
        self.validation_rmse_ = stopper.best_rmse
        self.best_iteration_ = best.iteration
        return FitResult(
            best.W,
            best.H,
            last.iteration,
            best.error,
            last.error_at_init,
            list(last.errors),
            converged=result is None or result.converged,
        )

    def _print_rmse(self, stopper: validation.EarlyStopping | None) -> None:
        """The closing line of a verbose ratings fit: the RMSEs it was judged by."""
        train = self.reconstruction_err_ / math.sqrt(max(self.n_observed_, 1))
        text = f"RMSE: train {train:.4f} ({self.n_observed_:,} entries)"
        if stopper is not None:
            text += (
                f", validation {self.validation_rmse_:.4f} ({stopper.count:,} entries, "
                f"best at iteration {self.best_iteration_} of {self.n_iter_})"
            )
        print(text, flush=True)
