"""The registry of importers (dasknmf.ingest.registry): one place that says which
formats there are and which one a path is."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from dasknmf.errors import InvalidInputError, InvalidParameterError, UnsupportedFormatError
from dasknmf.ingest import (
    Importer,
    get_importer,
    importer_for,
    importers,
    ingest,
    input_kind,
    register_importer,
)
from dasknmf.ingest import registry as registry_module
from dasknmf.ingest.registry import accepted_formats, file_suffixes
from dasknmf.ingest.values import check_matrix
from dasknmf.jobs.paths import MATRIX_FILE_SUFFIXES
from dasknmf.storage import matrix_info, open_matrix, write_matrix
from tests.ingest.importer_testing import ImporterTests

BUILT_IN = ["mtx", "npz", "npy", "triplets", "anndata", "corpus"]


class RowsImporter(Importer):
    """A made-up format for the tests: one matrix row of numbers per line."""

    name = "rows"
    description = "a rows file"
    suffixes = (".rows",)
    formats = ".rows (one matrix row a line)"
    priority = 35

    def _ingest(
        self, path, dst, *, chunks, format, dtype, overwrite, storage_options, keep_invalid
    ):
        X = np.loadtxt(path, ndmin=2)
        if not keep_invalid:
            check_matrix(X, repr(str(path)))
        write_matrix(X, dst, chunks=chunks, format=format, dtype=dtype, overwrite=overwrite)
        return matrix_info(dst)


@pytest.fixture
def registry(monkeypatch):
    """The registry, restored after the test."""
    monkeypatch.setattr(registry_module, "_IMPORTERS", dict(registry_module._IMPORTERS))
    return registry_module


def test_built_in_importers_in_priority_order():
    assert [importer.name for importer in importers()] == BUILT_IN
    assert all(get_importer(name).name == name for name in BUILT_IN)


def test_unknown_name():
    with pytest.raises(InvalidParameterError, match=r"no importer named 'xls'; known: 'mtx'"):
        get_importer("xls")


def test_accepted_formats_and_suffixes_come_from_the_importers():
    text = accepted_formats()
    assert text.split("; ") == [i.formats for i in importers()]
    assert file_suffixes() == tuple(s for i in importers() for s in i.suffixes)
    assert {".mtx.gz", ".npz", ".npy", ".tsv.bz2", ".parquet", ".h5ad"} <= set(file_suffixes())
    # A .zarr name is a store as often as an AnnData directory: no file suffix.
    assert ".zarr" not in file_suffixes()


def test_the_jobs_take_their_file_suffixes_from_the_registry():
    assert file_suffixes() == MATRIX_FILE_SUFFIXES


def test_corpus_flag_forces_the_corpus_importer(tmp_path):
    assert importer_for(tmp_path / "v.mtx", corpus=True) is get_importer("corpus")
    assert importer_for(tmp_path / "v.mtx") is get_importer("mtx")


def test_unknown_path_names_every_accepted_format(tmp_path):
    with pytest.raises(UnsupportedFormatError) as info:
        importer_for(tmp_path / "v.xls")
    assert "v.xls" in str(info.value)
    assert all(importer.formats in str(info.value) for importer in importers())


def test_a_registered_importer_is_asked_by_every_entry_point(tmp_path, registry):
    rows = register_importer(RowsImporter())
    names = [importer.name for importer in importers()]
    assert names == ["mtx", "npz", "npy", "rows", "triplets", "anndata", "corpus"]
    (tmp_path / "m.rows").write_text("1 0 2\n0 3 0\n")
    assert importer_for(tmp_path / "m.rows") is rows and input_kind(tmp_path / "m.rows") == "rows"
    assert ".rows" in registry.file_suffixes()
    assert ".rows (one matrix row a line)" in registry.accepted_formats()
    info = ingest(tmp_path / "m.rows", tmp_path / "m.zarr")
    assert info.shape == (2, 3)
    got = open_matrix(tmp_path / "m.zarr").compute()
    np.testing.assert_array_equal(got, [[1, 0, 2], [0, 3, 0]])
    with pytest.raises(InvalidParameterError, match="takes no ingest options"):
        ingest(tmp_path / "m.rows", tmp_path / "n.zarr", delimiter=",")
    # keep_invalid, an option of every importer, reaches it.
    (tmp_path / "bad.rows").write_text("1 0 2\n0 -3 0\n")
    with pytest.raises(InvalidInputError, match=r"row 1, column 1 \(counted from 0\)"):
        ingest(tmp_path / "bad.rows", tmp_path / "b.zarr")
    assert ingest(tmp_path / "bad.rows", tmp_path / "b.zarr", keep_invalid=True).nnz == 3


def test_registering_twice_needs_replace(registry):
    register_importer(RowsImporter())
    with pytest.raises(InvalidParameterError, match="'rows' is registered already"):
        register_importer(RowsImporter())
    again = register_importer(RowsImporter(), replace=True)
    assert get_importer("rows") is again


def test_only_importers_are_registered(registry):
    with pytest.raises(InvalidParameterError, match="takes an Importer instance, got str"):
        register_importer("mtx")
    with pytest.raises(TypeError, match="abstract"):
        Importer()


def test_every_importer_runs_the_conformance_suite():
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        importlib.import_module(f"tests.ingest.{path.stem}")
    tested = {cls.name for cls in ImporterTests.__subclasses__()}
    assert tested == set(BUILT_IN)
