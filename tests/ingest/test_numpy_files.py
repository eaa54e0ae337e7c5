""".npz and .npy files (dasknmf.ingest.numpy_files)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf.errors import UnsupportedFormatError
from dasknmf.ingest import ingest, read_matrix_file
from dasknmf.storage import open_matrix
from tests.ingest.importer_testing import SMALL, ImporterTests, Sample
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


class TestNpzArray(ImporterTests):
    name = "npz"
    in_memory = True
    shape_in_header = True

    @pytest.fixture
    def sample(self, tmp_path):
        np.savez(tmp_path / "p.npz", values=SMALL.astype(np.float32))
        return Sample(tmp_path / "p.npz", SMALL)


class TestNpy(ImporterTests):
    name = "npy"
    foreign = "matrix.mtx"
    in_memory = True
    shape_in_header = True

    @pytest.fixture
    def sample(self, tmp_path):
        np.save(tmp_path / "v.npy", SMALL)
        return Sample(tmp_path / "v.npy", SMALL)


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
