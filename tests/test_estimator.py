"""The scikit-learn compatible estimator :class:`dasknmf.NMF`.

The scikit-learn contract (``estimator_checks``), agreement across input kinds and
tilings, dtypes, ``transform`` against scikit-learn's own multiplicative updates,
every initialisation against scikit-learn's, errors (class and message), and the
fit-loop parameters (``persist``, callbacks, ``verbose``, ``tol``/``check_every``).
"""

from __future__ import annotations

import inspect
import re
import warnings

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.decomposition import NMF as SklearnNMF
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_transformer_data_not_an_array,
    check_transformer_general,
    parametrize_with_checks,
)

import dasknmf
from dasknmf import NMF, IterationInfo
from dasknmf.errors import (
    InvalidInputError,
    InvalidParameterError,
    StoreNotFoundError,
)
from tests import reference
from tests.helpers import CHUNKINGS, make_factors, make_matrix

# -- the scikit-learn contract ---------------------------------------------------------

#: Both checks compare ``fit_transform(X)`` (W at the end of the fit) with
#: ``fit(X).transform(X)`` (W re-solved from a constant start with H fixed) at atol
#: 1e-2. Multiplicative updates converge too slowly for the two to meet on the check's
#: 30 × 3 data: scikit-learn's own NMF fails both with ``solver="mu"`` and passes only
#: with its default coordinate-descent solver; more iterations do not help
#: (``max_iter=2000, tol=1e-8`` still fails, for scikit-learn's MU as for ours). Proven
#: by ``test_transformer_checks_fail_for_sklearn_mu_too`` and
#: ``test_more_iterations_do_not_pass_the_transformer_checks`` below.
MU_TRANSFORM_REASON = (
    "MU converges too slowly for fit_transform(X) and transform(X) to agree to atol "
    "1e-2; scikit-learn's NMF(solver='mu') fails this check too"
)
EXPECTED_FAILED_CHECKS = {
    "check_transformer_general": MU_TRANSFORM_REASON,
    "check_transformer_data_not_an_array": MU_TRANSFORM_REASON,
}
# Skipped by scikit-learn itself, not listed here: check_array_api_input (runs only
# with SCIPY_ARRAY_API=1; dasknmf does not claim array-API support).


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(
    [NMF(max_iter=500)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
    xfail_strict=True,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def transformer_check_data() -> np.ndarray:
    """The data of ``check_transformer_general``, made non-negative as the check does
    for estimators tagged ``positive_only``."""
    X, _ = make_blobs(
        n_samples=30,
        centers=[[0, 0, 0], [1, 1, 1]],
        random_state=0,
        n_features=2,
        cluster_std=0.1,
    )
    X = StandardScaler().fit_transform(X)
    return X - X.min()


TRANSFORMER_CHECKS = [check_transformer_general, check_transformer_data_not_an_array]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("check", TRANSFORMER_CHECKS, ids=lambda c: c.__name__)
def test_transformer_checks_fail_for_sklearn_mu_too(check):
    with pytest.raises(AssertionError, match="fit_transform and transform outcomes not"):
        check("NMF", SklearnNMF(solver="mu", max_iter=500))
    check("NMF", SklearnNMF(max_iter=500))  # coordinate descent passes


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_transformer_check_gap_is_the_algorithms_not_ours():
    # Same data, same MU: our gap between fit_transform and transform is
    # scikit-learn's, to rounding, and above the check's 1e-2.
    X = transformer_check_data()
    gaps = []
    for model in (NMF(max_iter=500, random_state=0), SklearnNMF(solver="mu", max_iter=500)):
        W = model.fit_transform(X)
        gaps.append(np.abs(W - model.transform(X)).max())
    assert gaps[0] > 1e-2
    np.testing.assert_allclose(gaps[0], gaps[1], rtol=1e-6)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("check", TRANSFORMER_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "estimator",
    [NMF(max_iter=2000, tol=1e-8), SklearnNMF(solver="mu", max_iter=2000, tol=1e-8)],
    ids=["dasknmf", "sklearn-mu"],
)
def test_more_iterations_do_not_pass_the_transformer_checks(check, estimator):
    with pytest.raises(AssertionError, match="fit_transform and transform outcomes not"):
        check("NMF", estimator)


# -- input kinds and tilings -----------------------------------------------------------

INPUT_KINDS = ["numpy", "csr", "csc", "coo", "dask-dense", "dask-sparse", "store"]
LAZY_KINDS = {"dask-dense", "dask-sparse", "store"}


def as_input(X: sp.csr_matrix, kind: str, tmp_path, chunks=(7, 5)):
    """``X`` (CSR) as the given input kind; dask arrays and stores tiled by ``chunks``."""
    if kind == "numpy":
        return X.toarray()
    if kind in ("csr", "csc", "coo"):
        return X.asformat(kind)
    if kind == "dask-dense":
        return da.from_array(X.toarray(), chunks=chunks)
    if kind == "dask-sparse":
        return da.from_array(X, chunks=chunks, asarray=False)
    path = tmp_path / "x.zarr"
    dasknmf.write_matrix(X, path, chunks=chunks)
    return path


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_custom_init_agrees_with_dense_reference_for_every_input_kind(kind, tmp_path):
    X = make_matrix(37, 23)
    W0, H0 = make_factors(37, 23, 4)
    W_ref, H_ref, errors = reference.mu_frobenius(X, W0, H0, 30)
    model = NMF(4, init="custom", max_iter=30, tol=0)
    W = model.fit_transform(as_input(X, kind, tmp_path), W=W0, H=H0)
    if kind in LAZY_KINDS:
        assert isinstance(W, da.Array)
        assert W.chunks[0] == (7, 7, 7, 7, 7, 2)
        W = W.compute()
    else:
        assert type(W) is np.ndarray
    assert W.dtype == np.float64
    np.testing.assert_allclose(W, W_ref, rtol=1e-10)
    np.testing.assert_allclose(model.components_, H_ref, rtol=1e-10)
    np.testing.assert_allclose(model.reconstruction_err_, errors[-1], rtol=1e-10)


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_random_init_agrees_across_input_kinds(kind, tmp_path):
    X = make_matrix(37, 23)
    expected = NMF(4, init="random", random_state=3, max_iter=30, tol=0)
    W_expected = expected.fit_transform(X.toarray())
    model = NMF(4, init="random", random_state=3, max_iter=30, tol=0)
    W = np.asarray(model.fit_transform(as_input(X, kind, tmp_path)))
    np.testing.assert_allclose(W, W_expected, rtol=1e-10)
    np.testing.assert_allclose(model.components_, expected.components_, rtol=1e-10)
    np.testing.assert_allclose(model.reconstruction_err_, expected.reconstruction_err_, rtol=1e-12)
    # ... and the fit is a real one: its error is the dense reference's for its factors.
    err = reference.frobenius_error(X, W, model.components_)
    np.testing.assert_allclose(model.reconstruction_err_, err, rtol=1e-10)


@pytest.mark.parametrize("init", ["random", "nndsvda", "custom"])
@pytest.mark.parametrize("chunks", CHUNKINGS[1:], ids=lambda c: f"tiles{c[0]}x{c[1]}")
def test_result_is_independent_of_the_tiling(init, chunks):
    X = make_matrix(37, 23)
    W0, H0 = make_factors(37, 23, 4)
    factors = {"W": W0, "H": H0} if init == "custom" else {}
    results = []
    for tiling in [(37, 23), chunks]:
        model = NMF(4, init=init, random_state=5, max_iter=6, tol=0, chunks=tiling)
        results.append((model.fit_transform(X, **factors), model.components_))
    (W1, H1), (W2, H2) = results
    np.testing.assert_allclose(W2, W1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(H2, H1, rtol=1e-9, atol=1e-12)


def test_dask_input_is_rechunked_by_the_chunks_parameter():
    X = make_matrix(37, 23)
    X_dask = da.from_array(X, chunks=(37, 23), asarray=False)
    W = NMF(3, init="random", random_state=0, max_iter=5, tol=0, chunks=(10, 7)).fit_transform(
        X_dask
    )
    assert W.chunks == ((10, 10, 10, 7), (3,))


# -- dtypes and reproducibility --------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "dtype"),
    [
        (lambda X: X.toarray().astype(np.int64), np.float32),
        (lambda X: X.astype(np.int32), np.float32),
        (lambda X: da.from_array(X.toarray().astype(np.int64), chunks=(10, 7)), np.float32),
        (lambda X: X.toarray().astype(np.float32), np.float32),
        (lambda X: X.astype(np.float32), np.float32),
        (lambda X: X.toarray().astype(np.float16), np.float32),
        (lambda X: X.toarray(), np.float64),
        (lambda X: X, np.float64),
        (lambda X: da.from_array(X, chunks=(10, 7), asarray=False), np.float64),
        (lambda X: X.toarray().tolist(), np.float64),  # NumPy infers float64: kept
    ],
    ids=[
        "int64",
        "sparse-int32",
        "dask-int64",
        "float32",
        "sparse-float32",
        "float16",
        "float64",
        "sparse-float64",
        "dask-float64",
        "list-of-floats",
    ],
)
def test_dtype_is_float32_unless_the_input_is_float64(make, dtype):
    X = make_matrix(37, 23)
    X.data = np.ceil(X.data)  # integral values, so every dtype holds the same matrix
    model = NMF(4, init="random", random_state=0, max_iter=20, tol=0)
    W = model.fit_transform(make(X))
    assert W.dtype == dtype
    assert model.components_.dtype == dtype
    assert model.transform(make(X)).dtype == dtype
    reference_model = NMF(4, init="random", random_state=0, max_iter=20, tol=0).fit(X)
    rtol = 1e-10 if dtype == np.float64 else 1e-3
    np.testing.assert_allclose(
        model.reconstruction_err_, reference_model.reconstruction_err_, rtol=rtol
    )


def test_float32_fit_is_close_to_float64_fit():
    X = make_matrix(60, 40, density=0.3)
    W0, H0 = make_factors(60, 40, 5)
    m32 = NMF(5, init="custom", max_iter=50, tol=0)
    W32 = m32.fit_transform(X.astype(np.float32), W=W0, H=H0)
    W_ref, H_ref, errors = reference.mu_frobenius(X, W0, H0, 50)
    assert W32.dtype == np.float32 and isinstance(m32.reconstruction_err_, float)
    np.testing.assert_allclose(W32, W_ref, rtol=5e-3, atol=1e-5)
    np.testing.assert_allclose(m32.components_, H_ref, rtol=5e-3, atol=1e-5)
    np.testing.assert_allclose(m32.reconstruction_err_, errors[-1], rtol=1e-4)


@pytest.mark.filterwarnings("ignore:The multiplicative update:UserWarning")
@pytest.mark.parametrize("init", ["random", "nndsvd", "nndsvdar"])
def test_random_state_makes_results_reproducible(init):
    X = make_matrix(37, 23)

    def fit(random_state):
        model = NMF(4, init=init, random_state=random_state, max_iter=10, tol=0)
        return model.fit_transform(X), model.components_

    W1, H1 = fit(7)
    W2, H2 = fit(7)
    np.testing.assert_array_equal(W1, W2)
    np.testing.assert_array_equal(H1, H2)
    W3, H3 = fit(np.random.RandomState(7))
    W4, H4 = fit(np.random.RandomState(7))
    np.testing.assert_array_equal(W3, W4)
    np.testing.assert_array_equal(H3, H4)
    W5, _ = fit(8)
    assert np.abs(W5 - W1).max() > 1e-6


# -- transform and inverse_transform ---------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "dask_input"),
    [(None, False), ((7, 6), False), ((7, 30), True), ((25, 6), True)],
    ids=["one-tile", "tiles7x6", "dask-row-blocks", "dask-col-blocks"],
)
def test_transform_matches_sklearn_mu(chunks, dask_input):
    X = make_matrix(60, 30, density=0.3)
    X_new = make_matrix(25, 30, density=0.3, seed=5)
    W0, H0 = make_factors(60, 30, 4, seed=2)
    sk = SklearnNMF(4, solver="mu", init="custom", max_iter=200, tol=0)
    sk.fit(X, W=W0.copy(), H=H0.copy())
    ours = NMF(4, init="custom", max_iter=200, tol=0).fit(X, W=W0, H=H0)
    np.testing.assert_allclose(ours.components_, sk.components_, rtol=1e-9)
    # The tiles of X_new: its own for a dask array, else the `chunks` parameter.
    new = da.from_array(X_new, chunks=chunks, asarray=False) if dask_input else X_new
    ours.set_params(chunks=None if dask_input else chunks)
    W = ours.transform(new)
    assert isinstance(W, da.Array) if dask_input else type(W) is np.ndarray
    assert W.shape == (25, 4) and W.dtype == np.float64
    np.testing.assert_allclose(np.asarray(W), sk.transform(X_new), rtol=1e-9, atol=1e-12)


def test_transform_stops_per_row_block_close_to_sklearn():
    X = make_matrix(80, 40, density=0.5)
    X_new = make_matrix(40, 40, density=0.5, seed=5)
    W0, H0 = make_factors(80, 40, 8, seed=2)
    sk = SklearnNMF(8, solver="mu", init="custom", max_iter=1000, tol=1e-4)
    sk.fit(X, W=W0.copy(), H=H0.copy())
    W_sk = sk.transform(X_new)
    # One row block: the block's stopping rule is scikit-learn's, so W is the same.
    ours = NMF(8, init="custom", max_iter=1000, tol=1e-4).fit(X, W=W0, H=H0)
    np.testing.assert_allclose(ours.transform(X_new), W_sk, rtol=1e-9, atol=1e-12)
    # Blocks of 5 rows each stop on their own error: a different W, as good a fit.
    ours.set_params(chunks=(5, 40))
    W = ours.transform(X_new)
    assert np.linalg.norm(W - W_sk) / np.linalg.norm(W_sk) < 1e-2
    error = reference.frobenius_error(X_new, W, sk.components_)
    error_sk = reference.frobenius_error(X_new, W_sk, sk.components_)
    assert abs(error - error_sk) < 1e-3 * error_sk


def test_fit_transform_on_a_store_and_transform_of_a_store(tmp_path):
    X = make_matrix(37, 23)
    path = tmp_path / "x.zarr"
    dasknmf.write_matrix(X, path, chunks=(10, 7))
    model = NMF(3, init="random", random_state=1, max_iter=30, tol=0)
    W_fit = model.fit_transform(str(path))
    W = model.transform(path)
    assert isinstance(W, da.Array) and W.chunks[0] == (10, 10, 10, 7)
    np.testing.assert_allclose(W.compute(), model.transform(X.toarray()), rtol=1e-10)
    assert W_fit.shape == (37, 3)


@pytest.mark.parametrize("dask_input", [False, True])
def test_inverse_transform_is_w_times_components(dask_input):
    X = make_matrix(37, 23)
    model = NMF(4, init="random", random_state=0, max_iter=20, tol=0).fit(X)
    W = np.random.default_rng(3).random((11, 4))
    X_back = model.inverse_transform(da.from_array(W, chunks=(4, 4)) if dask_input else W)
    assert isinstance(X_back, da.Array) == dask_input
    assert X_back.shape == (11, 23)
    np.testing.assert_allclose(np.asarray(X_back), W @ model.components_, rtol=1e-12)


@pytest.mark.parametrize("dask_input", [False, True])
def test_inverse_transform_rejects_a_wrong_number_of_components(dask_input):
    model = NMF(4, init="random", random_state=0, max_iter=5, tol=0).fit(make_matrix(37, 23))
    W = np.ones((11, 3))
    W = da.from_array(W) if dask_input else W
    with pytest.raises(ValueError, match=re.escape("X has shape (11, 3), but NMF has 4 comp")):
        model.inverse_transform(W)


# -- initialisations against scikit-learn ----------------------------------------------


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore:The multiplicative update:UserWarning")
@pytest.mark.parametrize("init", ["random", "nndsvd", "nndsvda", "nndsvdar", "custom"])
def test_every_init_fits_as_well_as_sklearn(init):
    X = make_matrix(120, 80, density=0.3)
    W0, H0 = make_factors(120, 80, 6, seed=4)
    factors = {"W": W0, "H": H0} if init == "custom" else {}
    sk = SklearnNMF(6, solver="mu", init=init, random_state=0, max_iter=200)
    sk.fit(X, **{k: v.copy() for k, v in factors.items()})
    ours = NMF(6, init=init, random_state=0, max_iter=200).fit(X, **factors)
    assert abs(ours.reconstruction_err_ - sk.reconstruction_err_) < 0.05 * sk.reconstruction_err_
    err = reference.frobenius_error(X, ours.transform(X), ours.components_)
    assert err < 1.05 * sk.reconstruction_err_


def test_nndsvd_warns_that_mu_cannot_update_its_zeros():
    X = make_matrix(37, 23)
    with pytest.warns(UserWarning, match="cannot update zeros present in the init") as record:
        model = NMF(4, init="nndsvd", random_state=0, max_iter=10, tol=0).fit(X)
    assert len(record) == 1
    # ... which is true: H keeps the zeros of its initialisation.
    assert (model.components_ == 0).any()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        NMF(4, init="nndsvda", random_state=0, max_iter=10, tol=0).fit(X)


def test_default_init_is_nndsvda():
    X = make_matrix(37, 23)
    default = NMF(4, random_state=2, max_iter=20, tol=0).fit(X)
    explicit = NMF(4, init="nndsvda", random_state=2, max_iter=20, tol=0).fit(X)
    np.testing.assert_array_equal(default.components_, explicit.components_)


# -- fitted attributes -----------------------------------------------------------------


def test_fitted_attributes():
    X = make_matrix(37, 23)
    model = NMF(4, init="random", random_state=0, max_iter=15, tol=0)
    assert model.fit(X) is model
    assert model.components_.shape == (4, 23) and type(model.components_) is np.ndarray
    assert (model.components_ >= 0).all()
    assert model.n_components_ == 4
    assert model.n_features_in_ == 23
    assert model.n_iter_ == 15
    assert model.error_curve_[-1] == (15, model.reconstruction_err_)
    assert list(model.get_feature_names_out()) == ["nmf0", "nmf1", "nmf2", "nmf3"]


def test_n_components_defaults_to_min_shape_or_to_the_custom_factors():
    X = make_matrix(37, 23)
    assert NMF(max_iter=2, tol=0).fit(X).n_components_ == 23
    W0, H0 = make_factors(37, 23, 3)
    model = NMF(init="custom", max_iter=2, tol=0).fit(X, W=W0, H=H0)
    assert model.n_components_ == 3 and model.components_.shape == (3, 23)
    model = NMF(init="custom", max_iter=2, tol=0).fit(X, W=W0.tolist(), H=H0.tolist())
    assert model.n_components_ == 3


# -- errors ----------------------------------------------------------------------------


def small() -> np.ndarray:
    return make_matrix(6, 5, density=0.8, kind="dense")


@pytest.mark.parametrize(
    "wrap",
    [np.asarray, sp.csr_matrix, lambda X: da.from_array(X, (2, 2))],
    ids=["numpy", "csr", "dask"],
)
def test_negative_values_are_counted_and_located(wrap):
    X = small()
    X[1, 3], X[4, 0] = -1.0, -2.0
    msg = (
        "Negative values in data passed to NMF (X): 2 negative entries, the first at row 1, "
        "column 3."
    )
    with pytest.raises(InvalidInputError, match=re.escape(msg)):
        NMF(2).fit(wrap(X))
    model = NMF(2, max_iter=5, tol=0).fit(small())
    X = small()
    X[5, 2] = -0.5
    with pytest.raises(InvalidInputError, match=re.escape("1 negative entry, the first at row 5")):
        model.transform(wrap(X))


@pytest.mark.parametrize(
    "wrap",
    [np.asarray, sp.csr_matrix, lambda X: da.from_array(X, (2, 2))],
    ids=["numpy", "csr", "dask"],
)
def test_non_finite_values_are_counted_and_located(wrap):
    X = small()
    X[2, 4], X[5, 1] = np.nan, np.inf
    msg = "Input X contains 2 NaN or infinity value(s); the first is at row 2, column 4."
    with pytest.raises(InvalidInputError, match=re.escape(msg)):
        NMF(2).fit(wrap(X))


@pytest.mark.parametrize("shape", [(0, 5), (5, 0)])
def test_empty_numpy_matrix(shape):
    what = "0 sample(s)" if shape[0] == 0 else "0 feature(s)"
    with pytest.raises(ValueError, match=re.escape(f"Found array with {what} (shape={shape})")):
        NMF(1).fit(np.zeros(shape))


@pytest.mark.parametrize("shape", [(0, 5), (5, 0)])
def test_empty_dask_matrix(shape):
    msg = f"Found an empty matrix of shape {shape} in X: NMF needs at least one row"
    with pytest.raises(InvalidInputError, match=re.escape(msg)):
        NMF(1).fit(da.zeros(shape, chunks=(2, 2)))


@pytest.mark.parametrize("n_components", [6, 50])
def test_n_components_above_min_shape(n_components):
    msg = (
        "The 'n_components' parameter must be an int in [1, min(n_samples, n_features)] = "
        f"[1, 5] for X of shape (6, 5); got {n_components}."
    )
    with pytest.raises(InvalidParameterError, match=re.escape(msg)):
        NMF(n_components).fit(small())


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("n_components", 0, "an int in [1, inf] or None"),
        ("n_components", 2.5, "an int in [1, inf] or None"),
        ("init", "svd", "one of None, 'random', 'nndsvd', 'nndsvda', 'nndsvdar', 'custom'"),
        ("tol", -1.0, "a real number >= 0.0"),
        ("max_iter", -1, "an int in [0, inf]"),
        ("check_every", 0, "an int in [1, inf]"),
        ("chunks", (0, 3), "None or a pair of positive ints (rows, columns)"),
        ("chunks", 5, "None or a pair of positive ints (rows, columns)"),
        ("chunks", (2, 3, 4), "None or a pair of positive ints (rows, columns)"),
        ("persist", "yes", "one of 'auto', True, False"),
        ("persist", 1, "one of 'auto', True, False"),
        ("verbose", -1, "an int in [0, inf]"),
        ("random_state", -1, "None, an int >= 0, a numpy.random.RandomState or a numpy"),
        ("random_state", "seed", "None, an int >= 0, a numpy.random.RandomState or a numpy"),
    ],
)
def test_invalid_parameters(name, value, allowed):
    model = NMF(2).set_params(**{name: value})
    with pytest.raises(InvalidParameterError, match=re.escape(f"'{name}' parameter must be")) as e:
        model.fit(small())
    assert isinstance(e.value, ValueError)
    assert allowed in str(e.value) and str(e.value).endswith(f"; got {value!r}.")


