"""The factor store: generations, the atomic pointer, what a crash leaves, refusals."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap

import dask.array as da
import numpy as np
import pytest

from dasknmf.errors import InvalidParameterError, NotAStoreError
from dasknmf.storage.factors import (
    POINTER,
    FactorStore,
    link_generation,
    open_generation,
    stored_source,
)


def generations(path) -> list[str]:
    return sorted(p for p in os.listdir(path) if p.endswith(".zarr"))


def test_a_committed_factor_reads_back_with_its_chunks(tmp_path):
    X = np.arange(30.0).reshape(10, 3)
    store = FactorStore(tmp_path / "W")
    W = store.put(da.from_array(X, chunks=(4, 3)))
    np.testing.assert_array_equal(W.compute(), X)
    assert W.chunks == ((4, 4, 2), (3,))
    pointer = json.loads((tmp_path / "W" / POINTER).read_text())
    assert pointer["generation"] == 1 and pointer["shape"] == [10, 3]
    again = FactorStore(tmp_path / "W").current()
    np.testing.assert_array_equal(again.compute(), X)


def test_a_loop_keeps_two_generations_and_a_kept_one_stays_readable(tmp_path):
    store = FactorStore(tmp_path / "W")
    W = store.put(da.ones((8, 2), chunks=(4, 2)))
    kept = None
    for it in range(1, 6):
        W = store.commit(store.write(W + 1), compute=True)
        gc.collect()
        assert len(generations(tmp_path / "W")) <= 2 + (kept is not None)
        if it == 2:
            kept = W  # as early stopping keeps its best iteration
    assert float(kept[0, 0].compute()) == 3.0
    assert float(W[0, 0].compute()) == 6.0
    del kept
    gc.collect()
    assert generations(tmp_path / "W") == [f"g{store.generation:08d}.zarr"]


def test_a_crash_while_writing_leaves_the_committed_generation(tmp_path):
    """A process killed in the middle of writing a generation (two blocks written,
    the third never) leaves the pointer on the old one, whole; the next store opened
    there removes the partial one."""
    path = tmp_path / "W"
    script = textwrap.dedent(
        f"""
        import os, dask, dask.array as da, numpy as np
        from dasknmf.storage.factors import FactorStore
        store = FactorStore({str(path)!r})
        store.put(da.full((12, 2), 7.0, chunks=(4, 2)))
        def block(i):
            if i == 2:
                os._exit(9)
            return np.full((4, 2), 8.0)
        blocks = [da.from_delayed(dask.delayed(block)(i), (4, 2), dtype=float) for i in range(3)]
        X = da.concatenate(blocks)
        with dask.config.set(scheduler="synchronous"):
            store.commit(store.write(X), compute=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    assert generations(path) == ["g00000001.zarr", "g00000002.zarr"]  # the partial one
    store = FactorStore(path)
    assert generations(path) == ["g00000001.zarr"]
    np.testing.assert_array_equal(store.current().compute(), np.full((12, 2), 7.0))


def test_a_temporary_store_is_removed_once_nothing_reads_it():
    store = FactorStore.temporary()
    root = store.path.parent
    W = store.put(da.ones((6, 2), chunks=(3, 2)))
    del store
    gc.collect()
    assert root.is_dir()  # W still reads it
    del W
    gc.collect()
    assert not root.exists()


def test_one_store_object_per_directory(tmp_path):
    assert FactorStore(tmp_path / "W") is FactorStore(tmp_path / "W")


def test_a_directory_of_the_users_is_refused_and_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(NotAStoreError, match="non-empty directory that no dasknmf fit wrote"):
        FactorStore(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotAStoreError, match="exists and is not a directory"):
        FactorStore(tmp_path / "file")


def test_a_url_is_refused():
    with pytest.raises(InvalidParameterError, match="local directory"):
        FactorStore("s3://bucket/W")


def test_irregular_blocks_are_refused_before_anything_is_written(tmp_path):
    store = FactorStore(tmp_path / "W")
    X = da.ones((10, 2), chunks=((3, 5, 2), (2,)))
    with pytest.raises(InvalidParameterError, match=r"axis 0 has blocks \(3, 5, 2\)"):
        store.write(X)
    assert generations(tmp_path / "W") == []


def test_a_damaged_pointer_is_named(tmp_path):
    (tmp_path / "W").mkdir()
    (tmp_path / "W" / POINTER).write_text("{not json")
    with pytest.raises(NotAStoreError, match=r"current\.json"):
        FactorStore(tmp_path / "W")


def test_a_generation_linked_elsewhere_shares_its_files_and_reads_back(tmp_path):
    store = FactorStore(tmp_path / "W")
    X = np.arange(30, dtype=np.float32).reshape(10, 3)
    X[:4] = 0  # a block of zeros is on disk too (a linked copy is checked by its chunks)
    W = store.put(X, chunks=(4, 3))
    source = stored_source(W)
    assert source == tmp_path / "W" / "g00000001.zarr"
    assert stored_source(da.from_array(X)) is None
    link_generation(source, tmp_path / "copy.zarr")
    for original in (p for p in source.rglob("*") if p.is_file()):
        linked = tmp_path / "copy.zarr" / original.relative_to(source)
        assert linked.stat().st_ino == original.stat().st_ino  # a link, not a copy
    np.testing.assert_array_equal(open_generation(tmp_path / "copy.zarr").compute(), X)
    next((tmp_path / "copy.zarr").rglob("c/1/*")).unlink()
    with pytest.raises(NotAStoreError, match=r"2 of its 3 chunks on disk"):
        open_generation(tmp_path / "copy.zarr")
