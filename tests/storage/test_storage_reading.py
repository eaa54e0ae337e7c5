"""Lazy opening, single-tile reads, store metadata and distributed reading."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf.errors import CorruptStoreError
from dasknmf.storage import matrix_info, open_matrix, write_matrix
from dasknmf.storage.dense import DenseTileSource
from dasknmf.storage.sparse import SparseTileSource
from tests.storage.storage_testing import as_dense, random_sparse


@pytest.fixture
def store(tmp_path):
    X = random_sparse(400, 90, 0.05, seed=3)
    path = tmp_path / "v.zarr"
    write_matrix(X, path, chunks=(50, 40))
    return path, X


def test_open_reads_no_tile(store, monkeypatch):
    path, _ = store
    calls = []
    monkeypatch.setattr(SparseTileSource, "read", lambda self, *a: calls.append(a[1:3]))
    V = open_matrix(path)
    assert V.numblocks == (8, 3)
    assert calls == []


def test_open_does_not_touch_bulk_arrays(store):
    path, X = store
    # Without their chunks, opening still works: only metadata and the tile index are read.
    for name in ("data", "indices", "indptr"):
        shutil.rmtree(path / name / "c")
    V = open_matrix(path)
    assert V.shape == X.shape
    with pytest.raises(CorruptStoreError, match=r"tile \(0, 0\)"):
        V.blocks[0, 0].compute()


def test_single_tile_read_reads_only_that_tile(store, monkeypatch):
    path, X = store
    seen = []
    original = SparseTileSource.read

    def spy(self, arrays, i, j, *locator):
        seen.append((i, j))
        return original(self, arrays, i, j, *locator)

    monkeypatch.setattr(SparseTileSource, "read", spy)
    tile = open_matrix(path).blocks[3, 1].compute()
    assert seen == [(3, 1)]
    assert isinstance(tile, sp.csr_matrix)
    np.testing.assert_array_equal(tile.toarray(), X[150:200, 40:80].toarray())


def test_graph_is_small_and_picklable(store):
    path, _ = store
    V = open_matrix(path)
    graph = dict(V.__dask_graph__())
    assert len(graph) == 24
    # One shared tile source; no open zarr arrays in the graph.
    payload = pickle.dumps(graph)
    assert len(payload) < 20_000
    assert b"zarr.core" not in payload and b"zarr.storage" not in payload


def test_rewritten_store_gets_new_keys(store):
    path, X = store
    V1 = open_matrix(path)
    write_matrix(2 * X, path, chunks=(50, 40), overwrite=True)
    V2 = open_matrix(path)
    assert V1.name != V2.name
    np.testing.assert_array_equal(as_dense(V2.compute()), 2 * X.toarray())
    # The stale graph refuses to read the replaced store rather than mixing contents.
    with pytest.raises(CorruptStoreError, match="replaced"):
        V1.compute()


def test_matrix_info(store):
    path, X = store
    info = matrix_info(path)
    assert info.path == str(path)
    assert info.format == "sparse"
    assert info.shape == (400, 90)
    assert info.dtype == np.float64
    assert info.nnz == X.nnz
    assert info.density == pytest.approx(X.nnz / (400 * 90))
    assert info.tile_shape == (50, 40)
    assert info.n_tiles == (8, 3)
    assert info.bytes_on_disk > 0
    assert info.format_version == 1
    text = str(info)
    for piece in ("sparse", "400 x 90", "float64", f"{X.nnz:,}", "8 x 3", "50 x 40"):
        assert piece in text
    assert len(text.splitlines()) >= 6
    with pytest.raises(AttributeError):
        info.nnz = 0  # frozen


def test_matrix_info_dense_counts_nonzeros(tmp_path):
    X = np.array([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0]], dtype=np.float32)
    write_matrix(X, tmp_path / "d", chunks=(1, 2))
    info = matrix_info(tmp_path / "d")
    assert (info.format, info.nnz, info.n_tiles, info.dtype) == ("dense", 3, (2, 2), np.float32)
    assert info.density == pytest.approx(0.5)


def test_dense_tile_source_reads_one_tile(tmp_path, monkeypatch):
    X = np.arange(48.0).reshape(8, 6)
    write_matrix(X, tmp_path / "d", chunks=(3, 4))
    seen = []
    original = DenseTileSource.read

    def spy(self, arrays, i, j, *locator):
        seen.append((i, j))
        return original(self, arrays, i, j, *locator)

    monkeypatch.setattr(DenseTileSource, "read", spy)
    V = open_matrix(tmp_path / "d")
    assert seen == []
    np.testing.assert_array_equal(V.blocks[2, 1].compute(), X[6:, 4:])
    assert seen == [(2, 1)]


def _tile_times_vector(tile, w, block_info=None):
    c0, c1 = block_info[0]["array-location"][1]
    return np.asarray(tile @ w[c0:c1]).reshape(-1, 1)


def test_distributed_workers_read_tiles(tmp_path):
    distributed = pytest.importorskip("distributed")
    X = random_sparse(300, 50, 0.1, seed=4)
    write_matrix(X, tmp_path / "s", chunks=(40, 25))
    write_matrix(X.toarray(), tmp_path / "d", chunks=(40, 25))
    w = np.linspace(0.0, 1.0, 50)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        for name in ("s", "d"):
            V = open_matrix(tmp_path / name)
            # Sparse chunks do not support dask's reductions; per-tile kernels do.
            products = V.map_blocks(
                _tile_times_vector,
                w,
                chunks=(V.chunks[0], (1,) * V.numblocks[1]),
                meta=np.empty((0, 0)),
            )
            got = client.compute(products.sum(axis=1)).result()
            np.testing.assert_allclose(got, X @ w)
        workers = client.run(lambda: 1)
        assert len(workers) == 2
