"""AnnData files (.h5ad, AnnData .zarr in zarr v2 and v3) ingested into stores.

The reference files are written by the ``anndata`` package itself (an independent
writer; the tests that need it are skipped without it); dasknmf reads them with
h5py / zarr only. Every store is compared with ``adata.X`` (or the layer) and its ids
with ``obs_names`` / ``var_names``. The conformance sample is written with h5py by
hand, after anndata's on-disk specification.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
import zarr

from dasknmf.cli import EXIT_USAGE, main
from dasknmf.errors import (
    InputFileNotFoundError,
    InvalidInputError,
    InvalidParameterError,
    MissingDependencyError,
    StoreExistsError,
    UnsupportedFormatError,
)
from dasknmf.ingest import ingest, ingest_anndata, read_matrix_file
from dasknmf.storage import matrix_info, open_matrix, read_ids, write_matrix
from tests.ingest.importer_testing import INVALID, SMALL, ImporterTests, Sample

try:
    import anndata as ad
    import pandas as pd
except ImportError:
    ad = pd = None

# Where an AnnData file is written: .h5ad, or zarr directories in both zarr formats.
CONTAINERS = ["h5ad", "zarr2", "zarr3"]


# -- helpers ---------------------------------------------------------------------------


def counts(m: int = 57, n: int = 23, seed: int = 0) -> sp.csr_matrix:
    """Integer counts 1..10 in float32, density 0.2, with an empty row and column."""
    rng = np.random.default_rng(seed)
    X = sp.random(m, n, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    X.data = np.floor(X.data * 10).astype(np.float32) + 1
    X = X.tolil()
    X[5, :] = 0
    X[:, 3] = 0
    return X.tocsr()


def annotated(X, **layers) -> ad.AnnData:
    if ad is None:
        pytest.skip("needs the anndata package, the independent writer of the files")
    m, n = X.shape if X is not None else next(iter(layers.values())).shape
    adata = ad.AnnData(
        X=X,
        obs=pd.DataFrame(index=[f"cell-{i}" for i in range(m)]),
        var=pd.DataFrame(index=[f"gene-{j}" for j in range(n)]),
    )
    for name, value in layers.items():
        adata.layers[name] = value
    return adata


def write(adata: ad.AnnData, path: Path, container: str = "h5ad") -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata's notes on zarr formats and the like
        if container == "h5ad":
            adata.write_h5ad(path)
        elif hasattr(ad.settings, "zarr_write_format"):
            with ad.settings.override(zarr_write_format=int(container[-1])):
                adata.write_zarr(path)
        else:
            pytest.skip(f"anndata {ad.__version__} cannot choose the zarr format")
    return path


def source_path(tmp_path: Path, container: str, stem: str = "cells") -> Path:
    return tmp_path / (f"{stem}.h5ad" if container == "h5ad" else f"{stem}.zarr")


def as_dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def stored(path: Path) -> np.ndarray:
    return as_dense(open_matrix(path).compute())


def assert_matches(dst: Path, adata: ad.AnnData, X) -> None:
    np.testing.assert_array_equal(stored(dst), as_dense(X))
    assert read_ids(dst, "rows").tolist() == list(adata.obs_names)
    assert read_ids(dst, "columns").tolist() == list(adata.var_names)


def leftovers(tmp_path: Path) -> list[str]:
    """Stores and temporary directories left next to the source files."""
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".", "out")))


def write_by_hand(path: Path, X: sp.csr_matrix) -> Path:
    """An .h5ad of ``X`` (CSR) and its names, laid out as anndata's specification says."""
    with h5py.File(path, "w") as f:
        f.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        group = f.create_group("X")
        group.attrs.update(
            {"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": X.shape}
        )
        for name in ("data", "indices", "indptr"):
            group[name] = getattr(X, name)
        for axis, n in (("obs", X.shape[0]), ("var", X.shape[1])):
            frame = f.create_group(axis)
            frame.attrs.update({"encoding-type": "dataframe", "_index": "_index"})
            frame["_index"] = np.array([f"{axis}-{i}".encode() for i in range(n)])
    return path


