"""The entry points that take any input file: ingest, read_matrix_file, input_kind and
ingest_function (dasknmf.ingest.dispatch)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from dasknmf.errors import InputFileNotFoundError, InvalidParameterError, UnsupportedFormatError
from dasknmf.ingest import (
    ingest,
    ingest_anndata,
    ingest_corpus,
    ingest_function,
    ingest_mtx,
    ingest_triplets,
    input_kind,
    read_matrix_file,
)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("v.mtx", "mtx"),
        ("v.MTX.GZ", "mtx"),
        ("v.mtx.bz2", "mtx"),
        ("v.npz", "npz"),
        ("v.npy", "npy"),
        ("r.csv", "triplets"),
        ("r.tsv.bz2", "triplets"),
        ("r.txt.gz", "triplets"),
        ("r.parquet", "triplets"),
        ("cells.h5ad", "anndata"),
        ("cells.zarr", "anndata"),
    ],
)
def test_input_kind_by_name(tmp_path, name, kind):
    assert input_kind(tmp_path / name) == kind
    assert input_kind(tmp_path / name, corpus=True) == "corpus"


def test_input_kind_of_directories(tmp_path):
    (tmp_path / "docs").mkdir()
    assert input_kind(tmp_path / "docs") == "corpus"
    # A directory is a corpus whatever its name, unless it is a zarr group.
    (tmp_path / "odd.mtx").mkdir()
    assert input_kind(tmp_path / "odd.mtx") == "corpus"
    (tmp_path / "group").mkdir()
    (tmp_path / "group" / ".zgroup").write_text('{"zarr_format": 2}')
    assert input_kind(tmp_path / "group") == "anndata"
    # Both AnnData (by name) and a corpus (a directory): AnnData comes first.
    (tmp_path / "cells.zarr").mkdir()
    assert input_kind(tmp_path / "cells.zarr") == "anndata"


def test_ingest_function(tmp_path):
    assert ingest_function("r.csv") is ingest_triplets
    assert ingest_function("cells.h5ad") is ingest_anndata
    assert ingest_function("r.txt", corpus=True) is ingest_corpus
    assert ingest_function(tmp_path) is ingest_corpus
    assert ingest_function("v.mtx") is ingest_mtx and ingest_function("v.npy") is ingest


def test_unknown_extension(tmp_path):
    # .csv is a triplet format now; .xls is no format at all.
    (tmp_path / "v.xls").write_text("1,2\n3,4\n")
    with pytest.raises(UnsupportedFormatError, match=r"v\.xls.*\.mtx.*\.npz.*\.npy.*\.csv"):
        read_matrix_file(tmp_path / "v.xls")
    with pytest.raises(UnsupportedFormatError, match=r"v\.xls.*\.h5ad.*corpus=True"):
        ingest(tmp_path / "v.xls", tmp_path / "v.zarr")
    with pytest.raises(UnsupportedFormatError, match=r"v\.xls"):
        input_kind(tmp_path / "v.xls")
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


@pytest.mark.parametrize(
    ("name", "what"),
    [("r.csv", "a triplet file.*ingest_triplets"), ("c.h5ad", "an AnnData file.*ingest_anndata")],
)
def test_streamed_formats_are_not_read_into_memory(tmp_path, name, what):
    with pytest.raises(UnsupportedFormatError, match=rf"{name}' is {what}\), not into memory"):
        read_matrix_file(tmp_path / name)


def test_parameters_that_the_format_does_not_take(tmp_path):
    np.save(tmp_path / "v.npy", np.eye(3))
    scipy.io.mmwrite(tmp_path / "v.mtx", sp.eye(3, format="coo"))
    (tmp_path / "r.csv").write_text("0,0,1\n1,1,2\n")
    with pytest.raises(InvalidParameterError, match=r"'layer'.*AnnData.*v\.npy', a npy input"):
        ingest(tmp_path / "v.npy", tmp_path / "a.zarr", layer="counts")
    with pytest.raises(InvalidParameterError, match=r"'layer'.*r\.csv', a triplets input"):
        ingest(tmp_path / "r.csv", tmp_path / "a.zarr", layer="counts", format="dense")
    with pytest.raises(InvalidParameterError, match=r"None or 'sparse' for triplets.*'dense'"):
        ingest(tmp_path / "r.csv", tmp_path / "a.zarr", format="dense")
    with pytest.raises(InvalidParameterError, match=r"npy file, which takes no .*delimiter"):
        ingest(tmp_path / "v.npy", tmp_path / "a.zarr", delimiter=",")
    with pytest.raises(InvalidParameterError, match=r"mtx file, which takes no .*; got delim"):
        ingest(tmp_path / "v.mtx", tmp_path / "a.zarr", delimiter=",")
    with pytest.raises(
        InvalidParameterError, match=r"triplets file, whose .*holdout.*; got min_df"
    ):
        ingest(tmp_path / "r.csv", tmp_path / "a.zarr", min_df=2)
    assert not (tmp_path / "a.zarr").exists()