def test_every_parameter_has_a_rule_and_every_rule_a_parameter():
    """The rule table (dasknmf.estimator.parameters) is complete, as dask's config
    schema is checked against its defaults."""
    from dasknmf.estimator.parameters import PARAMETER_RULES, UNCHECKED

    names = set(inspect.signature(NMF.__init__).parameters) - {"self"}
    assert set(PARAMETER_RULES) | set(UNCHECKED) == names
    assert not set(PARAMETER_RULES) & set(UNCHECKED)
    for name in PARAMETER_RULES:  # every default passes its own rule
        PARAMETER_RULES[name](name, NMF().get_params()[name])


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [("device", "tpu", "one of 'cpu', 'cuda'"), ("output", "torch", "one of 'numpy', 'cupy'")],
)
def test_device_parameters_are_checked_by_transform_too(name, value, allowed):
    model = NMF(2, max_iter=5).fit(small())
    model.set_params(**{name: value})
    with pytest.raises(InvalidParameterError, match=re.escape(allowed)):
        model.transform(small())


@pytest.mark.parametrize(
    ("W_shape", "H_shape", "msg"),
    [
        ((5, 2), (2, 5), "(input W): expected (6, 2), got (5, 2)."),
        ((6, 2), (2, 4), "(input H): expected (2, 5), got (2, 4)."),
        ((6, 3), (3, 5), "(input W): expected (6, 2), got (6, 3)."),
    ],
)
def test_custom_init_with_wrong_shapes(W_shape, H_shape, msg):
    rng = np.random.default_rng(0)
    W, H = rng.random(W_shape), rng.random(H_shape)
    with pytest.raises(InvalidParameterError, match=re.escape(msg)):
        NMF(2, init="custom").fit(small(), W=W, H=H)


