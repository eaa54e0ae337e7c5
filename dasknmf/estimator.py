"""scikit-learn compatible :class:`NMF` over tiled dask matrices."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import replace
from numbers import Integral, Real

import dask
import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from dasknmf import devices, inputs
from dasknmf import fit as fit_loop
from dasknmf.callbacks import PrintProgress
from dasknmf.errors import InvalidInputError, InvalidParameterError, warn_user
from dasknmf.init import INIT_METHODS, initialize
from dasknmf.params import (
    check_chunks,
    check_int,
    check_option,
    check_random_state,
    check_real,
)
from dasknmf.random import seed_from
from dasknmf.resources import active_client, available_memory, blas_guarded, total_threads
from dasknmf.solvers import (
    LOSS_BETAS,
    Penalty,
    Problem,
    Solver,
    canonical_solver,
    elastic_net,
    get_solver,
    masked,
    solver_names,
)

logger = logging.getLogger(__name__)

#: With ``persist="auto"``, V is kept in memory when it takes less than this share of
#: the memory the scheduler has; the rest is left for factors and partial products.
PERSIST_FRACTION = 0.5


def _is_lazy(X) -> bool:
    return isinstance(X, (da.Array, str, os.PathLike))


def _runs_eagerly(V: da.Array) -> bool:
    # A single tile gains nothing from a scheduler and would pay its overhead (a few
    # ms) on every iteration: iterate on the in-memory arrays instead.
    return V.numblocks == (1, 1) and active_client() is None


def _zero_missing(V: da.Array) -> da.Array:
    """``V`` with NaN (missing entries of dense tiles) read as zero, for the init."""
    if not isinstance(V._meta, np.ndarray):
        return V  # sparse tiles: unobserved entries are the unstored zeros already
    return V.map_blocks(lambda t: np.where(np.isnan(t), 0, t), dtype=V.dtype)


def _result(W, *, lazy: bool, device: str, output: str):
    """A result factor as the user gets it: a (persisted) dask array for lazy inputs
    (dask arrays, store paths), else in memory; NumPy blocks unless ``output='cupy'``."""
    if device != "cpu":
        W = devices.to_host(W)
    if lazy:
        W = W if isinstance(W, da.Array) else da.from_array(W)
        if output == "cupy":
            W = devices.to_device(W, "cuda")
        if device != "cpu" or output == "cupy":
            (W,) = dask.persist(W)
        return W
    W = np.asarray(W)
    return W if output == "numpy" else devices.to_device(W, "cuda")


class NMF(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Non-negative matrix factorisation ``X ≈ W H`` (multiplicative updates or HALS).

    ``X`` (``m × n``) may be larger than memory: it is processed as a grid of tiles
    by dask, read from a zarr store (:func:`dasknmf.write_matrix`) when it does not
    fit, and ``W @ H`` is never formed. Runs on dask's default scheduler, or on a
    ``distributed`` cluster when a ``Client`` is active.

    Parameters
    ----------
    n_components : int, 'auto' or None, default=None
        Rank ``k``, between 1 and ``min(m, n)``. ``None`` or ``'auto'`` (scikit-learn's
        spelling): inferred from custom ``W``/``H`` if given, else ``min(m, n)``.
    init : {'random', 'nndsvd', 'nndsvda', 'nndsvdar', 'custom'} or None, default=None
        Initialisation, as in scikit-learn. ``None`` means ``'nndsvda'``.
        ``'custom'`` uses the ``W`` and ``H`` passed to :meth:`fit`.
    beta_loss : {'frobenius', 'kullback-leibler', 'itakura-saito'} or float, default='frobenius'
        The β-divergence minimised (2, 1, 0 for the names): ``½‖X − WH‖²``, the
        generalised Kullback–Leibler divergence, Itakura–Saito, or any β; other than
        2 needs ``solver='mu'``. β ∉ {1, 2} computes ``W H`` at every entry, tile by
        tile (O(m·n·k) per iteration). ``reconstruction_err_`` is scikit-learn's
        ``sqrt(2 · divergence)``. For β ≤ 0, ``X`` must have no zeros where the
        divergence is to be finite, as in scikit-learn.
    solver : {'mu', 'hals'}, default='mu'
        ``'mu'``: Lee & Seung multiplicative updates. ``'hals'`` (alias ``'cd'``):
        hierarchical alternating least squares, i.e. scikit-learn's coordinate descent
        with ``shuffle=False``; same cost per iteration, usually far fewer iterations.
        Both stop by the ``tol`` rule below.
    max_iter : int, default=200
        Most iterations.
    tol : float, default=1e-4
        Stop when the error decreased by less than ``tol · error_at_init`` since the
        previous check (scikit-learn's rule). 0 runs ``max_iter`` iterations.
    random_state : int, RandomState or None, default=None
        Seed for ``'random'``, ``'nndsvdar'`` and the randomized SVD of ``'nndsvd*'``.
        Results depend on it, never on the tiling or the number of workers.
    check_every : int, default=10
        Iterations between convergence checks.
    alpha_W : float, default=0.0
        Strength of the elastic-net penalty on ``W``, scaled as in scikit-learn: the
        objective gains ``alpha_W · n · (l1_ratio ‖W‖₁ + ½ (1 − l1_ratio) ‖W‖²)``.
    alpha_H : float or 'same', default='same'
        The same for ``H`` (scaled by ``m``); ``'same'`` takes ``alpha_W``.
    l1_ratio : float, default=0.0
        Mix between the L1 (1.0) and L2 (0.0) penalties.
    missing : None or 'ignore', default=None
        ``None``: every entry of ``X`` is data (absent entries of a sparse matrix are
        zeros). ``'ignore'``: only the observed entries enter the loss and the
        updates, and the others are predicted (recommender use): the stored entries
        of a sparse matrix or store, explicit zeros included, or the non-NaN entries
        of a dense one. Needs ``solver='mu'``; any ``beta_loss`` (for β ≤ 0 the
        observed values must be positive). The default ``init`` becomes
        ``'random'``, scaled by the mean observed value; the ``'nndsvd*'`` inits see
        unobserved entries as zeros. :attr:`reconstruction_err_` is then
        ``sqrt(2 · divergence over the observed entries)`` (``‖M ∘ (X − WH)‖_F`` for
        the Frobenius loss).
    chunks : (int, int) or None, default=None
        Tile shape. ``None``: a dask input or store keeps its tiles, an in-memory
        input is tiled automatically (one row block per thread at least).
    persist : 'auto', True or False, default='auto'
        Keep ``X`` in the workers' memory across iterations (``True``) or re-read its
        tiles on every pass (``False``, out of core). ``'auto'`` persists when ``X``
        takes less than half the memory the scheduler has.
    callbacks : list of callables or None, default=None
        Each called with a :class:`dasknmf.fit.IterationInfo` after every iteration;
        ``info.state()`` is where the fit stands, to continue it later with
        ``fit(X, resume=state)``.
    verbose : int, default=0
        If positive, print one progress line per iteration to standard output.
    device : {'cpu', 'cuda'}, default='cpu'
        Where the iterations run. ``'cuda'``: ``X``'s tiles and the factors are moved to
        the GPU (CuPy arrays, cupyx CSR matrices) inside the dask graph and the same
        kernels run there; a tile read from a store is copied to the GPU of the worker
        that reads it, on every pass when ``X`` is not persisted (out of core: ``X`` may
        be larger than GPU memory). One GPU with dask's default scheduler, or one per
        worker on a ``distributed`` cluster of GPU workers (dask-cuda's
        ``LocalCUDACluster``). Needs ``pip install 'dasknmf[gpu]'``; with
        ``persist='auto'`` the budget is the GPUs' free memory. Callbacks see factors
        on the GPU; the statistics and the initialisation are computed on the host.
    output : {'numpy', 'cupy'}, default='numpy'
        Array type of the results (:attr:`components_`, the ``W`` returned by
        :meth:`fit_transform` and :meth:`transform`, the blocks of a dask result).

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        ``H``.
    n_components_ : int
        The rank used.
    reconstruction_err_ : float
        ``‖X − WH‖_F`` at the end of the fit.
    error_curve_ : list of (int, float)
        ``(iteration, ‖X − WH‖_F)`` for each iteration whose error was computed:
        every ``check_every``-th and the last, or every one when callbacks are set.
    n_iter_ : int
        Iterations run.
    n_features_in_ : int
        ``n``.
    persisted_ : bool
        Whether ``X`` was kept in memory during the fit.
    W_ : ndarray or dask.array.Array of shape (n_samples, n_components)
        ``W`` of the training rows (the array :meth:`fit_transform` returned), used
        by :meth:`predict`, :meth:`rmse` and :meth:`score`.
    n_observed_ : int
        Entries of ``X`` that entered the fit (all ``m · n`` unless
        ``missing='ignore'``).

    Examples
    --------
    >>> import numpy as np
    >>> from dasknmf import NMF
    >>> X = np.random.default_rng(0).random((60, 40))
    >>> model = NMF(n_components=5, init="random", random_state=0, max_iter=100)
    >>> W = model.fit_transform(X)
    >>> W.shape, model.components_.shape
    ((60, 5), (5, 40))
    """

    def __init__(
        self,
        n_components=None,
        *,
        init=None,
        solver="mu",
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
        callbacks=None,
        verbose=0,
        device="cpu",
        output="numpy",
    ):
        self.n_components = n_components
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
        self.callbacks = callbacks
        self.verbose = verbose
        self.device = device
        self.output = output

    # -- scikit-learn protocol ---------------------------------------------------------

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self) -> int:
        return self.components_.shape[0]

    def fit(self, X, y=None, W=None, H=None, *, resume=None):
        """Learn ``H`` (:attr:`components_`) from ``X``.

        Parameters
        ----------
        X : array-like, sparse matrix, dask array or str
            ``m × n`` non-negative data, or the path of a dasknmf store.
        y : ignored
        W, H : array-like, optional
            Initial factors for ``init='custom'``.
        resume : dasknmf.FitState, optional
            Continue an earlier fit of the same ``X`` with the same parameters from
            the state it reached (``info.state()`` in a callback), instead of starting
            from ``init``: see :meth:`fit_transform`.

        Returns
        -------
        self
        """
        self.fit_transform(X, W=W, H=H, resume=resume)
        return self

    @blas_guarded
    def fit_transform(self, X, y=None, W=None, H=None, *, resume=None):
        """Learn the factorisation and return ``W``.

        Parameters
        ----------
        X : array-like, sparse matrix, dask array or str
            ``m × n`` non-negative data, or the path of a dasknmf store.
        y : ignored
        W, H : array-like, optional
            Initial factors for ``init='custom'``.
        resume : dasknmf.FitState, optional
            Where an earlier fit of this ``X`` stood after some iteration
            (:meth:`dasknmf.IterationInfo.state`). The fit continues from its factors
            with the iterations after it, up to ``max_iter`` counted from the start,
            the stopping rule restored: with the same parameters (``tol``,
            ``check_every``, ``chunks``, ...) it ends with the factors, ``n_iter_``
            and ``error_curve_`` of the fit that was never stopped. ``init``,
            ``random_state`` and ``W``/``H`` play no part (giving ``W`` or ``H`` is
            an error); ``n_components``, if set, must be the state's.

        Returns
        -------
        W : ndarray or dask.array.Array of shape (m, n_components)
            A NumPy array for in-memory ``X``; a (persisted) dask array chunked like
            ``X``'s rows when ``X`` is a dask array or a store path.
        """
        self._check_params()
        self._check_device()
        # Nested lists are accepted for W and H, as by scikit-learn (never copied here).
        W, H = (f if f is None or isinstance(f, da.Array) else np.asarray(f) for f in (W, H))
        V = self._as_tiled(X, reset=True)
        m, n = V.shape
        if resume is not None:
            W, H = self._check_resume(resume, W, H, m, n)
        stats = self._checked_stats(V)
        k = self._resolve_n_components(m, n, W, H, custom=resume is not None)
        V = self._maybe_persist(V, stats)

        method = "custom" if resume is not None else self._resolve_init(W, H)
        seed = seed_from(self.random_state)
        W0, H0 = initialize(
            _zero_missing(V) if self._masked else V,
            k,
            method,
            mean=self._scale_mean(stats),
            seed=seed,
            dtype=V.dtype,
            W=W,
            H=H,
        )
        if _runs_eagerly(V):
            V, W0, H0 = dask.compute(V, W0, H0)
        V, W0, H0 = self._on_device(V, W0, H0, persist=self.persisted_)
        callbacks = list(self.callbacks or [])
        if self.verbose:
            callbacks.append(PrintProgress())
        options = dict(
            max_iter=self.max_iter,
            tol=self.tol,
            check_every=self.check_every,
            callbacks=callbacks,
        )
        solver = self._solver(V, stats, in_memory=self.persisted_)
        if resume is not None:
            result = fit_loop.resume(solver, replace(resume, W=W0, H=H0), **options)
        else:
            result = fit_loop.run(solver, W0, H0, **options)
        if self.tol > 0 and not result.converged and self.max_iter > 0:
            warn_user(
                f"Maximum number of iterations {self.max_iter} reached. Increase it to "
                "improve convergence.",
                ConvergenceWarning,
            )
        H = np.ascontiguousarray(_result(result.H, lazy=False, device=self.device, output="numpy"))
        self.components_ = H if self.output == "numpy" else devices.to_device(H, "cuda")
        self.n_components_ = k
        self.n_iter_ = result.n_iter
        self.reconstruction_err_ = result.error
        self.error_curve_ = result.errors
        self.n_observed_ = stats.n_observed if self._masked else m * n
        self.W_ = _result(result.W, lazy=_is_lazy(X), device=self.device, output=self.output)
        return self.W_

    @blas_guarded
    def transform(self, X):
        """``W`` for the rows of ``X`` with ``H`` fixed to :attr:`components_`.

        Each row block runs its own multiplicative updates from a constant start, up
        to ``max_iter`` iterations with the same ``tol`` rule.

        Returns
        -------
        W : ndarray or dask.array.Array of shape (m, n_components)
            NumPy for in-memory ``X``; a persisted dask array chunked like ``X``'s
            rows for a dask array or store path.
        """
        check_is_fitted(self)
        self._check_device()
        V = self._as_tiled(X, reset=False)
        stats = self._checked_stats(V)
        k = self.n_components_
        H = devices.block_to_host(self.components_).astype(V.dtype, copy=False)
        H = da.from_array(H, chunks=((k,), V.chunks[1]))
        # scikit-learn's starts: MU cannot move away from zeros, coordinate descent can.
        mean_start = self._solver_class().transform_start == "mean"
        start = math.sqrt(self._scale_mean(stats) / k) if mean_start else 0.0
        W0 = da.full((V.shape[0], k), start, dtype=V.dtype, chunks=(V.chunks[0], (k,)))
        if _runs_eagerly(V):
            V, H, W0 = dask.compute(V, H, W0)
        V, W0, H = self._on_device(V, W0, H, persist=False)
        solver = self._solver(V, stats, in_memory=False)
        W = solver.transform_w(
            H, W0, max_iter=self.max_iter, tol=self.tol, check_every=self.check_every
        )
        (W,) = dask.persist(W)  # computed here, under this method's BLAS limit
        return _result(W, lazy=_is_lazy(X), device=self.device, output=self.output)

    @available_if(lambda self: self._masked)
    def predict(self, rows, cols=None):
        """Predicted entries ``(W H)[rows[p], cols[p]]`` of the training matrix.

        For ratings these are the predicted ratings of the given (user, item) pairs,
        observed or not. Available with ``missing='ignore'`` (to predict from a
        complete matrix, fit it that way too: with nothing missing the updates are
        the plain ones); scikit-learn's own ``predict(X)`` protocol does not apply to
        a transformer.

        Parameters
        ----------
        rows, cols : array-like of int, same length
            Row and column indices into the matrix given to :meth:`fit`. With
            ``cols`` omitted, ``rows`` is a ``(p, 2)`` array of ``(row, col)`` pairs.

        Returns
        -------
        ndarray of shape (len(rows),)
            One prediction per pair, computed from the pairs' rows of ``W`` and
            columns of ``H`` only.
        """
        check_is_fitted(self, "W_")
        if cols is None:
            pairs = np.asarray(rows)
            if pairs.ndim != 2 or pairs.shape[1] != 2:
                raise InvalidParameterError(
                    "predict: give rows and cols, or one array of (row, col) pairs of shape "
                    f"(p, 2); got an array of shape {pairs.shape}."
                )
            rows, cols = pairs[:, 0], pairs[:, 1]
        rows, cols = self._check_pairs(rows, cols)
        W = devices.to_host(self.W_)
        w_rows = W[rows].compute() if isinstance(W, da.Array) else W[rows]
        H = devices.block_to_host(self.components_)
        return masked.predict(np.asarray(w_rows), H[:, cols])

    @available_if(lambda self: self._masked)
    @blas_guarded
    def rmse(self, X) -> float:
        """Root-mean-square error of :meth:`predict` on the observed entries of ``X``.

        Parameters
        ----------
        X : matrix, store path, dask array or (rows, cols, values)
            Entries of the training matrix's shape, typically held out of the fit:
            a sparse matrix, store or dask array (its stored entries, zeros included)
            or a dense array (its non-NaN entries); or three aligned arrays.

        Returns
        -------
        float
            ``sqrt(mean((X_ij − (WH)_ij)²))`` over the observed ``(i, j)``.
        """
        check_is_fitted(self, "W_")
        if isinstance(X, tuple):
            if len(X) != 3:
                raise InvalidParameterError(
                    f"rmse expects a matrix or a (rows, cols, values) triple; got a tuple of "
                    f"{len(X)} items."
                )
            rows, cols, values = X
            values = np.asarray(values, dtype=np.float64).ravel()
            pred = self.predict(rows, cols)
            if values.shape != pred.shape:
                raise InvalidParameterError(
                    f"rmse: {values.size} values for {pred.size} (row, col) pairs."
                )
            if values.size == 0:
                raise InvalidParameterError("rmse: no (row, col, value) entries given.")
            return float(np.sqrt(np.mean((values - pred) ** 2)))
        V = self._as_tiled(X, reset=False)
        if V.shape[0] != self.W_.shape[0]:
            raise ValueError(
                f"X has {V.shape[0]} rows, but NMF was fitted on {self.W_.shape[0]}: rmse "
                "needs entries of the training matrix's shape."
            )
        W = devices.to_host(self.W_)
        H = devices.block_to_host(self.components_).astype(V.dtype, copy=False)
        if isinstance(V, da.Array) and V.numblocks != (1, 1):
            W = (
                W.rechunk((V.chunks[0], -1))
                if isinstance(W, da.Array)
                else (da.from_array(W, chunks=(V.chunks[0], -1)))
            )
            H = da.from_array(H, chunks=(-1, V.chunks[1]))
        else:
            V, W = dask.compute(V, W)
        sums = np.asarray(dask.compute(masked.observed_sums(V, W, H, 2.0))[0])
        if sums[1] == 0:
            raise InvalidInputError("rmse: X has no observed entries.")
        return float(np.sqrt(sums[2] / sums[1]))

    @available_if(lambda self: self._masked)
    def score(self, X, y=None) -> float:
        """Negative :meth:`rmse` on ``X`` (greater is better, as scikit-learn's
        model selection expects)."""
        return -self.rmse(X)

    def inverse_transform(self, X):
        """``W @ components_``: the data approximated from its transform.

        Returns
        -------
        ndarray or dask.array.Array of shape (m, n_features)
            Dense. Lazy for a dask ``X``: compute it block by block if it is large.
        """
        check_is_fitted(self)
        if not isinstance(X, da.Array):
            X = check_array(X, dtype=[np.float64, np.float32])
        k = self.n_components_
        if X.ndim != 2 or X.shape[1] != k:
            raise ValueError(
                f"X has shape {X.shape}, but NMF has {k} components: inverse_transform "
                f"expects W of shape (n_samples, {k})."
            )
        components = devices.block_to_host(self.components_)
        if isinstance(X, da.Array):
            return X.rechunk({1: -1}) @ components.astype(X.dtype, copy=False)
        return X @ components.astype(X.dtype, copy=False)

    # -- helpers -----------------------------------------------------------------------

    def _check_params(self) -> None:
        if not (isinstance(self.n_components, str) and self.n_components == "auto"):
            check_int("n_components", self.n_components, low=1, allow_none=True)
        check_option("init", self.init, (None, *INIT_METHODS))
        check_option("solver", self.solver, solver_names())
        if self._beta is None:
            raise InvalidParameterError(
                "The 'beta_loss' parameter must be 'frobenius' (2), 'kullback-leibler' (1), "
                f"'itakura-saito' (0) or a real number; got {self.beta_loss!r}."
            )
        check_int("max_iter", self.max_iter, low=0)
        check_real("tol", self.tol, low=0.0)
        check_int("check_every", self.check_every, low=1)
        check_chunks("chunks", self.chunks)
        check_option("persist", self.persist, ("auto", True, False))
        check_random_state("random_state", self.random_state)
        check_real("alpha_W", self.alpha_W, low=0.0)
        if not (isinstance(self.alpha_H, str) and self.alpha_H == "same"):
            check_real("alpha_H", self.alpha_H, low=0.0)
        check_real("l1_ratio", self.l1_ratio, low=0.0, high=1.0)
        check_option("missing", self.missing, (None, "ignore"))
        self._solver_class()  # the registry refuses a loss or mask the solver lacks
        if not isinstance(self.verbose, bool):
            check_int("verbose", self.verbose, low=0)

    def _check_device(self) -> None:
        """Raise unless :attr:`device` and :attr:`output` are valid and usable by the
        scheduler in use (called by ``fit`` and ``transform``)."""
        check_option("device", self.device, devices.DEVICES)
        check_option("output", self.output, devices.OUTPUTS)
        if self.device == "cuda":
            devices.require_gpu(active_client())
        elif self.output == "cupy":
            devices.require_gpu(None)  # the results are moved to this process's GPU

    def _solver_class(self) -> type[Solver]:
        """The registry's solver for :attr:`beta_loss`, :attr:`solver`, :attr:`missing`."""
        return get_solver(self._beta, self.solver, self._masked, beta_loss=self.beta_loss)

    def _solver(self, V: da.Array, stats: inputs.MatrixStats, *, in_memory: bool) -> Solver:
        penalty_w, penalty_h = self._penalties(*V.shape)
        problem = Problem(
            V,
            beta=self._beta,
            norm2=stats.norm2,
            total=stats.total,
            in_memory=in_memory,
            penalty_w=penalty_w,
            penalty_h=penalty_h,
        )
        return self._solver_class().build(problem)

    @property
    def _beta(self) -> float | None:
        """β of the divergence, or ``None`` for a value that names none."""
        if isinstance(self.beta_loss, str):
            return LOSS_BETAS.get(self.beta_loss)
        if isinstance(self.beta_loss, Real) and not isinstance(self.beta_loss, bool):
            return float(self.beta_loss) if np.isfinite(self.beta_loss) else None
        return None

    @property
    def _masked(self) -> bool:
        return self.missing == "ignore"

    def _scale_mean(self, stats: inputs.MatrixStats) -> float:
        """The mean that scales starting factors: over observed entries when some are
        missing, else over all ``m · n``."""
        return stats.observed_mean if self._masked else stats.mean

    def _check_pairs(self, rows, cols) -> tuple[np.ndarray, np.ndarray]:
        """Validated integer index arrays for :meth:`predict`."""
        m, n = self.W_.shape[0], self.components_.shape[1]
        out = []
        for name, idx, size in (("rows", rows, m), ("cols", cols, n)):
            arr = np.asarray(idx)
            if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
                raise InvalidParameterError(
                    f"predict: {name} must be a 1-D array of integer indices; got "
                    f"{arr.dtype} of shape {arr.shape}."
                )
            bad = (arr < 0) | (arr >= size)
            if bad.any():
                raise InvalidParameterError(
                    f"predict: {name} index {int(arr[bad][0])} is out of range [0, {size}) "
                    f"({int(bad.sum())} such indices)."
                )
            out.append(arr.astype(np.intp, copy=False))
        if out[0].shape != out[1].shape:
            raise InvalidParameterError(
                f"predict: rows and cols must have the same length; got {out[0].size} and "
                f"{out[1].size}."
            )
        return out[0], out[1]

    def _penalties(self, m: int, n: int) -> tuple[Penalty, Penalty]:
        """The penalties of ``W`` and ``H`` for an ``m × n`` input."""
        alpha_h = self.alpha_W if self.alpha_H == "same" else self.alpha_H
        return elastic_net(self.alpha_W, alpha_h, self.l1_ratio, m, n)

    def _as_tiled(self, X, *, reset: bool) -> da.Array:
        if _is_lazy(X):
            V = inputs.as_tiled(X, chunks=self.chunks, threads=total_threads())
            inputs.check_shape(V.shape)
            if reset:
                self.n_features_in_ = V.shape[1]
                if hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
            elif V.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {V.shape[1]} features, but NMF is expecting "
                    f"{self.n_features_in_} features as input."
                )
            return V
        # A CuPy input is checked and tiled like any other, on the host: the checks and
        # the tiling are NumPy/SciPy code, and the tiles go back to the GPU afterwards.
        X = devices.block_to_host(X)
        # dtype="numeric": keep what NumPy infers (a list of floats is float64, which
        # is preserved); as_tiled then casts everything but float64 to float32.
        X = validate_data(
            self,
            X,
            accept_sparse=("csr", "csc", "coo"),
            dtype="numeric",
            ensure_all_finite=False,
            reset=reset,
        )
        if self.device == "cpu":
            return inputs.as_tiled(X, chunks=self.chunks, threads=total_threads())
        # A GPU gains nothing from splitting a tile among threads; one tile per worker
        # (per GPU) up to GPU_SINGLE_TILE_BYTES runs the fewest, largest kernels.
        client = active_client()
        gpus = 1 if client is None else len(client.nthreads())
        return inputs.as_tiled(
            X,
            chunks=self.chunks,
            threads=gpus,
            single_tile_bytes=devices.GPU_SINGLE_TILE_BYTES if gpus == 1 else 0,
        )

    def _checked_stats(self, V: da.Array) -> inputs.MatrixStats:
        inputs.check_shape(V.shape)
        stats = inputs.compute_stats(V, nan_is_missing=self._masked)
        inputs.check_stats(stats)
        if self._masked and self._beta <= 0 and stats.n_observed_zeros:
            raise InvalidInputError(
                f"X has {stats.n_observed_zeros} observed zero(s): with missing='ignore' "
                f"and beta_loss={self.beta_loss!r} (β ≤ 0) the divergence at a zero is "
                "infinite. Use a positive beta_loss, or leave zeros unobserved."
            )
        return stats

    def _resolve_n_components(self, m: int, n: int, W, H, *, custom: bool = False) -> int:
        k = self.n_components
        custom = custom or self.init == "custom"
        if k is None or k == "auto":
            # A W or H that is not 2-D is reported by the initialisation.
            if custom and H is not None and H.ndim == 2:
                k = H.shape[0]
            elif custom and W is not None and W.ndim == 2:
                k = W.shape[1]
            else:
                k = min(m, n)
        if not isinstance(k, Integral) or not 1 <= k <= min(m, n):
            raise InvalidParameterError(
                f"The 'n_components' parameter must be an int in [1, min(n_samples, "
                f"n_features)] = [1, {min(m, n)}] for X of shape {(m, n)}; got {k!r}."
            )
        return int(k)

    def _check_resume(self, state, W, H, m: int, n: int) -> tuple:
        """The factors of a :class:`~dasknmf.fit.FitState` to resume from, checked
        against the parameters (the arrays themselves are checked as custom ones)."""
        if not isinstance(state, fit_loop.FitState):
            raise InvalidParameterError(
                "The 'resume' parameter must be a dasknmf.FitState (from "
                f"IterationInfo.state()); got {type(state).__name__}."
            )
        if W is not None or H is not None:
            raise InvalidParameterError(
                "fit(resume=state) continues from the state's W and H; do not pass W or H too."
            )
        if state.iteration > self.max_iter:
            raise InvalidParameterError(
                f"The 'max_iter' parameter {self.max_iter} is below the iteration "
                f"{state.iteration} of the state to resume from (max_iter counts from the "
                "start of the fit)."
            )
        shapes = tuple(getattr(f, "shape", None) for f in (state.W, state.H))
        k = shapes[1][0] if shapes[1] is not None and len(shapes[1]) == 2 else None
        if k is None or shapes != ((m, k), (k, n)):
            raise InvalidParameterError(
                f"The state to resume from has W of shape {shapes[0]} and H of shape "
                f"{shapes[1]}; X of shape {(m, n)} needs ({m}, k) and (k, {n})."
            )
        if self.n_components not in (None, "auto") and self.n_components != k:
            raise InvalidParameterError(
                f"The 'n_components' parameter {self.n_components} differs from the "
                f"{k} components of the state to resume from."
            )
        return state.W, state.H

    def _resolve_init(self, W, H) -> str:
        if self.init != "custom" and (W is not None or H is not None):
            warn_user(
                "When init!='custom', provided W or H are ignored. Set init='custom' to "
                "use them as initialization.",
                RuntimeWarning,
            )
        if self.init == "nndsvd" and canonical_solver(self.solver) == "mu":
            warn_user(
                "The multiplicative update solver cannot update zeros present in the "
                "initialization, and so leads to poorer results when used jointly with "
                "init='nndsvd'. You may try init='nndsvda' or init='nndsvdar' instead.",
                UserWarning,
            )
        return self.init or ("random" if self._masked else "nndsvda")

    def _on_device(self, V, W, H, *, persist: bool):
        """``V``, ``W`` and ``H`` on :attr:`device` (``V`` persisted there if asked)."""
        if self.device == "cpu":
            return V, W, H
        V, W, H = (devices.to_device(X, self.device) for X in (V, W, H))
        if persist and isinstance(V, da.Array):
            (V,) = dask.persist(V)
        return V, W, H

    def _maybe_persist(self, V: da.Array, stats: inputs.MatrixStats) -> da.Array:
        """``V``, persisted on the host when the fit keeps it in memory on the CPU;
        :attr:`persisted_` says whether it is kept in memory (on the GPU, by
        :meth:`_on_device`, for ``device='cuda'``)."""
        if self.persist == "auto":
            needed = inputs.in_memory_bytes(V, stats)
            on_gpu = self.device == "cuda"
            memory = devices.device_memory(active_client()) if on_gpu else available_memory()
            budget = PERSIST_FRACTION * memory
            persist = needed < budget
            logger.info(
                "V needs %.3g GB in memory, budget %.3g GB: %s",
                needed / 1e9,
                budget / 1e9,
                "persisting" if persist else "out of core",
            )
        else:
            persist = self.persist
        self.persisted_ = bool(persist)
        if persist and self.device == "cpu":
            (V,) = dask.persist(V)
        return V
