"""What a fitted :class:`~dasknmf.estimator.sweep.RankSweep` holds and gives: its
replicates' results assembled into tables, components and clusterings, a rank's
consensus, and the k-selection figure."""

from __future__ import annotations

import os
from typing import Any

import dask
import dask.array as da
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from dasknmf.errors import InvalidParameterError, warn_user
from dasknmf.estimator.nmf import NMF
from dasknmf.sweep import Stack
from dasknmf.sweep.consensus import cluster_components, consensus_components
from dasknmf.sweep.loop import ReplicateResult
from dasknmf.sweep.plot import k_selection_plot
from dasknmf.sweep.summary import best_k, results_table, summary_table

__all__ = ["SweepResultsMixin"]


class SweepResultsMixin:
    """``results_``, ``components_``, ``summary_`` and ``best_k_`` of a fitted
    :class:`~dasknmf.estimator.sweep.RankSweep` (made at the end of its ``fit``), and
    :meth:`consensus`, :meth:`consensus_of` and :meth:`plot` (the parameters, ``ranks``,
    ``seeds_``, ``_nmf`` and ``_X`` come from the estimator, which documents them)."""

    def _summarise(self, results: list[ReplicateResult], stack: Stack, V, cv) -> None:
        n = V.shape[1]
        R = len(self.seeds_)
        if cv is not None:
            W = da.concatenate([_lazy(r.W) for r in results], axis=1).rechunk({1: -1})
            H = da.concatenate([_lazy(r.H) for r in results], axis=0).rechunk({0: -1})
            tested = _in_memory_like(V, W, H)
            test_errors, H_full = cv.test_errors(V, *tested, stack)
        else:
            test_errors = np.full(len(results), np.nan)
            H_full = None
        self.results_ = results_table(results, stack, self.seeds_, test_errors)
        self.components_, self._clusterings = {}, {}
        for k in self.ranks:
            # One copy of the replicates' H at a time: a sweep's Σk × n is large.
            if H_full is None:
                of_k = [r.H for r, rank in zip(results, stack.ranks, strict=True) if rank == k]
                parts = [np.asarray(H) for H in dask.compute(*of_k)]
            else:
                pairs = zip(stack.bounds, stack.ranks, strict=True)
                parts = [H_full[s:e] for (s, e), rank in pairs if rank == k]
            self.components_[k] = np.stack(parts)
            del parts
            self._clusterings[k] = cluster_components(
                self.components_[k].reshape(R * k, n), k, R, self.local_neighborhood
            )
        stability = {k: c.stability for k, c in self._clusterings.items()}
        self.summary_ = summary_table(self.results_, stability)
        self.best_k_ = best_k(self.summary_, held_out=self.holdout > 0)
        not_converged = int((~self.results_["converged"]).sum())
        if self.tol > 0 and self.max_iter > 0 and not_converged:
            warn_user(
                f"{not_converged} of {len(results)} replicates reached max_iter="
                f"{self.max_iter} without converging. Increase it to improve convergence.",
                ConvergenceWarning,
            )

    # -- after fitting -----------------------------------------------------------------

    def consensus(self, k: int) -> NMF:
        """A fitted :class:`~dasknmf.NMF` whose ``components_`` are the consensus
        ``H`` of rank ``k`` (:mod:`dasknmf.sweep.consensus`), with ``W`` refitted to
        the whole input with that ``H`` fixed.

        Parameters
        ----------
        k : int
            One of the ranks swept.

        Returns
        -------
        NMF
            Fitted: ``components_``, ``W_``, ``reconstruction_err_`` (of the consensus
            on the whole input), ``n_iter_ = 0``; its parameters are the sweep's.
        """
        check_is_fitted(self, "summary_")
        if k not in self.components_:
            raise InvalidParameterError(
                f"consensus(k={k!r}): the sweep fitted k in {self.ranks}; choose one of them."
            )
        return self.consensus_of(self._X, self.components_[k], self._clusterings[k])

    def consensus_of(self, X, components: np.ndarray, clustering: Any = None) -> NMF:
        """The consensus of replicates' components given as an array, with ``W``
        refitted to ``X``: what :meth:`consensus` does for the components of a sweep
        that is no longer in memory (a batch job's ``components_k*.npy``).

        Parameters
        ----------
        X : array-like, sparse matrix, dask array or str
            The input the replicates were fitted to.
        components : ndarray of shape (n_replicates, k, n_features)
            The replicates' ``H``, as :attr:`components_` holds them.
        clustering : optional
            Their clustering, when already made (else made with this sweep's
            ``local_neighborhood``).

        Returns
        -------
        NMF
            As :meth:`consensus`.
        """
        R, k, _ = components.shape
        components = components.reshape(R * k, -1)
        if clustering is None:
            clustering = cluster_components(components, k, R, self.local_neighborhood)
        try:
            H = consensus_components(clustering, components, k, self.density_threshold)
        except ValueError as exc:
            raise InvalidParameterError(f"consensus(k={k}): {exc}.") from None
        H = H.astype(components.dtype)
        # Stored factors of a consensus go beside the sweep's, not over them.
        apart = {}
        if self.factor_store is not None:
            apart["factor_store"] = os.path.join(self.factor_store, f"consensus-{k}")
        fixed = self._nmf(k, **apart)
        fixed.components_, fixed.n_components_, fixed.n_features_in_ = H, k, H.shape[1]
        W = fixed.transform(X)
        model = self._nmf(k, init="custom", max_iter=0, **apart)
        model.fit(X, W=W, H=H)
        model.set_params(init=self.init, max_iter=self.max_iter)
        return model

    def plot(self, path) -> Any:
        """Draw the k-selection figure to ``path`` (median error and held-out error
        against ``k``, stability on a second axis; the format from the suffix).

        Returns
        -------
        pathlib.Path
        """
        check_is_fitted(self, "summary_")
        return k_selection_plot(self.summary_, path, best_k=self.best_k_)


def _lazy(X) -> da.Array:
    return X if isinstance(X, da.Array) else da.from_array(X, chunks=X.shape)


def _in_memory_like(V, W: da.Array, H: da.Array) -> tuple[Any, Any]:
    """``W`` and ``H`` as NumPy arrays when ``V`` is held in memory, else as given."""
    if isinstance(V, da.Array):
        return W, H
    return tuple(dask.compute(W, H))