@pytest.mark.parametrize("given", [{}, {"W": np.ones((6, 2))}, {"H": np.ones((2, 5))}])
def test_custom_init_without_both_factors(given):
    with pytest.raises(InvalidParameterError, match="init='custom' needs both W and H"):
        NMF(2, init="custom").fit(small(), **given)


def test_factors_with_another_init_warn_and_are_ignored():
    X = small()
    W0, H0 = make_factors(6, 5, 2)
    with pytest.warns(RuntimeWarning, match="When init!='custom', provided W or H are ignored"):
        W = NMF(2, init="random", random_state=0, max_iter=10, tol=0).fit_transform(X, W=W0, H=H0)
    np.testing.assert_array_equal(
        W, NMF(2, init="random", random_state=0, max_iter=10, tol=0).fit_transform(X)
    )


@pytest.mark.parametrize("dask_input", [False, True])
def test_transform_with_another_number_of_features(dask_input):
    model = NMF(2, max_iter=5, tol=0).fit(small())
    X = np.ones((3, 4))
    with pytest.raises(ValueError, match="X has 4 features, but NMF is expecting 5 features"):
        model.transform(da.from_array(X) if dask_input else X)


@pytest.mark.parametrize("method", ["transform", "inverse_transform"])
def test_use_before_fit(method):
    with pytest.raises(NotFittedError, match="This NMF instance is not fitted yet"):
        getattr(NMF(2), method)(small())


