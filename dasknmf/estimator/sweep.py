""":class:`RankSweep`: choose ``k`` from many replicates fitted together."""

from __future__ import annotations

from functools import partial
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from dasknmf.errors import InvalidParameterError
from dasknmf.estimator.nmf import NMF
from dasknmf.estimator.parameters import PARAMETER_RULES, solver_for
from dasknmf.estimator.preparation import as_tiled, checked_stats
from dasknmf.estimator.replicates import fit_replicates, replicate_seeds
from dasknmf.estimator.sweep_results import SweepResultsMixin
from dasknmf.params import check_int, check_real
from dasknmf.resources import in_task_threads
from dasknmf.solvers import beta_of
from dasknmf.sweep import Stack
from dasknmf.sweep.holdout import BiCrossValidation, HeldOutEntries
from dasknmf.sweep.loop import (
    SweepProgress,
    SweepState,
)

__all__ = ["RankSweep"]

#: Parameters a sweep passes on to each replicate's :class:`~dasknmf.NMF` as they are.
SHARED = (
    "init",
    "solver",
    "beta_loss",
    "max_iter",
    "tol",
    "check_every",
    "alpha_W",
    "alpha_H",
    "l1_ratio",
    "missing",
    "chunks",
    "persist",
    "factors",
    "factor_store",
)


def _n_components(name: str, value: Any) -> None:
    ranks = [value] if isinstance(value, Integral) else value
    ok = isinstance(ranks, (list, tuple, range, np.ndarray)) and len(ranks) > 0
    if not ok or not all(isinstance(k, Integral) and k >= 1 for k in ranks):
        raise InvalidParameterError(
            f"The {name!r} parameter must be an int >= 1 or a non-empty list of them; "
            f"got {value!r}."
        )
    if len(set(int(k) for k in ranks)) != len(ranks):
        raise InvalidParameterError(f"The {name!r} parameter lists a rank twice: {value!r}.")


def _or_none(rule):
    def check(name: str, value: Any) -> None:
        if value is not None:
            rule(name, value)

    return check


