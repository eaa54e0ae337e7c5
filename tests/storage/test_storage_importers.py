"""Importers: MatrixMarket, .npz and .npy files to stores."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from dasknmf.errors import InputFileNotFoundError, UnsupportedFormatError
from dasknmf.storage import ingest, open_matrix, read_matrix_file
from tests.storage.storage_testing import as_dense, random_sparse


@pytest.fixture
def X() -> sp.csr_matrix:
    return random_sparse(40, 25, 0.15, seed=7)


def test_mtx(tmp_path, X):
    scipy.io.mmwrite(tmp_path / "v.mtx", X)
    got = read_matrix_file(tmp_path / "v.mtx")
    assert isinstance(got, sp.csr_matrix)
    np.testing.assert_array_equal(got.toarray(), X.toarray())
    info = ingest(tmp_path / "v.mtx", tmp_path / "v.zarr", chunks=(16, 10))
    assert (info.format, info.shape, info.nnz, info.n_tiles) == ("sparse", (40, 25), X.nnz, (3, 3))
    np.testing.assert_array_equal(
        as_dense(open_matrix(tmp_path / "v.zarr").compute()), X.toarray()
    )


def test_mtx_gz_and_dense_array_format(tmp_path, X):
    scipy.io.mmwrite(tmp_path / "v.mtx", X)
    with gzip.open(tmp_path / "v.mtx.gz", "wb") as f:
        f.write((tmp_path / "v.mtx").read_bytes())
    np.testing.assert_array_equal(read_matrix_file(tmp_path / "v.mtx.gz").toarray(), X.toarray())
    scipy.io.mmwrite(tmp_path / "d.mtx", X.toarray())  # 'array' (dense) MatrixMarket
    got = read_matrix_file(tmp_path / "d.mtx")
    assert isinstance(got, np.ndarray)
    info = ingest(tmp_path / "d.mtx", tmp_path / "d.zarr", format="sparse", dtype="float32")
    assert (info.format, info.dtype, info.nnz) == ("sparse", np.float32, X.nnz)


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


def test_unknown_extension(tmp_path):
    # .csv is a triplet format now; .xls is no format at all.
    (tmp_path / "v.xls").write_text("1,2\n3,4\n")
    with pytest.raises(UnsupportedFormatError, match=r"v\.xls.*\.mtx.*\.npz.*\.npy.*\.csv"):
        read_matrix_file(tmp_path / "v.xls")
    with pytest.raises(UnsupportedFormatError, match=r"v\.xls"):
        ingest(tmp_path / "v.xls", tmp_path / "v.zarr")
    assert not (tmp_path / "v.zarr").exists()


@pytest.mark.parametrize("name", ["bad.mtx", "bad.npz", "bad.npy", "bad.mtx.gz"])
def test_garbage_content(tmp_path, name):
    (tmp_path / name).write_bytes(b"this is not a matrix\x00\xff" * 10)
    with pytest.raises(UnsupportedFormatError, match=name.replace(".", r"\.")):
        read_matrix_file(tmp_path / name)


def test_missing_file(tmp_path):
    with pytest.raises(InputFileNotFoundError, match=r"nope\.mtx") as info:
        read_matrix_file(tmp_path / "nope.mtx")
    assert isinstance(info.value, FileNotFoundError)
