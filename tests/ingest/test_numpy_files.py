""".npz and .npy files (dasknmf.ingest.numpy_files)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf.errors import InvalidInputError, UnsupportedFormatError
from dasknmf.ingest import ingest, read_matrix_file
from dasknmf.storage import open_matrix
from tests.ingest.importer_testing import INVALID, SMALL, ImporterTests, Sample
from tests.storage.storage_testing import random_sparse


@pytest.fixture
def X() -> sp.csr_matrix:
    return random_sparse(40, 25, 0.15, seed=7)


class TestNpzSparse(ImporterTests):
    name = "npz"
    in_memory = True
    shape_in_header = True

    @pytest.fixture
    def sample(self, tmp_path):
        sp.save_npz(tmp_path / "s.npz", sp.csc_matrix(SMALL))
        return Sample(tmp_path / "s.npz", SMALL)

    @pytest.fixture
    def invalid(self, tmp_path):
        sp.save_npz(tmp_path / "bad.npz", sp.csc_matrix(INVALID))
        return Sample(tmp_path / "bad.npz", INVALID)


class TestNpzArray(ImporterTests):
    name = "npz"
    in_memory = True
    shape_in_header = True

    @pytest.fixture
    def sample(self, tmp_path):
        np.savez(tmp_path / "p.npz", values=SMALL.astype(np.float32))
        return Sample(tmp_path / "p.npz", SMALL)

    @pytest.fixture
    def invalid(self, tmp_path):
        np.savez(tmp_path / "bad.npz", values=INVALID.astype(np.float32))
        return Sample(tmp_path / "bad.npz", INVALID)


class TestNpy(ImporterTests):
    name = "npy"
    foreign = "matrix.mtx"
    in_memory = True
    shape_in_header = True

    @pytest.fixture
    def sample(self, tmp_path):
        np.save(tmp_path / "v.npy", SMALL)
        return Sample(tmp_path / "v.npy", SMALL)

    @pytest.fixture
    def invalid(self, tmp_path):
        np.save(tmp_path / "bad.npy", INVALID)
        return Sample(tmp_path / "bad.npy", INVALID)


def test_npz_sparse_and_plain(tmp_path, X):
    sp.save_npz(tmp_path / "s.npz", X.tocsc())
    got = read_matrix_file(tmp_path / "s.npz")
    assert isinstance(got, sp.csr_matrix)
    info = ingest(tmp_path / "s.npz", tmp_path / "s.zarr")
    assert info.format == "sparse" and info.nnz == X.nnz
    np.savez(tmp_path / "p.npz", values=X.toarray())
    info = ingest(tmp_path / "p.npz", tmp_path / "p.zarr", chunks=(8, 25))
    assert info.format == "dense" and info.n_tiles == (5, 1)
    np.testing.assert_array_equal(open_matrix(tmp_path / "p.zarr").compute(), X.toarray())


def test_npz_with_several_arrays_rejected(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.ones((2, 2)), b=np.zeros((2, 2)))
    with pytest.raises(UnsupportedFormatError, match=r"two\.npz"):
        read_matrix_file(tmp_path / "two.npz")


def test_npy_is_memory_mapped_and_streamed(tmp_path, X):
    np.save(tmp_path / "v.npy", X.toarray().astype(np.float32))
    got = read_matrix_file(tmp_path / "v.npy")
    assert isinstance(got, np.memmap)
    info = ingest(tmp_path / "v.npy", tmp_path / "v.zarr", chunks=(16, 25))
    assert (info.format, info.dtype, info.n_tiles) == ("dense", np.float32, (3, 1))
    expected = X.toarray().astype(np.float32)
    np.testing.assert_array_equal(open_matrix(tmp_path / "v.zarr").compute(), expected)
    info = ingest(tmp_path / "v.npy", tmp_path / "s.zarr", format="sparse")
    assert info.nnz == X.nnz


def test_npy_invalid_values_found_block_by_block(tmp_path, monkeypatch, capsys):
    """Issue: such a file used to become a store, refused only at fit time. A dense
    matrix is checked a block of rows at a time (here 3 rows): the count spans every
    block, the place is the first in row order; NaN (a missing entry) is kept."""
    from dasknmf.cli import EXIT_OK, EXIT_USAGE, main
    from dasknmf.ingest import values

    monkeypatch.setattr(values, "BLOCK_VALUES", 3 * 25)
    V = np.abs(random_sparse(40, 25, 0.3, seed=3).toarray())
    V[0, 7] = np.nan  # missing: kept
    V[17, 3], V[17, 1], V[30, 0], V[39, 24] = -1.0, -np.inf, -0.5, np.inf
    np.save(tmp_path / "v.npy", V)
    dst = tmp_path / "v.zarr"
    with pytest.raises(InvalidInputError) as info:
        ingest(tmp_path / "v.npy", dst)
    assert str(info.value).startswith(
        f"{str(tmp_path / 'v.npy')!r}, row 17, column 1 (counted from 0): the value -inf is "
        "infinite (4 such value(s) in the file); NMF needs finite non-negative values "
        "(NaN marks a missing entry of a dense matrix)."
    )
    assert not dst.exists()
    assert main(["ingest", str(tmp_path / "v.npy"), str(dst)]) == EXIT_USAGE
    assert "row 17, column 1 (counted from 0)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.npy"]
    assert main(["ingest", str(tmp_path / "v.npy"), str(dst), "--keep-invalid"]) == EXIT_OK
    np.testing.assert_array_equal(open_matrix(dst).compute(), V)  # NaN in place too
    # Without an invalid value the NaN alone pass: a matrix with missing entries.
    V[V < 0], V[np.isinf(V)] = 0.0, 0.0
    np.save(tmp_path / "ok.npy", V)
    assert ingest(tmp_path / "ok.npy", tmp_path / "ok.zarr").shape == (40, 25)


def test_sparse_npz_nan_is_refused_with_its_position(tmp_path):
    X = sp.csr_matrix(SMALL)
    X.data[4] = np.nan  # the entry (2, 2)
    sp.save_npz(tmp_path / "s.npz", X)
    with pytest.raises(
        InvalidInputError,
        match=r"row 2, column 2 \(counted from 0\): the value nan is NaN \(1 such",
    ):
        ingest(tmp_path / "s.npz", tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()