def _verbose(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        check_int(name, value, low=0)


#: The rule of each parameter; the ones shared with NMF are NMF's rules.
SWEEP_RULES = {
    "n_components": _n_components,
    "n_replicates": partial(check_int, low=1),
    "holdout": partial(check_real, low=0.0, high=0.5),
    "random_state": PARAMETER_RULES["random_state"],
    "density_threshold": partial(check_real, low=0.0),
    "local_neighborhood": partial(check_real, low=0.0, high=1.0),
    "callbacks": lambda name, value: None,  # each is called as it is, as NMF's
    "verbose": _verbose,
    **{name: PARAMETER_RULES[name] for name in SHARED},
    "solver": _or_none(PARAMETER_RULES["solver"]),
}


class RankSweep(SweepResultsMixin, BaseEstimator):
    """Fit ``n_replicates`` random starts of every rank in ``n_components`` at once, and
    suggest a rank by cross-validated error and stability.

    All ``Σ_k n_replicates`` factorisations advance together: their factors are
    stacked side by side (``W``: ``m × Σk``), so each iteration reads every tile of
    ``X`` once for all of them, in memory, out of core or on a cluster; the per-replicate
    work (Gram matrices, updates, errors) stays block-diagonal, ``Σ k²`` and never
    ``(Σk)²``. Each replicate stops by its own ``tol`` rule and then stops costing
    anything. With ``holdout=0`` replicate ``r`` of rank ``k`` *is* the fit
    ``NMF(k, random_state=seeds[r], same parameters).fit(X)``.

    Parameters
    ----------
    n_components : list of int
        The ranks ``k`` to try.
    n_replicates : int, default=10
        Random starts per rank.
    holdout : float, default=0.2
        Fraction of the rows and of the columns held out for bi-cross-validation
        (:mod:`dasknmf.sweep.holdout`): the replicates are fitted to the other rows
        and columns, and ``test_error`` is the error on the held-out block
        ``X[I, J]`` predicted from them. With ``missing='ignore'``: the fraction of
        the observed entries held out, and ``test_error`` is the RMSE there. 0: fit
        on all of ``X``, no test error. Smaller fractions give a noisier held-out
        error (docs/rank-selection.md).
    init : {'random', 'nndsvdar'}, default='random'
        How each replicate starts, from its own seed (the ``'nndsvd*'`` starts of
        :class:`~dasknmf.NMF` are deterministic and give identical replicates).
    solver : {'hals', 'mu', 'als', 'auto'} or None, default=None
        As for :class:`~dasknmf.NMF`. ``None``: ``'hals'`` for the Frobenius loss on
        a complete matrix (far fewer iterations than MU), else ``'auto'`` (``'als'``
        with ``missing='ignore'``, ``'mu'`` for other losses).
    beta_loss : {'frobenius', 'kullback-leibler', 'itakura-saito'} or float
        As for :class:`~dasknmf.NMF`. The Frobenius solvers stack the replicates
        in their kernels (one sparse product for all); the others run each
        replicate's own step in the same graph, sharing every read of a tile.
    max_iter, tol, check_every, alpha_W, alpha_H, l1_ratio, chunks, persist, missing
        As for :class:`~dasknmf.NMF`, for every replicate.
    factors : {'auto', 'memory', 'store'}, default='auto'
        Where the replicates' ``W`` are kept: in memory, or in zarr stores
        (``'store'``), as :class:`~dasknmf.NMF`'s ``factors`` says for one fit. The
        stacked ``W`` (``m × Σk``) of the running replicates is one store, read,
        updated and written back by each pass over ``X``; a replicate's ``W`` goes to
        a store of its own when it stops. Memory then holds the stacked ``H``
        (``Σk × n``), tiles and blocks in flight, whatever ``m``. ``'auto'`` stores
        ``W`` when three arrays of ``m × Σk`` would not fit in three quarters of the
        scheduler's memory.
    factor_store : str or os.PathLike or None, default=None
        Directory of the stored factors: ``factor_store/W`` for the stacked ``W``,
        ``factor_store/W-<r>`` for replicate ``r`` (in the order of
        :attr:`results_`), ``factor_store/consensus-<k>`` for :meth:`consensus`'s
        model. ``None``: temporary directories, each deleted once nothing reads it.
    random_state : int, RandomState or None, default=None
        Seed of the replicates' seeds and of the held-out rows and columns.
    density_threshold : float, default=0.5
        cNMF's outlier filter for :meth:`consensus`: components whose mean distance
        to their nearest neighbours (unit-norm, Euclidean; 0 to √2) exceeds it are
        left out of the consensus.
    local_neighborhood : float, default=0.3
        Share of ``n_replicates`` that counts as a component's nearest neighbours.
    callbacks : list of callables or None, default=None
        Each called with a :class:`dasknmf.sweep.loop.SweepProgress` after every
        iteration (iteration, replicates running, elapsed time); ``info.state()`` is
        where the sweep stands, to continue it later with ``fit(X, resume=state)``.
    verbose : int, default=0
        If positive, print progress every ``check_every`` iterations: iteration,
        replicates still running, seconds per iteration.

    Attributes
    ----------
    results_ : pandas.DataFrame
        A row per ``(k, replicate)``: ``k``, ``replicate``, ``seed``, ``n_iter``,
        ``converged``, ``train_error`` (``‖V − WH‖_F`` on the data fitted) and
        ``test_error`` (on the held-out block; NaN when ``holdout=0``).
    summary_ : pandas.DataFrame
        A row per ``k``: medians of ``train_error``, ``test_error`` and ``n_iter``,
        the share of replicates that ``converged``, and ``stability`` (the silhouette
        of cNMF's clustering of the replicates' components: 1 when every replicate
        found the same components).
    best_k_ : int
        The suggested rank (:func:`dasknmf.sweep.summary.best_k`): with
        ``holdout > 0``, the smallest ``k`` whose median test error is within 1 % of
        the lowest (below the true rank the held-out error falls steeply; past it,
        extra components fit noise and it stays flat or rises); with ``holdout=0``,
        the largest ``k`` whose stability is within 0.05 of the highest (ranks up to
        the true one are all stable; past it stability drops).
    components_ : dict of int to ndarray
        ``k`` → the replicates' ``H``, shape ``(n_replicates, k, n_features)`` (with a
        holdout, the held-out columns are solved with ``W`` fixed).
    seeds_ : ndarray
        The seed of each replicate.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np, dasknmf
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((80, 3)) @ rng.random((3, 60))
    >>> sweep = dasknmf.RankSweep([2, 3, 4], n_replicates=3, random_state=0, holdout=0.1)
    >>> sweep = sweep.fit(X)
    >>> sweep.best_k_
    3
    >>> sweep.consensus(3).components_.shape
    (3, 60)
    """

    def __init__(
        self,
        n_components,
        *,
        n_replicates=10,
        holdout=0.2,
        init="random",
        solver=None,
        beta_loss="frobenius",
        max_iter=200,
        tol=1e-4,
        random_state=None,
        check_every=10,
        alpha_W=0.0,
        alpha_H="same",
        l1_ratio=0.0,
        missing=None,
        chunks=None,
        persist="auto",
        factors="auto",
        factor_store=None,
        density_threshold=0.5,
        local_neighborhood=0.3,
        callbacks=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.n_replicates = n_replicates
        self.holdout = holdout
        self.init = init
        self.solver = solver
        self.beta_loss = beta_loss
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.check_every = check_every
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.missing = missing
        self.chunks = chunks
        self.persist = persist
        self.factors = factors
        self.factor_store = factor_store
        self.density_threshold = density_threshold
        self.local_neighborhood = local_neighborhood
        self.callbacks = callbacks
        self.verbose = verbose

    # -- fitting -----------------------------------------------------------------------

    @property
    def ranks(self) -> list[int]:
        """The ranks tried, in increasing order."""
        ks = [self.n_components] if isinstance(self.n_components, Integral) else self.n_components
        return sorted(int(k) for k in ks)

    def _nmf(self, k: int | None = None, **overrides) -> NMF:
        """The single fit each replicate of rank ``k`` stands for (seed aside)."""
        params = {name: getattr(self, name) for name in SHARED}
        if params["solver"] is None:
            complete_frobenius = self.missing is None and beta_of(self.beta_loss) == 2
            params["solver"] = "hals" if complete_frobenius else "auto"
        return NMF(k, **{**params, **overrides})

    def _check_parameters(self) -> None:
        params = self.get_params()
        for name, rule in SWEEP_RULES.items():
            rule(name, params[name])
        if self.init not in ("random", "nndsvdar"):
            raise InvalidParameterError(
                f"The 'init' parameter of RankSweep must be 'random' or 'nndsvdar' "
                f"(replicates differ only by their seed); got {self.init!r}."
            )
        solver_for(self._nmf().get_params())  # the loss, solver and mask go together

    @in_task_threads
    def fit(self, X, y=None, *, resume=None):
        """Fit every replicate of every rank and summarise them.

        Parameters
        ----------
        X : array-like, sparse matrix, dask array or str
            ``m × n`` non-negative data, or the path of a dasknmf store (as for
            :class:`~dasknmf.NMF`). Kept by reference for :meth:`consensus`.
        y : ignored
        resume : dasknmf.sweep.loop.SweepState, optional
            Where an earlier sweep of this ``X`` with the same parameters stood
            (``info.state()`` in a callback): it continues from there, with the same
            seeds and held-out rows and columns, and ends as the sweep that was never
            stopped.

        Returns
        -------
        self
        """
        self._check_parameters()
        template = self._nmf()
        V = as_tiled(template, X, reset=True, k=sum(self.ranks) * self.n_replicates)
        m, n = V.shape
        self.n_features_in_ = n
        stats = checked_stats(template, V)
        if resume is not None:
            self._check_resume(resume)
        random_state = self.random_state if resume is None else resume.seed
        base, self.seeds_ = replicate_seeds(random_state, self.n_replicates)
        self._base_seed = base
        cv = None
        train, train_stats = V, stats
        if self.holdout > 0:
            if template._masked:
                cv = HeldOutEntries(self.holdout, base)
            else:
                cv = BiCrossValidation.draw(m, n, fraction=self.holdout, seed=base)
            train = cv.train(V)
            train_stats = checked_stats(template, train)
        self._check_ranks(train.shape, cv)
        progress = list(self.callbacks or []) + ([self._print_progress] if self.verbose else [])
        starts = [(k, int(seed)) for k in self.ranks for seed in self.seeds_]
        results = fit_replicates(
            template,
            train,
            train_stats,
            starts,
            init=self.init,
            base_seed=base,
            progress=progress,
            resume=resume,
        )
        stack = Stack(self._stacked_ranks())
        self._summarise(results, stack, V, cv)
        self._X = X
        return self

    def _stacked_ranks(self) -> tuple[int, ...]:
        """Every replicate's rank, in the order of :attr:`results_`."""
        return tuple(k for k in self.ranks for _ in range(self.n_replicates))

    def _check_resume(self, state: Any) -> None:
        if not isinstance(state, SweepState):
            raise InvalidParameterError(
                "The 'resume' parameter must be a SweepState (from info.state() in a "
                f"RankSweep callback); got {type(state).__name__}."
            )
        if state.ranks != self._stacked_ranks() or state.seed is None:
            raise InvalidParameterError(
                f"The state to resume from is of a sweep of ranks {sorted(set(state.ranks))} "
                f"with {len(state.ranks) // max(len(set(state.ranks)), 1)} replicates each; "
                f"this one has n_components={self.ranks} and n_replicates="
                f"{self.n_replicates}."
            )
        if state.iteration > self.max_iter:
            raise InvalidParameterError(
                f"The 'max_iter' parameter {self.max_iter} is below the iteration "
                f"{state.iteration} of the state to resume from."
            )

    def _check_ranks(self, shape: tuple[int, int], cv: Any) -> None:
        limit = min(shape)
        if max(self.ranks) > limit:
            where = (
                f"the {shape[0]} × {shape[1]} block left after holding out "
                f"{len(cv.rows)} rows and {len(cv.cols)} columns (holdout={self.holdout})"
                if isinstance(cv, BiCrossValidation)
                else f"X of shape {shape}"
            )
            raise InvalidParameterError(
                f"The 'n_components' parameter asks for k = {max(self.ranks)}, above "
                f"min(n_samples, n_features) = {limit} of {where}."
            )

    def _print_progress(self, info: SweepProgress) -> None:
        if info.iteration % self.check_every == 0 or info.running == 0:
            print(
                f"iteration {info.iteration}: {info.running} of {info.total} replicates "
                f"running, {info.seconds_per_iteration:.3g} s/iteration",
                flush=True,
            )