class TestAnnDataH5ad(ImporterTests):
    name = "anndata"
    shape_in_header = True  # X's shape attribute

    @pytest.fixture
    def sample(self, tmp_path):
        return Sample(write_by_hand(tmp_path / "cells.h5ad", sp.csr_matrix(SMALL)), SMALL)

    invalid_place = "X, row 2, column 2 (counted from 0)"

    @pytest.fixture
    def invalid(self, tmp_path):
        return Sample(write_by_hand(tmp_path / "bad.h5ad", sp.csr_matrix(INVALID)), INVALID)


def test_names_of_the_hand_written_file(tmp_path):
    src = write_by_hand(tmp_path / "cells.h5ad", sp.csr_matrix(SMALL))
    result = ingest_anndata(src, tmp_path / "out.zarr")
    assert (result.encoding, result.element) == ("csr", "X")
    assert read_ids(tmp_path / "out.zarr", "rows").tolist() == [f"obs-{i}" for i in range(6)]
    assert read_ids(tmp_path / "out.zarr", "columns").tolist() == [f"var-{j}" for j in range(5)]


def test_without_h5py_an_h5ad_names_the_extra_and_zarr_still_reads(tmp_path, monkeypatch, capsys):
    # h5py is the optional dependency of .h5ad files (pip install 'dasknmf[anndata]').
    h5ad = write_by_hand(tmp_path / "cells.h5ad", sp.csr_matrix(SMALL))
    adata = annotated(sp.csr_matrix(SMALL))
    zarr_dir = write(adata, tmp_path / "cells.zarr", "zarr3")
    monkeypatch.setitem(sys.modules, "h5py", None)  # `import h5py` now fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'dasknmf\[anndata\]'"):
        ingest_anndata(h5ad, tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()
    assert main(["ingest", str(h5ad), str(tmp_path / "out.zarr")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "reading .h5ad files needs h5py, which is not installed" in err
    assert "pip install 'dasknmf[anndata]'" in err and "Traceback" not in err
    ingest_anndata(zarr_dir, tmp_path / "from_zarr.zarr")
    np.testing.assert_array_equal(
        open_matrix(tmp_path / "from_zarr.zarr").compute().toarray(), SMALL
    )


# -- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("encoding", ["csr", "csc", "dense"])
def test_x_and_ids_round_trip(tmp_path, container, encoding):
    X = counts()
    X = {"csr": X, "csc": X.tocsc(), "dense": X.toarray()}[encoding]
    adata = annotated(X)
    src = write(adata, source_path(tmp_path, container), container)

    # Small tiles (6 x 3 of them) and, for CSC, reads of 16 entries at a time.
    result = ingest_anndata(src, tmp_path / "out.zarr", chunks=(10, 8), block_size=16)

    assert_matches(tmp_path / "out.zarr", adata, adata.X)
    info = result.store
    assert info.shape == X.shape and info.n_tiles == (6, 3)
    assert info.format == ("dense" if encoding == "dense" else "sparse")
    assert info.dtype == np.float32
    assert info.has_row_ids and info.has_col_ids
    assert (result.element, result.encoding) == ("X", encoding)
    if encoding != "dense":
        assert info.nnz == X.nnz
    text = str(result)
    assert "57 x 23" in text and "obs_names" in text and "var_names" in text


@pytest.mark.parametrize("container", ["h5ad", "zarr3"])
@pytest.mark.parametrize("encoding", ["csr", "csc", "dense"])
def test_invalid_values_are_refused_as_each_slice_is_read(tmp_path, container, encoding):
    """Issue: such a file used to become a store, refused only at fit time. The
    slice holding the first invalid value is named (a row block of 10 rows; for CSC a
    block of 16 entries), and nothing is written. A dense X keeps its NaN (missing
    entries); a NaN stored in a sparse X is refused."""
    X = counts().toarray()
    X[12, 4], X[14, 0], X[40, 9] = -3.0, np.inf, -1.0
    X[11, 6] = np.nan
    given = {"csr": sp.csr_matrix(X), "csc": sp.csc_matrix(X), "dense": X}[encoding]
    src = write(annotated(given), source_path(tmp_path, container), container)
    dst = tmp_path / "out.zarr"
    with pytest.raises(InvalidInputError) as info:
        ingest_anndata(src, dst, chunks=(10, 8), block_size=16)
    message = str(info.value)
    assert message.startswith(f"{str(src)!r}, X, row "), message
    if encoding == "csc":  # column by column: column 0 comes first
        assert "row 14, column 0 (counted from 0): the value inf is infinite" in message
        assert "in its entries" in message
    elif encoding == "csr":
        assert "row 11, column 6 (counted from 0): the value nan is NaN" in message
        assert "(3 such value(s) in its rows 10-19)" in message
    else:
        assert "row 12, column 4 (counted from 0): the value -3.0 is negative" in message
        assert "(2 such value(s) in its rows 10-19)" in message
    assert "keep_invalid=True" in message
    assert leftovers(tmp_path) == []  # neither the store nor a temporary directory
    ingest_anndata(src, dst, chunks=(10, 8), block_size=16, keep_invalid=True)
    np.testing.assert_array_equal(stored(dst), X)


@pytest.mark.parametrize("container", ["h5ad", "zarr2"])
def test_layer_instead_of_x(tmp_path, container):
    X = counts(seed=1)
    layer = counts(seed=2).tocsc().astype(np.int32)  # integer counts: stored as float32
    adata = annotated(X.toarray(), counts=layer, dense=X.toarray() * 2)
    src = write(adata, source_path(tmp_path, container), container)

    info = ingest(src, tmp_path / "out.zarr", layer="counts")
    assert info.dtype == np.float32 and info.format == "sparse"
    assert_matches(tmp_path / "out.zarr", adata, adata.layers["counts"])

    result = ingest_anndata(src, tmp_path / "out2.zarr", layer="dense", dtype="float64")
    assert result.element == "layers/dense" and result.store.dtype == np.float64
    assert_matches(tmp_path / "out2.zarr", adata, adata.layers["dense"])


def test_format_and_default_tiles(tmp_path):
    X = counts()
    src = write(annotated(X), tmp_path / "cells.h5ad")
    dense = ingest_anndata(src, tmp_path / "out.zarr", format="dense").store
    assert dense.format == "dense" and dense.tile_shape == X.shape
    np.testing.assert_array_equal(stored(tmp_path / "out.zarr"), X.toarray())


def test_ingest_dispatches_anndata_by_name_and_content(tmp_path):
    adata = annotated(counts())
    h5ad = write(adata, tmp_path / "cells.h5ad")
    assert ingest(h5ad, tmp_path / "a.zarr").shape == (57, 23)
    # A zarr directory is AnnData by its content, whatever its name.
    plain = write(adata, tmp_path / "cells_dir", "zarr2")
    assert ingest(plain, tmp_path / "b.zarr").has_col_ids
    assert_matches(tmp_path / "b.zarr", adata, adata.X)

    with pytest.raises(UnsupportedFormatError, match=r"cells\.h5ad.*ingest"):
        read_matrix_file(h5ad)
    with pytest.raises(InvalidParameterError, match="layer"):
        ingest(tmp_path / "x.npy", tmp_path / "c.zarr", layer="counts")


# -- bad inputs ------------------------------------------------------------------------


@pytest.mark.parametrize("container", ["h5ad", "zarr2"])
def test_missing_x_or_layer(tmp_path, container):
    layer = counts()
    adata = annotated(None, counts=layer, spliced=layer)
    src = write(adata, source_path(tmp_path, container), container)

    with pytest.raises(InvalidInputError, match=rf"{src.name}.*no X.*counts, spliced"):
        ingest_anndata(src, tmp_path / "out.zarr")
    with pytest.raises(InvalidInputError, match=rf"{src.name}.*no layer 'raw'.*counts"):
        ingest(src, tmp_path / "out.zarr", layer="raw")
    assert leftovers(tmp_path) == []


def test_unsupported_encodings(tmp_path):
    src = write(annotated(counts()), tmp_path / "cells.h5ad")
    with h5py.File(src, "a") as f:
        f["X"].attrs["encoding-type"] = "coo_matrix"
        f["layers/words"] = np.array([["a", "b"]] * 57, dtype=h5py.string_dtype())
        f["layers/words"].attrs["encoding-type"] = "string-array"
        f["layers/vector"] = np.ones(57)
    with pytest.raises(UnsupportedFormatError, match=r"cells\.h5ad', X.*coo_matrix"):
        ingest_anndata(src, tmp_path / "out.zarr")
    with pytest.raises(UnsupportedFormatError, match=r"layers/words.*string-array"):
        ingest_anndata(src, tmp_path / "out.zarr", layer="words")
    with pytest.raises(UnsupportedFormatError, match=r"layers/vector.*1-D array"):
        ingest_anndata(src, tmp_path / "out.zarr", layer="vector")
    assert leftovers(tmp_path) == []


def test_not_anndata(tmp_path):
    (tmp_path / "junk.h5ad").write_bytes(b"not an HDF5 file\x00" * 8)
    with pytest.raises(UnsupportedFormatError, match=r"junk\.h5ad.*HDF5"):
        ingest(tmp_path / "junk.h5ad", tmp_path / "out.zarr")
    with h5py.File(tmp_path / "plain.h5ad", "w") as f:
        f["X"] = np.eye(3)
    with pytest.raises(UnsupportedFormatError, match=r"plain\.h5ad.*not an AnnData"):
        ingest(tmp_path / "plain.h5ad", tmp_path / "out.zarr")
    # A dasknmf store is a zarr group too, but not a source.
    write_matrix(np.eye(3), tmp_path / "store.zarr")
    with pytest.raises(UnsupportedFormatError, match=r"store\.zarr.*dasknmf store"):
        ingest(tmp_path / "store.zarr", tmp_path / "out.zarr")
    with pytest.raises(InputFileNotFoundError, match=r"absent\.h5ad"):
        ingest(tmp_path / "absent.h5ad", tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()


def test_damaged_sparse_arrays_write_nothing(tmp_path):
    src = write(annotated(counts()), tmp_path / "cells.h5ad")
    with h5py.File(src, "a") as f:
        indices = f["X/indices"][:]
        indices[-1] = 99
        f["X/indices"][:] = indices
    with pytest.raises(InvalidInputError, match=r"cells\.h5ad', X: column index 99"):
        ingest_anndata(src, tmp_path / "out.zarr", chunks=(10, 23))
    assert leftovers(tmp_path) == []

    with h5py.File(src, "a") as f:
        del f["X/indptr"]
        f["X/indptr"] = np.zeros(10, dtype=np.int64)
    with pytest.raises(InvalidInputError, match=r"cells\.h5ad', X: inconsistent sparse"):
        ingest_anndata(src, tmp_path / "out.zarr")


def test_names_must_match_the_shape(tmp_path):
    src = write(annotated(counts()), tmp_path / "cells.h5ad")
    with h5py.File(src, "a") as f:
        names = f["var/_index"][:-1]
        del f["var/_index"]
        f["var/_index"] = names
    with pytest.raises(InvalidInputError, match=r"cells\.h5ad', var: 22 names for the 23"):
        ingest_anndata(src, tmp_path / "out.zarr")
    assert leftovers(tmp_path) == []


def test_existing_store_is_not_overwritten(tmp_path):
    first = write(annotated(counts(seed=1)), tmp_path / "a.h5ad")
    second = annotated(counts(seed=2))
    write(second, tmp_path / "b.h5ad")
    ingest(first, tmp_path / "out.zarr")
    before = {p: p.read_bytes() for p in (tmp_path / "out.zarr").rglob("*") if p.is_file()}
    with pytest.raises(StoreExistsError, match=r"out\.zarr"):
        ingest_anndata(tmp_path / "b.h5ad", tmp_path / "out.zarr")
    assert {p: p.read_bytes() for p in before} == before

    ingest_anndata(tmp_path / "b.h5ad", tmp_path / "out.zarr", overwrite=True)
    assert_matches(tmp_path / "out.zarr", second, second.X)


# -- bounded reading -------------------------------------------------------------------


class ReadSpy:
    """Records the length of every slice read from an array whose name ends with one
    of ``names``, patched into h5py or zarr."""

    def __init__(self, monkeypatch, cls: type, names: tuple[str, ...]) -> None:
        self.reads: dict[str, list[int]] = {name: [] for name in names}
        original = cls.__getitem__

        def spy(array, selection, *args, **kwargs):
            out = original(array, selection, *args, **kwargs)
            name = (getattr(array, "name", None) or array.path).lstrip("/")
            if name in self.reads:
                self.reads[name].append(np.shape(out)[0] if np.ndim(out) else 1)
            return out

        monkeypatch.setattr(cls, "__getitem__", spy)


@pytest.mark.parametrize("container", ["h5ad", "zarr2"])
def test_csr_and_dense_are_read_one_row_block_at_a_time(tmp_path, container, monkeypatch):
    X = counts(m=200, n=30, seed=3)
    adata = annotated(X, dense=X.toarray())
    src = write(adata, source_path(tmp_path, container), container)
    rows = 16
    blocks = -(-X.shape[0] // rows)
    block_nnz = [X[r : r + rows].nnz for r in range(0, X.shape[0], rows)]
    array_cls = h5py.Dataset if container == "h5ad" else zarr.Array
    spy = ReadSpy(monkeypatch, array_cls, ("X/data", "X/indices", "X/indptr", "layers/dense"))

    ingest_anndata(src, tmp_path / "csr.zarr", chunks=(rows, 10))
    ingest_anndata(src, tmp_path / "dense.zarr", chunks=(rows, 10), layer="dense")

    reads = spy.reads
    # Each row block is read once (not once per tile of its row), by one slice of
    # each array, never more than the block holds.
    assert sorted(reads["X/data"]) == sorted(block_nnz)
    assert sorted(reads["X/indices"]) == sorted(block_nnz)
    assert max(reads["X/indptr"]) <= rows + 1
    assert len(reads["layers/dense"]) == blocks and max(reads["layers/dense"]) == rows
    assert_matches(tmp_path / "csr.zarr", adata, X)
    assert_matches(tmp_path / "dense.zarr", adata, X.toarray())


@pytest.mark.parametrize("container", ["h5ad", "zarr3"])
def test_csc_is_read_in_bounded_slices(tmp_path, container, monkeypatch):
    X = counts(m=200, n=30, seed=4).tocsc()
    adata = annotated(X)
    src = write(adata, source_path(tmp_path, container), container)
    array_cls = h5py.Dataset if container == "h5ad" else zarr.Array
    spy = ReadSpy(monkeypatch, array_cls, ("X/data", "X/indices", "X/indptr"))

    block = 50
    ingest_anndata(src, tmp_path / "out.zarr", chunks=(64, 30), block_size=block)

    reads = spy.reads
    assert max(reads["X/data"]) <= block and sum(reads["X/data"]) == X.nnz
    assert max(reads["X/indices"]) <= block and sum(reads["X/indices"]) == X.nnz
    assert max(reads["X/indptr"]) <= block + 1
    assert_matches(tmp_path / "out.zarr", adata, X)
    assert matrix_info(tmp_path / "out.zarr").nnz == X.nnz
