"""Overwrite rules and crash safety of write_matrix."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf.errors import NotAStoreError, StoreExistsError
from dasknmf.storage import atomic, matrix_info, open_matrix, write_matrix
from tests.storage.storage_testing import as_dense, random_sparse


class Boom(RuntimeError):
    pass


def _raise_on_block(block, block_info=None):
    if block_info[0]["chunk-location"] == (2, 0):
        raise Boom("failure while computing block (2, 0)")
    return sp.csr_matrix(block)


def _failing_dask_matrix() -> da.Array:
    X = np.arange(1.0, 81.0).reshape(20, 4)
    return da.from_array(X, chunks=(4, 4)).map_blocks(_raise_on_block, meta=sp.csr_matrix((0, 0)))


def _snapshot(directory) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def old_store(tmp_path):
    X = random_sparse(20, 4, 0.5, seed=6)
    path = tmp_path / "v.zarr"
    write_matrix(X, path, chunks=(4, 4))
    return path, X


def test_existing_store_not_overwritten_by_default(old_store):
    path, X = old_store
    before = _snapshot(path)
    with pytest.raises(StoreExistsError, match=r"v\.zarr") as info:
        write_matrix(np.ones((3, 3)), path)
    assert "overwrite=True" in str(info.value)
    assert isinstance(info.value, FileExistsError)
    assert _snapshot(path) == before
    np.testing.assert_array_equal(as_dense(open_matrix(path).compute()), X.toarray())


def test_overwrite_replaces(old_store):
    path, _ = old_store
    write_matrix(np.full((3, 5), 2.0), path, overwrite=True)
    info = matrix_info(path)
    assert (info.format, info.shape, info.nnz) == ("dense", (3, 5), 15)
    np.testing.assert_array_equal(open_matrix(path).compute(), np.full((3, 5), 2.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["v.zarr"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_non_store_directory_never_replaced(tmp_path, overwrite):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "thesis.tex").write_text("years of work")
    (target / "sub").mkdir()
    (target / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = _snapshot(target)
    expected = NotAStoreError if overwrite else StoreExistsError
    with pytest.raises(expected, match="precious"):
        write_matrix(np.ones((3, 3)), target, overwrite=overwrite)
    assert _snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious"]


def test_non_store_file_never_replaced(tmp_path):
    target = tmp_path / "matrix.zarr"
    target.write_text("not a store")
    with pytest.raises(NotAStoreError):
        write_matrix(np.ones((3, 3)), target, overwrite=True)
    assert target.read_text() == "not a store"


def test_empty_directory_is_taken_over(tmp_path):
    (tmp_path / "empty").mkdir()
    write_matrix(np.eye(3), tmp_path / "empty")
    assert matrix_info(tmp_path / "empty").nnz == 3


def test_parent_directories_created(tmp_path):
    write_matrix(np.eye(3), tmp_path / "a" / "b" / "v.zarr")
    assert open_matrix(tmp_path / "a" / "b" / "v.zarr").shape == (3, 3)


def test_crash_midway_keeps_old_store(old_store):
    path, X = old_store
    before = _snapshot(path)
    with pytest.raises(Boom):
        write_matrix(_failing_dask_matrix(), path, chunks=(4, 4), overwrite=True)
    assert _snapshot(path) == before
    np.testing.assert_array_equal(as_dense(open_matrix(path).compute()), X.toarray())
    assert sorted(p.name for p in path.parent.iterdir()) == ["v.zarr"]


def test_crash_on_new_path_leaves_nothing(tmp_path):
    with pytest.raises(Boom):
        write_matrix(_failing_dask_matrix(), tmp_path / "new.zarr", chunks=(4, 4))
    assert list(tmp_path.iterdir()) == []


def test_overwrite_without_atomic_exchange(old_store, monkeypatch):
    # Other OSes / file systems: the two-rename fallback must give the same result.
    path, _ = old_store
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    write_matrix(np.ones((2, 2)), path, overwrite=True)
    np.testing.assert_array_equal(open_matrix(path).compute(), np.ones((2, 2)))
    assert sorted(p.name for p in path.parent.iterdir()) == ["v.zarr"]


def test_url_store_overwrite_rules_and_crash():
    url = "memory://dasknmf-tests/atomic"
    write_matrix(np.eye(4), url)
    with pytest.raises(StoreExistsError):
        write_matrix(np.ones((4, 4)), url)
    np.testing.assert_array_equal(open_matrix(url).compute(scheduler="threads"), np.eye(4))
    # Without atomic renames an interrupted write loses the old store, but never
    # leaves a store that opens as if it were complete.
    with pytest.raises(Boom):
        write_matrix(_failing_dask_matrix(), url, chunks=(4, 4), overwrite=True)
    with pytest.raises((FileNotFoundError, ValueError)):
        open_matrix(url)


_KILL_SCRIPT = """
import sys, time, pathlib
import numpy as np, dask.array as da
from dasknmf.storage import write_matrix

flag = pathlib.Path(sys.argv[2])

def slow(block, block_info=None):
    if block_info[0]["chunk-location"][0] >= 2:
        flag.touch()  # tiles are being written: the parent kills us now
        time.sleep(60)
    return block

X = da.ones((40, 4), chunks=(4, 4)).map_blocks(slow, dtype=float)
write_matrix(X, sys.argv[1], chunks=(4, 4), overwrite=True)
"""


def test_killed_writer_keeps_old_store(old_store, tmp_path_factory):
    import signal
    import subprocess
    import sys
    import time

    path, X = old_store
    flag = tmp_path_factory.mktemp("flag") / "started"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(path), str(flag)])
    try:
        deadline = time.monotonic() + 30
        while not flag.exists():
            assert proc.poll() is None, "writer exited before it was killed"
            assert time.monotonic() < deadline, "writer never started writing"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    np.testing.assert_array_equal(as_dense(open_matrix(path).compute()), X.toarray())
    # What a kill leaves behind is a hidden temporary sibling, never a broken `path`.
    leftovers = [p.name for p in path.parent.iterdir() if p.name != "v.zarr"]
    assert all(name.startswith(".v.zarr.dasknmf-tmp-") for name in leftovers)
