"""scikit-learn compatible :class:`NMF` over tiled dask matrices."""

from __future__ import annotations

import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

from dasknmf import devices
from dasknmf.estimator.fitting import fit_transform as fit_model
from dasknmf.estimator.fitting import transform as transform_rows
from dasknmf.estimator.ratings import RatingsMixin
from dasknmf.estimator.validating import ValidationMixin
from dasknmf.resources import in_task_threads

__all__ = ["NMF"]


class NMF(
    RatingsMixin,
    ValidationMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
):
    """Non-negative matrix factorisation ``X ≈ W H`` (multiplicative updates or HALS).

    ``X`` (``m × n``) may be larger than memory: it is processed as a grid of tiles
    by dask, read from a zarr store (:func:`dasknmf.write_matrix`) when it does not
    fit, and ``W @ H`` is never formed. Runs on dask's default scheduler, or on a
    ``distributed`` cluster when a ``Client`` is active.

    Parameters
    ----------
    n_components : int, 'auto' or None, default=None
        Rank ``k``, between 1 and ``min(m, n)`` for every ``init`` (scikit-learn also
        takes more with ``'random'`` or ``'custom'``; at ``min(m, n)`` an exact
        factorisation exists, so further components are not determined by the data).
        ``None`` or ``'auto'`` (scikit-learn's spelling): inferred from custom
        ``W``/``H`` if given, else ``min(m, n)``.
    init : {'random', 'nndsvd', 'nndsvda', 'nndsvdar', 'custom'} or None, default=None
        Initialisation, as in scikit-learn. ``None`` means ``'nndsvda'``.
        ``'custom'`` uses the ``W`` and ``H`` passed to :meth:`fit`.
    n_init : int, default=1
        Random starts (as scikit-learn's ``KMeans`` offers): with ``n_init > 1``,
        ``R = n_init`` fits from ``init='random'`` (or ``'nndsvdar'``; ``None`` is
        ``'random'`` here) with seeds drawn from ``random_state`` advance together,
        stacked as in :class:`~dasknmf.RankSweep` (each iteration reads every tile
        once for all of them), and the start with the lowest final error is the
        model: the fit ``NMF(k, random_state=init_seeds_[best])`` exactly, with its
        ``n_iter_`` and ``error_curve_``. Not with ``W``/``H``/``resume``,
        ``validation``, ``factors='store'``, ``device='cuda'`` or ``callbacks``
        (``verbose`` prints the starts' progress).
    beta_loss : {'frobenius', 'kullback-leibler', 'itakura-saito'} or float, default='frobenius'
        The β-divergence minimised (2, 1, 0 for the names): ``½‖X − WH‖²``, the
        generalised Kullback–Leibler divergence, Itakura–Saito, or any β; other than
        2 needs ``solver='mu'``. β ∉ {1, 2} computes ``W H`` at every entry, tile by
        tile (O(m·n·k) per iteration). ``reconstruction_err_`` is scikit-learn's
        ``sqrt(2 · divergence)``. For β ≤ 0, ``X`` must have no zeros where the
        divergence is to be finite, as in scikit-learn.
    solver : {'auto', 'mu', 'hals', 'als'}, default='auto'
        ``'mu'``: Lee & Seung multiplicative updates. ``'hals'`` (alias ``'cd'``):
        hierarchical alternating least squares, i.e. scikit-learn's coordinate descent
        with ``shuffle=False``; same cost per iteration, usually far fewer iterations.
        ``'als'``: alternating non-negative least squares over the observed entries
        (``missing='ignore'`` with the Frobenius loss only): every row of ``W``, then
        every column of ``H``, solved exactly; O(nnz · k²) per iteration, ten to
        twenty iterations where MU needs hundreds. ``'auto'``: ``'als'`` for
        ``missing='ignore'`` with the Frobenius loss, else ``'mu'``. All stop by the
        ``tol`` rule below.
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
    alpha_weighted : float, default=0.0
        Weighted-λ regularisation (ALS-WR; Spark ALS's ``regParam``): the objective
        gains ``½ alpha_weighted (Σ_i n_i ‖W_i‖² + Σ_j n_j ‖H_j‖²)``, ``n_i`` and
        ``n_j`` the numbers of observed entries of row ``i`` and column ``j``, so one
        value suits ratings of any density (0.01–0.05 for ratings on a 1–5 scale).
        With ``missing='ignore'`` it needs ``solver='als'`` (the default); with every
        entry observed it is a ridge of ``alpha_weighted · n`` on ``W`` and
        ``alpha_weighted · m`` on ``H``. Adds to ``alpha_W``/``alpha_H``.
    missing : None or 'ignore', default=None
        ``None``: every entry of ``X`` is data (absent entries of a sparse matrix are
        zeros). ``'ignore'``: only the observed entries enter the loss and the
        updates, and the others are predicted (recommender use): the stored entries
        of a sparse matrix or store, explicit zeros included, or the non-NaN entries
        of a dense one. The Frobenius loss is fitted by ``solver='als'`` (the
        default) or ``'mu'``, any other ``beta_loss`` by ``'mu'`` (for β ≤ 0 the
        observed values must be positive). The default ``init`` becomes
        ``'random'``, scaled by the mean observed value; the ``'nndsvd*'`` inits see
        unobserved entries as zeros. :attr:`reconstruction_err_` is then
        ``sqrt(2 · divergence over the observed entries)`` (``‖M ∘ (X − WH)‖_F`` for
        the Frobenius loss).
    validation : float or None, default=None
        With ``missing='ignore'``: a fraction in (0, 0.5) of the observed entries
        held out of the fit (chosen by a hash of each entry's position and
        ``random_state``, whatever the tiling). After every iteration the RMSE on them
        is computed (they are kept in memory; about 1 % of a sweep's work for
        ``k = 10``); the fit stops once it has not fallen below its best by a
        relative ``tol`` for 3 iterations, and keeps the factors of the iteration
        with the lowest one (:attr:`best_iteration_`). The ``tol`` rule on the
        training error still applies. A resumed fit starts its count afresh.
    clip : bool, default=True
        With ``missing='ignore'``: :meth:`predict`, :meth:`rmse`, :meth:`score`,
        :meth:`recommend` clip predictions to the range of the observed training
        values (:attr:`rating_range_`, e.g. 1–5 stars). ``False``: ``W H`` as it is.
    chunks : (int, int) or None, default=None
        Tile shape. ``None``: a dask input or store keeps its tiles, an in-memory
        input is tiled automatically (one row block per thread at least; a sparse
        one's columns cut so that a tile's block of ``H`` is about 2 MiB).
    persist : 'auto', True or False, default='auto'
        Keep ``X`` in the workers' memory across iterations (``True``) or re-read its
        tiles on every pass (``False``, out of core). ``'auto'`` persists when ``X``
        takes less than half the memory the scheduler has.
    factors : {'auto', 'memory', 'store'}, default='auto'
        Where ``W`` and ``H`` are kept between iterations: in memory, or in zarr
        stores (``'store'``) whose blocks each pass over ``X`` reads, updates and
        writes back (``W`` by row blocks, ``H`` by column blocks), so that memory
        holds only tiles, blocks in flight and ``k × k`` sums: ``W`` (``m × k``) and
        ``H`` (``k × n``) may be larger than memory. ``'auto'`` keeps the factors in
        memory while three arrays of each (beside a persisted ``X``) take at most
        three quarters of the scheduler's memory, and otherwise stores the largest
        first. A factor not stored while the other is comes back to this process
        after every iteration. A stored ``W`` is returned as a dask array reading its
        store, and a stored ``H`` is :attr:`components_` as one.
    factor_store : str or os.PathLike or None, default=None
        Directory of the stored factors (``factor_store/W``, ``factor_store/H``; on a
        file system every worker sees). ``None``: temporary directories (under dask's
        ``temporary-directory``), each deleted once nothing reads the factor in it.
    callbacks : list of callables or None, default=None
        Each called with a :class:`dasknmf.fit_state.IterationInfo` after every iteration;
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
        ``H`` (a dask array reading its store when ``H`` was stored, see ``factors``).
    n_components_ : int
        The rank used.
    reconstruction_err_ : float
        ``‖X − WH‖_F`` at the end of the fit.
    relative_error_ : float or None
        ``‖X − WH‖_F / ‖X‖_F`` (over the observed entries with ``missing='ignore'``);
        ``None`` for other losses and with ``validation`` (``‖X‖_F`` of the entries
        fitted is not known then).
    error_curve_ : list of (int, float)
        ``(iteration, ‖X − WH‖_F)`` for each iteration whose error was computed:
        every ``check_every``-th and the last, or every one when callbacks are set.
    n_iter_ : int
        Iterations run.
    n_features_in_ : int
        ``n``.
    persisted_ : bool
        Whether ``X`` was kept in memory during the fit.
    factors_stored_ : tuple of str
        The factors kept in stores during the fit (``()``, ``('W',)``, ``('H',)`` or
        ``('W', 'H')``; see ``factors``).
    W_ : ndarray or dask.array.Array of shape (n_samples, n_components)
        ``W`` of the training rows (the array :meth:`fit_transform` returned), used
        by :meth:`predict`, :meth:`rmse` and :meth:`score`.
    n_observed_ : int
        Entries of ``X`` that entered the fit (all ``m · n`` unless
        ``missing='ignore'``; without the validation entries).
    converged_ : bool
        Whether the ``tol`` rule or the validation rule stopped the fit.
    init_errors_, init_seeds_ : ndarray of shape (n_init,)
        With ``n_init > 1``: each start's final error and its seed (the model is
        the start of the lowest error).
    rating_range_ : (float, float)
        With ``missing='ignore'``: the smallest and largest observed value of ``X``,
        the range predictions are clipped to.
    n_validation_ : int
        With ``validation``: the number of validation entries.
    validation_rmse_ : float
        With ``validation``: RMSE on them of the kept factors (clipped predictions
        unless ``clip=False``).
    validation_curve_ : list of (int, float)
        With ``validation``: ``(iteration, validation RMSE)`` of every iteration.
    best_iteration_ : int
        With ``validation``: the iteration whose factors were kept (``n_iter_``
        counts every iteration run).

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
        n_init=1,
        solver="auto",
        beta_loss="frobenius",
        max_iter=200,
        tol=1e-4,
        random_state=None,
        check_every=10,
        alpha_W=0.0,
        alpha_H="same",
        l1_ratio=0.0,
        alpha_weighted=0.0,
        missing=None,
        validation=None,
        clip=True,
        chunks=None,
        persist="auto",
        factors="auto",
        factor_store=None,
        callbacks=None,
        verbose=0,
        device="cpu",
        output="numpy",
    ):
        self.n_components = n_components
        self.init = init
        self.n_init = n_init
        self.solver = solver
        self.beta_loss = beta_loss
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.check_every = check_every
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.alpha_weighted = alpha_weighted
        self.missing = missing
        self.validation = validation
        self.clip = clip
        self.chunks = chunks
        self.persist = persist
        self.factors = factors
        self.factor_store = factor_store
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
            Initial factors for ``init='custom'``, of shapes ``(m, k)`` and ``(k, n)``;
            cast to ``X``'s dtype (scikit-learn raises ``TypeError`` on a mismatch
            instead: a store is often float32, factors built with NumPy float64).
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

    @in_task_threads
    def fit_transform(self, X, y=None, W=None, H=None, *, resume=None):
        """Learn the factorisation and return ``W``.

        Parameters
        ----------
        X : array-like, sparse matrix, dask array or str
            ``m × n`` non-negative data, or the path of a dasknmf store.
        y : ignored
        W, H : array-like, optional
            Initial factors for ``init='custom'``, of shapes ``(m, k)`` and ``(k, n)``;
            cast to ``X``'s dtype (scikit-learn raises ``TypeError`` on a mismatch
            instead: a store is often float32, factors built with NumPy float64).
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
        return fit_model(self, X, W, H, resume)

    @in_task_threads
    def transform(self, X):
        """``W`` for the rows of ``X`` with ``H`` fixed to :attr:`components_`.

        Each row block runs its own multiplicative updates from a constant start, up
        to ``max_iter`` iterations with the same ``tol`` rule. Where ``factors`` puts
        ``W`` in a store (``'store'``, or ``'auto'`` for a ``W`` too large for
        memory), this ``W`` is written block by block to ``factor_store/transform``
        (a temporary directory without ``factor_store``) and returned as a dask array
        reading it.

        Returns
        -------
        W : ndarray or dask.array.Array of shape (m, n_components)
            NumPy for in-memory ``X``; a persisted dask array chunked like ``X``'s
            rows for a dask array or store path; a dask array over the store for a
            stored ``W``.
        """
        check_is_fitted(self)
        return transform_rows(self, X)

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

    @property
    def _masked(self) -> bool:
        return self.missing == "ignore"
