"""The conformance suite of the importer contract (:class:`dasknmf.ingest.base.Importer`).

Like zarr's ``StoreTests``: one suite, and one subclass per importer (per variant of a
format) in that importer's test module. A subclass names its importer and gives a
``sample`` fixture that writes a small file of its format together with the dense
matrix the file holds, computed independently (NumPy, SciPy, scikit-learn); every
check below then runs against it::

    class TestNpy(ImporterTests):
        name = "npy"

        @pytest.fixture
        def sample(self, tmp_path):
            np.save(tmp_path / "v.npy", SMALL)
            return Sample(tmp_path / "v.npy", SMALL)

Formats whose damaged files are not made by garbage bytes or truncation override
``damaged``; formats read whole into memory set ``in_memory = True``. An ``invalid``
fixture writes :data:`INVALID` in the format (None for a format that cannot hold a
negative value), and ``invalid_place`` is how the format names where its first
invalid value is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from dasknmf.errors import (
    DaskNMFError,
    InputFileNotFoundError,
    InvalidInputError,
    StoreExistsError,
    UnsupportedFormatError,
)
from dasknmf.ingest import get_importer, importer_for, importers, ingest, input_kind
from dasknmf.ingest.base import Importer
from dasknmf.storage import open_matrix, write_matrix

#: A small non-negative matrix with empty entries (a zero row and column inside),
#: its values exact in float32; its last row and column hold entries, so that a
#: format that numbers rows and columns by their ids gives the same shape.
SMALL = np.array(
    [
        [1.0, 0.0, 2.0, 0.0, 3.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [4.0, 0.0, 5.0, 0.0, 0.0],
        [0.0, 0.0, 6.0, 0.0, 7.0],
        [8.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 9.0, 0.0, 2.5],
    ]
)

#: SMALL with two negative values, at (2, 2) and (3, 4): every importer refuses it
#: (``keep_invalid=True`` stores it), naming the first one's place and the count.
INVALID = SMALL.copy()
INVALID[2, 2], INVALID[3, 4] = -5.0, -7.0

GARBAGE = b"this is not a matrix\x00\xff\xfe" * 40


@dataclass(frozen=True)
class Sample:
    """A file (or directory) of one format, and the dense matrix it holds."""

    path: Path
    expected: np.ndarray


def dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


class ImporterTests:
    """The checks every importer passes; see the module docstring."""

    #: The importer's name in the registry.
    name: ClassVar[str]
    #: A file name of another format, which this importer must not claim.
    foreign: ClassVar[str] = "matrix.npy"
    #: Whether the format can be read whole into memory (``read``).
    in_memory: ClassVar[bool] = False
    #: Whether the file's header alone gives the matrix's shape (``shape``).
    shape_in_header: ClassVar[bool] = False
    #: How the refusal of :data:`INVALID` names the place of its first invalid value.
    invalid_place: ClassVar[str] = "row 2, column 2 (counted from 0)"

    @pytest.fixture
    def sample(self, tmp_path: Path) -> Sample:
        raise NotImplementedError("an ImporterTests subclass gives a sample fixture")

    @pytest.fixture
    def invalid(self, tmp_path: Path) -> Sample | None:
        """:data:`INVALID` in the format, or None for a format that cannot hold it."""
        raise NotImplementedError("an ImporterTests subclass gives an invalid fixture")

    @pytest.fixture
    def importer(self) -> Importer:
        return get_importer(self.name)

    @pytest.fixture
    def damaged(self, tmp_path: Path, sample: Sample) -> list[Path]:
        """Paths named like the sample whose content is garbage, or the sample cut in
        half (a directory sample needs its own)."""
        assert sample.path.is_file(), "a directory sample overrides the damaged fixture"
        content = sample.path.read_bytes()
        paths = []
        for what, data in (("garbage", GARBAGE), ("truncated", content[: len(content) // 2])):
            (tmp_path / what).mkdir()
            paths.append(tmp_path / what / sample.path.name)
            paths[-1].write_bytes(data)
        return paths

    # -- what it claims ------------------------------------------------------------

    def test_can_read_its_sample_and_no_other_importer_does(self, importer, sample):
        assert importer.can_read(sample.path)
        claimants = [other.name for other in importers() if other.can_read(sample.path)]
        assert claimants == [self.name]

    def test_does_not_claim_another_format(self, importer, tmp_path):
        assert not importer.can_read(tmp_path / self.foreign)
        assert not importer.can_read(tmp_path / "matrix.xls")

    def test_registry_dispatches_its_sample_to_it(self, importer, sample):
        assert importer_for(sample.path) is importer
        assert input_kind(sample.path) == self.name

    # -- what it writes --------------------------------------------------------------

    def test_ingest_holds_the_expected_matrix(self, importer, sample, tmp_path):
        info = importer.ingest(sample.path, tmp_path / "out.zarr")
        got = dense(open_matrix(tmp_path / "out.zarr").compute())
        np.testing.assert_array_equal(got, sample.expected)
        assert info.shape == sample.expected.shape
        assert info.nnz == np.count_nonzero(sample.expected)

    def test_ingest_through_the_dispatcher(self, sample, tmp_path):
        info = ingest(sample.path, tmp_path / "out.zarr", chunks=(4, 3))
        assert info.tile_shape == (4, 3)
        got = dense(open_matrix(tmp_path / "out.zarr").compute())
        np.testing.assert_array_equal(got, sample.expected)

    def test_read_into_memory_or_refuse(self, importer, sample):
        if self.in_memory:
            np.testing.assert_array_equal(dense(importer.read(sample.path)), sample.expected)
        else:
            with pytest.raises(UnsupportedFormatError, match=re.escape(str(sample.path))):
                importer.read(sample.path)

    # -- what it refuses -------------------------------------------------------------

    def test_shape_from_the_header_or_unknown(self, importer, sample):
        shape = importer.shape(sample.path)
        if self.shape_in_header:
            assert shape == sample.expected.shape
        else:
            assert shape is None

    def test_existing_destination_is_refused_and_left_untouched(self, importer, sample, tmp_path):
        dst = tmp_path / "old.zarr"
        write_matrix(np.full((2, 3), 7.0), dst)
        before = snapshot(dst)
        with pytest.raises(StoreExistsError, match=re.escape(str(dst))):
            importer.ingest(sample.path, dst)
        assert snapshot(dst) == before
        np.testing.assert_array_equal(open_matrix(dst).compute(), np.full((2, 3), 7.0))

    def test_missing_file(self, importer, sample, tmp_path):
        missing = tmp_path / "nowhere" / sample.path.name
        with pytest.raises(InputFileNotFoundError, match=re.escape(str(missing))) as info:
            importer.ingest(missing, tmp_path / "out.zarr")
        assert isinstance(info.value, FileNotFoundError)
        assert not (tmp_path / "out.zarr").exists()

    def test_damaged_content_is_a_clear_error_naming_the_file(self, importer, damaged, tmp_path):
        assert damaged
        for k, path in enumerate(damaged):
            dst = tmp_path / f"out{k}.zarr"
            with pytest.raises(DaskNMFError) as info:
                importer.ingest(path, dst)
            assert type(info.value) is not DaskNMFError  # a specific class
            assert str(path) in str(info.value), (path, info.value)
            assert not dst.exists()

    def test_invalid_values_are_refused_unless_kept(self, importer, invalid, sample, tmp_path):
        dst = tmp_path / "out.zarr"
        if invalid is None:  # no such value to be had: the option is taken all the same
            importer.ingest(sample.path, dst, keep_invalid=True)
            np.testing.assert_array_equal(dense(open_matrix(dst).compute()), sample.expected)
            return
        before = sorted(p.name for p in tmp_path.iterdir())
        with pytest.raises(InvalidInputError) as info:
            importer.ingest(invalid.path, dst)
        message = str(info.value)
        assert message.startswith(repr(str(invalid.path))), message
        assert f"{self.invalid_place}: the value -5.0 is negative (2 such value(s)" in message
        assert "keep_invalid=True" in message and "nothing was written" in message
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # no store, no temporary
        importer.ingest(invalid.path, dst, keep_invalid=True)
        np.testing.assert_array_equal(dense(open_matrix(dst).compute()), invalid.expected)
