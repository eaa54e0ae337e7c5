"""The conformance suite every solver of :mod:`dasknmf.solvers.registry` passes.

A solver's test module subclasses :class:`SolverTests`, names its registry key
(``loss``, ``solver``, ``masked``, ``beta``) and its dense reference, and inherits
every check: the registry hands out its class, the fit equals the dense NumPy
reference (``tests/reference.py``, sharing no code with dasknmf) on every tiling, in
memory and out of core and on one in-memory matrix, the result does not depend on
the tiling, the loss never increases, and ``transform_w`` is tiling-independent and
lowers the error of its start. ``tests/solvers/test_registry.py`` checks that every
registered key has such a subclass.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf import fit
from dasknmf.kernels.stack import Stack
from dasknmf.solvers import Problem, get_solver
from dasknmf.sweep.loop import run_stacked
from tests import reference
from tests.helpers import make_factors

M, N, K = 37, 23, 4
#: One tile, many, ragged last tiles, single-row tiles, a wide row of tiles (more
#: column tiles than a row-block task takes: the out-of-core two-graph path).
TILINGS = [(37, 23), (10, 7), (13, 23), (1, 23), (37, 2)]


class SolverTests:
    """Subclass and set the class attributes; every test below then runs for the
    subclass's solver. ``reference`` is a dense NumPy implementation of the same
    updates: ``reference(V, mask, W0, H0, n_iter) -> (W, H, errors)``."""

    loss: ClassVar[str]
    solver: ClassVar[str]
    masked: ClassVar[bool] = False
    beta: ClassVar[float] = 2.0
    #: Relative tolerance of the comparison with the dense reference (float64).
    rtol: ClassVar[float] = 1e-9
    #: The same for the error (a divergence summed from terms that cancel may lose a
    #: few more digits than the factors).
    error_rtol: ClassVar[float] = 1e-9
    n_iter: ClassVar[int] = 12

    @staticmethod
    def reference(V, mask, W0, H0, n_iter):
        raise NotImplementedError

    # -- fixtures shared by the tests ---------------------------------------------------

    @pytest.fixture(params=["sparse", "dense"])
    def data(self, request):
        """``(X, mask, W0, H0)``: the input as the solver takes it, which entries are
        observed, and starting factors."""
        rng = np.random.default_rng(5)
        values = np.round(rng.random((M, N)) * 5, 2) + 0.01
        keep = rng.random((M, N)) < (0.5 if self.masked else 0.3)
        keep[3, :] = False  # an empty row and an empty column
        keep[:, 4] = False
        if self.masked:
            mask = keep
            X = np.where(mask, values, np.nan)
            if request.param == "sparse":
                rows, cols = np.nonzero(mask)
                X = sp.csr_matrix((values[rows, cols], (rows, cols)), shape=(M, N))
        else:
            mask = np.ones((M, N), dtype=bool)
            X = np.where(keep, values, 0.0)
            if request.param == "sparse":
                X = sp.csr_matrix(X)
        W0, H0 = make_factors(M, N, K, seed=2)
        return X, mask, W0, H0

    def build(self, X, *, in_memory: bool, chunks=None):
        """The registry's solver on ``X`` (tiled by ``chunks``, or one in-memory
        matrix for ``None``)."""
        dense = np.nan_to_num(reference.dense(X))
        V = X if chunks is None else da.from_array(X, chunks=chunks, asarray=False)
        problem = Problem(
            V,
            beta=self.beta,
            norm2=float((dense**2).sum()),
            total=float(dense.sum()),
            in_memory=in_memory,
        )
        return get_solver(self.beta, self.solver, self.masked).build(problem)

    def fit(self, X, W0, H0, *, chunks, in_memory=True, n_iter=None, callbacks=()):
        solver = self.build(X, in_memory=in_memory, chunks=chunks)
        if chunks is not None:
            W0 = da.from_array(W0, chunks=(chunks[0], K))
            H0 = da.from_array(H0, chunks=(K, chunks[1]))
        n_iter = self.n_iter if n_iter is None else n_iter
        return fit.run(solver, W0, H0, max_iter=n_iter, tol=0, callbacks=callbacks)

    # -- the contract ----------------------------------------------------------------------

    def test_the_registry_serves_this_solver(self):
        cls = get_solver(self.beta, self.solver, self.masked)
        assert hasattr(cls, "build") and cls.transform_start in ("mean", "zero")
        assert cls.build(Problem(np.ones((2, 2)), beta=self.beta)).reusable in (True, False)

    @pytest.mark.parametrize("in_memory", [True, False], ids=["in-memory", "out-of-core"])
    @pytest.mark.parametrize("chunks", TILINGS, ids=lambda c: f"tiles{c[0]}x{c[1]}")
    def test_matches_the_dense_reference(self, data, chunks, in_memory):
        X, mask, W0, H0 = data
        W_ref, H_ref, errors = self.reference(X, mask, W0, H0, self.n_iter)
        result = self.fit(X, W0, H0, chunks=chunks, in_memory=in_memory)
        np.testing.assert_allclose(np.asarray(result.W), W_ref, rtol=self.rtol, atol=1e-12)
        np.testing.assert_allclose(np.asarray(result.H), H_ref, rtol=self.rtol, atol=1e-12)
        np.testing.assert_allclose(result.error, errors[-1], rtol=self.error_rtol)
        assert result.n_iter == self.n_iter

    def test_one_in_memory_matrix_matches_the_dense_reference(self, data):
        X, mask, W0, H0 = data
        W_ref, H_ref, errors = self.reference(X, mask, W0, H0, self.n_iter)
        result = self.fit(X, W0, H0, chunks=None)
        np.testing.assert_allclose(np.asarray(result.W), W_ref, rtol=self.rtol, atol=1e-12)
        np.testing.assert_allclose(np.asarray(result.H), H_ref, rtol=self.rtol, atol=1e-12)
        np.testing.assert_allclose(result.error, errors[-1], rtol=self.error_rtol)

    def test_the_result_does_not_depend_on_the_tiling(self, data):
        X, _mask, W0, H0 = data
        one = self.fit(X, W0, H0, chunks=(M, N))
        for chunks in TILINGS[1:]:
            other = self.fit(X, W0, H0, chunks=chunks, in_memory=False)
            np.testing.assert_allclose(other.W.compute(), one.W.compute(), rtol=1e-10)
            np.testing.assert_allclose(other.H.compute(), one.H.compute(), rtol=1e-10)

    def test_the_loss_never_increases(self, data):
        X, _mask, W0, H0 = data
        seen = []
        self.fit(X, W0, H0, chunks=(10, 7), n_iter=30, callbacks=[seen.append])
        errors = np.array([info.error for info in seen])
        assert len(errors) == 30 and np.isfinite(errors).all()
        assert (np.diff(errors) <= 1e-9 * errors[:-1]).all(), errors
        assert errors[-1] < seen[0].error_at_init

    def test_transform_does_not_depend_on_the_tiling_and_lowers_the_error(self, data):
        X, mask, W0, H0 = data
        options = dict(max_iter=25, tol=0, check_every=5)
        one = self.build(X, in_memory=False, chunks=None).transform_w(H0, W0, **options)
        for chunks in [(10, 7), (13, 23)]:
            solver = self.build(X, in_memory=False, chunks=chunks)
            W = solver.transform_w(
                da.from_array(H0, chunks=(K, chunks[1])),
                da.from_array(W0, chunks=(chunks[0], K)),
                **options,
            )
            np.testing.assert_allclose(W.compute(), one, rtol=1e-9)
        assert self.error(X, mask, one, H0) < self.error(X, mask, W0, H0)

    @pytest.mark.parametrize("in_memory", [True, False], ids=["in-memory", "out-of-core"])
    # Slow: many column tiles ((10, 7) has several of each).
    @pytest.mark.parametrize(
        "chunks", [None, (10, 7), pytest.param((37, 2), marks=pytest.mark.slow)], ids=str
    )
    def test_stacked_replicates_are_the_single_fits(self, data, chunks, in_memory):
        """Replicates stacked side by side (a rank sweep) reach each single fit's
        factors, error and iteration count, also when they stop at different
        iterations and leave the stack."""
        if not getattr(get_solver(self.beta, self.solver, self.masked), "stackable", False):
            pytest.skip("this solver does not stack replicates")
        X, _mask, _W0, _H0 = data
        ranks = (K, 2, 3)
        starts = [make_factors(M, N, k, seed=10 + i) for i, k in enumerate(ranks)]
        stack = Stack(ranks)
        solver = self.build(X, in_memory=in_memory, chunks=chunks)
        W0 = np.hstack([w for w, _ in starts])
        H0 = np.vstack([h for _, h in starts])
        if chunks is not None:
            W0 = da.from_array(W0, chunks=(chunks[0], -1))
            H0 = da.from_array(H0, chunks=(-1, chunks[1]))
        options = dict(max_iter=40, tol=2e-3, check_every=5)
        stacked = run_stacked(lambda st: replace(solver, stack=st), W0, H0, stack, **options)
        iterations = set()
        for (w0, h0), k, got in zip(starts, ranks, stacked, strict=True):
            if chunks is not None:
                w0 = da.from_array(w0, chunks=(chunks[0], k))
                h0 = da.from_array(h0, chunks=(k, chunks[1]))
            alone = fit.run(solver, w0, h0, **options)
            assert (got.n_iter, got.converged) == (alone.n_iter, alone.converged)
            np.testing.assert_allclose(np.asarray(got.W), np.asarray(alone.W), rtol=1e-9)
            np.testing.assert_allclose(np.asarray(got.H), np.asarray(alone.H), rtol=1e-9)
            np.testing.assert_allclose(got.error, alone.error, rtol=1e-9)
            np.testing.assert_allclose(np.array(got.errors), np.array(alone.errors), rtol=1e-9)
            iterations.add(got.n_iter)
        assert len(iterations) > 1, "the replicates should stop at different iterations"

    def error(self, X, mask, W, H) -> float:
        """The loss in the solver's own units, densely."""
        return reference.masked_error(X, mask, W, H, self.beta)


def beta_mu_reference(V, mask, W0, H0, n_iter, *, beta):
    """β-divergence multiplicative updates over ``mask`` (all ones: the plain rule)."""
    return reference.masked_mu(V, mask, W0, H0, n_iter, beta=beta)