def test_missing_store(tmp_path):
    path = tmp_path / "missing.zarr"
    with pytest.raises(StoreNotFoundError, match=re.escape(f"no matrix store at '{path}'")):
        NMF(2).fit(str(path))


# -- nothing the user owns is modified -------------------------------------------------


@pytest.mark.parametrize("kind", ["numpy", "csr", "csc", "coo"])
@pytest.mark.parametrize("chunks", [None, (7, 5)], ids=["one-tile", "tiles7x5"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inputs_and_custom_factors_are_not_modified(kind, chunks, dtype, tmp_path):
    X = as_input(make_matrix(37, 23, dtype=dtype), kind, tmp_path)
    W0, H0 = make_factors(37, 23, 4, dtype=dtype)
    X_copy, W_copy, H_copy = X.copy(), W0.copy(), H0.copy()
    model = NMF(4, init="custom", max_iter=3, tol=0, chunks=chunks)
    model.fit(X, W=W0, H=H0)
    model.transform(X)
    assert type(X) is type(X_copy)
    if sp.issparse(X):
        assert X.format == X_copy.format
        X, X_copy = X.toarray(), X_copy.toarray()
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(W0, W_copy)
    np.testing.assert_array_equal(H0, H_copy)


# -- persist ---------------------------------------------------------------------------


def test_persist_choices_give_identical_results():
    X = da.from_array(make_matrix(37, 23), chunks=(10, 7), asarray=False)
    results = {}
    for persist in [True, False, "auto"]:
        model = NMF(4, init="random", random_state=0, max_iter=20, tol=0, persist=persist)
        results[persist] = (model.fit_transform(X).compute(), model.components_)
        assert model.persisted_ is (persist is not False)  # "auto": tiny, so persisted
    for persist in [False, "auto"]:
        np.testing.assert_array_equal(results[persist][0], results[True][0])
        np.testing.assert_array_equal(results[persist][1], results[True][1])


def test_persist_auto_stays_out_of_core_without_memory(monkeypatch):
    monkeypatch.setattr("dasknmf.estimator.placement.available_memory", lambda: 1000)
    X = make_matrix(37, 23)
    model = NMF(4, init="random", random_state=0, max_iter=5, tol=0).fit(X)
    assert model.persisted_ is False


# -- callbacks, verbose, stopping ------------------------------------------------------


def test_callbacks_see_every_iteration():
    infos: list[IterationInfo] = []
    model = NMF(3, init="random", random_state=0, max_iter=12, tol=0, callbacks=[infos.append])
    model.fit(make_matrix(37, 23, density=0.3))
    assert all(isinstance(info, IterationInfo) for info in infos)
    assert [info.iteration for info in infos] == list(range(1, 13))
    assert [(info.iteration, info.error) for info in infos] == model.error_curve_
    assert infos[-1].error == model.reconstruction_err_
    assert all(info.error_at_init == infos[0].error_at_init for info in infos)
    assert infos[0].error_at_init > infos[0].error
    np.testing.assert_allclose(np.asarray(infos[-1].H), model.components_)


def test_verbose_prints_one_line_per_iteration(capsys):
    model = NMF(3, init="random", random_state=0, max_iter=7, tol=0, verbose=1)
    model.fit(make_matrix(37, 23, density=0.3))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7
    for line, (iteration, error) in zip(lines, model.error_curve_, strict=True):
        assert line.startswith(f"iter {iteration:5d}  error {error:.6e}  relative ")


def test_no_output_without_verbose(capsys):
    NMF(3, init="random", random_state=0, max_iter=7, tol=0).fit(make_matrix(37, 23))
    assert capsys.readouterr().out == ""


def test_tol_stops_at_a_check_by_sklearns_rule():
    rng = np.random.default_rng(0)
    X = rng.random((50, 3)) @ rng.random((3, 30))  # exactly rank 3: easy
    infos: list[IterationInfo] = []
    tol, every = 1e-3, 7
    model = NMF(
        3,
        init="random",
        random_state=0,
        max_iter=500,
        tol=tol,
        check_every=every,
        callbacks=[infos.append],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model.fit(X)
    assert model.n_iter_ < 500 and model.n_iter_ % every == 0
    assert len(infos) == model.n_iter_
    checks = [info.error for info in infos if info.iteration % every == 0]
    decreases = -np.diff([infos[0].error_at_init] + checks) / infos[0].error_at_init
    assert (decreases[:-1] >= tol).all() and decreases[-1] < tol


def test_without_callbacks_the_error_is_computed_only_at_checks():
    model = NMF(3, init="random", random_state=0, max_iter=25, tol=1e-12, check_every=10)
    with pytest.warns(ConvergenceWarning, match="Maximum number of iterations 25 reached"):
        model.fit(make_matrix(37, 23))
    assert [it for it, _ in model.error_curve_] == [10, 20, 25]
    assert model.n_iter_ == 25


def test_no_convergence_warning_with_tol_zero():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = NMF(3, init="random", random_state=0, max_iter=15, tol=0).fit(make_matrix(37, 23))
    assert model.n_iter_ == 15


def test_max_iter_zero_returns_the_initialisation():
    X = make_matrix(37, 23)
    W0, H0 = make_factors(37, 23, 4)
    model = NMF(4, init="custom", max_iter=0)
    W = model.fit_transform(X, W=W0, H=H0)
    assert model.n_iter_ == 0
    np.testing.assert_array_equal(W, W0)
    np.testing.assert_array_equal(model.components_, H0)
    np.testing.assert_allclose(
        model.reconstruction_err_, reference.frobenius_error(X, W0, H0), rtol=1e-10
    )


# -- parameters ------------------------------------------------------------------------


def test_get_params_set_params_clone_round_trip():
    callbacks = [print]
    model = NMF(3, init="random", tol=0.5, chunks=(4, 4), persist=False, callbacks=callbacks)
    params = model.get_params()
    assert params == {
        "n_components": 3,
        "init": "random",
        "n_init": 1,
        "max_iter": 200,
        "tol": 0.5,
        "random_state": None,
        "check_every": 10,
        "chunks": (4, 4),
        "persist": False,
        "factors": "auto",
        "factor_store": None,
        "callbacks": callbacks,
        "verbose": 0,
        "alpha_W": 0.0,
        "alpha_H": "same",
        "l1_ratio": 0.0,
        "alpha_weighted": 0.0,
        "solver": "auto",
        "beta_loss": "frobenius",
        "missing": None,
        "validation": None,
        "clip": True,
        "device": "cpu",
        "output": "numpy",
    }
    assert model.set_params(max_iter=7, random_state=1, tol=0.0) is model
    assert (model.max_iter, model.random_state, model.tol) == (7, 1, 0.0)
    model.fit(make_matrix(37, 23))
    cloned = clone(model)
    assert cloned.get_params() == model.get_params()
    assert not hasattr(cloned, "components_")
    assert NMF(**params).get_params() == params
    with pytest.raises(ValueError, match="Invalid parameter 'alpha' for estimator NMF"):
        model.set_params(alpha=1.0)


def test_warnings_point_at_the_callers_line():
    X = make_matrix(20, 10)
    for method in ("fit", "fit_transform"):
        with pytest.warns(ConvergenceWarning) as record:
            getattr(NMF(3, init="random", max_iter=2, random_state=0), method)(X)
        assert record[0].filename == __file__, method


@pytest.mark.parametrize(
    "param, value, allowed",
    [
        ("alpha_W", -0.1, r"a real number >= 0.0"),
        ("alpha_H", -1.0, r"a real number >= 0.0"),
        ("alpha_H", "other", r"a real number >= 0.0"),
        ("l1_ratio", 1.5, r"a real number in \[0.0, 1.0\]"),
    ],
)
def test_invalid_regularisation(param, value, allowed):
    with pytest.raises(InvalidParameterError, match=rf"'{param}' parameter must be {allowed}"):
        NMF(2, **{param: value}).fit(make_matrix(10, 6))


def test_works_inside_a_pipeline():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer

    X = make_matrix(40, 25, density=0.3)
    pipe = make_pipeline(NMF(4, init="random", random_state=0, max_iter=50, tol=0), Normalizer())
    out = pipe.fit_transform(X)
    W = NMF(4, init="random", random_state=0, max_iter=50, tol=0).fit_transform(X)
    np.testing.assert_allclose(out, W / np.linalg.norm(W, axis=1, keepdims=True), rtol=1e-6)
    assert list(pipe.get_feature_names_out()) == [f"nmf{i}" for i in range(4)]


def test_custom_factors_of_another_dtype_are_cast_to_the_inputs_dtype():
    """Documented (README, fit's docstring): scikit-learn raises TypeError instead."""
    X = small().astype(np.float32)
    rng = np.random.default_rng(0)
    W0, H0 = rng.random((X.shape[0], 2)), rng.random((2, X.shape[1]))  # float64
    model = NMF(2, init="custom", max_iter=3, tol=0)
    W = model.fit_transform(X, W=W0, H=H0)
    assert W.dtype == np.float32 and model.components_.dtype == np.float32


@pytest.mark.parametrize("init", ["random", "custom", "nndsvda"])
def test_a_rank_above_min_m_n_is_refused_for_every_init(init):
    """Documented (README, n_components): scikit-learn takes it for random and custom."""
    X = small()
    k = min(X.shape) + 1
    rng = np.random.default_rng(0)
    factors = {"W": rng.random((X.shape[0], k)), "H": rng.random((k, X.shape[1]))}
    with pytest.raises(InvalidParameterError, match=r"must be an int in \[1, min"):
        NMF(k, init=init).fit(X, **(factors if init == "custom" else {}))
