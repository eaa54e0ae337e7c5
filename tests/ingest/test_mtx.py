"""MatrixMarket files (dasknmf.ingest.mtx): coordinate files streamed, dense ones read."""

from __future__ import annotations

import bz2
import gzip
import os
import tempfile

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from dasknmf.errors import InvalidInputError, StoreExistsError, UnsupportedFormatError
from dasknmf.ingest import ingest, read_matrix_file
from dasknmf.ingest.mtx import files as mtx_files
from dasknmf.ingest.mtx import ingest as mtx_ingest
from dasknmf.ingest.mtx.files import iter_mtx_entries, read_mtx_header
from dasknmf.ingest.spill import RowBlockSpill
from dasknmf.storage import open_matrix
from tests.ingest.importer_testing import INVALID, SMALL, ImporterTests, Sample
from tests.storage.storage_testing import as_dense, random_sparse

SHAPE = (50, 40)
CHUNKS = (7, 5)  # 8 x 8 tiles, ragged last row and column


@pytest.fixture(autouse=True)
def _spill_in_tmp(tmp_path, monkeypatch):
    # Spill folders go to a directory of the test's own, checked empty afterwards.
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))
    yield
    assert os.listdir(spill) == [], "spill files left behind"


def reference(path) -> sp.csr_matrix:
    """scipy's in-memory reading, canonicalised as the store writes tiles."""
    ref = sp.csr_matrix(scipy.io.mmread(path))
    ref.sum_duplicates()
    ref.eliminate_zeros()
    return ref


def assert_ingested(dst, ref: sp.csr_matrix, dtype) -> None:
    V = open_matrix(dst)
    assert V.dtype == dtype and V.shape == ref.shape
    got = V.compute()
    np.testing.assert_array_equal(as_dense(got), ref.astype(dtype).toarray())


def write_text(path, header: str, lines: list[str]) -> None:
    text = header + "".join(f"{line}\n" for line in lines)
    opener = {".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix, open)
    with opener(path, "wt") as f:
        f.write(text)


def hand_written_entries(rng, m: int, n: int, k: int) -> list[str]:
    """Unsorted entries with duplicates (summed) and explicit zeros (dropped)."""
    rows = rng.integers(1, m + 1, k)
    cols = rng.integers(1, n + 1, k)
    vals = rng.integers(-3, 4, k)  # includes 0; some duplicates cancel out
    lines = [
        f"{r} {c} {v}.25" if v else f"{r} {c} 0" for r, c, v in zip(rows, cols, vals, strict=True)
    ]
    lines += [lines[0], lines[5], f"{m} {n} 0.0"]
    order = rng.permutation(len(lines))
    return [lines[i] for i in order]


class TestMtxCoordinate(ImporterTests):
    name = "mtx"
    in_memory = True
    shape_in_header = True

    @pytest.fixture
    def sample(self, tmp_path):
        scipy.io.mmwrite(tmp_path / "v.mtx", sp.coo_matrix(SMALL))
        return Sample(tmp_path / "v.mtx", SMALL)

    invalid_place = "entry 5"  # and its line

    @pytest.fixture
    def invalid(self, tmp_path):
        scipy.io.mmwrite(tmp_path / "bad.mtx", sp.coo_matrix(INVALID))
        return Sample(tmp_path / "bad.mtx", INVALID)


class TestMtxGzip(ImporterTests):
    name = "mtx"
    in_memory = True
    shape_in_header = True

    @pytest.fixture
    def sample(self, tmp_path):
        scipy.io.mmwrite(tmp_path / "v.mtx", sp.coo_matrix(SMALL))
        with gzip.open(tmp_path / "v.mtx.gz", "wb") as f:
            f.write((tmp_path / "v.mtx").read_bytes())
        return Sample(tmp_path / "v.mtx.gz", SMALL)

    invalid_place = "entry 5"

    @pytest.fixture
    def invalid(self, tmp_path):
        scipy.io.mmwrite(tmp_path / "bad.mtx", sp.coo_matrix(INVALID))
        with gzip.open(tmp_path / "bad.mtx.gz", "wb") as f:
            f.write((tmp_path / "bad.mtx").read_bytes())
        (tmp_path / "bad.mtx").unlink()
        return Sample(tmp_path / "bad.mtx.gz", INVALID)


class TestMtxArray(ImporterTests):
    name = "mtx"
    in_memory = True
    shape_in_header = True

    @pytest.fixture
    def sample(self, tmp_path):
        scipy.io.mmwrite(tmp_path / "d.mtx", SMALL)  # 'array' (dense) MatrixMarket
        return Sample(tmp_path / "d.mtx", SMALL)

    @pytest.fixture
    def invalid(self, tmp_path):
        scipy.io.mmwrite(tmp_path / "bad.mtx", INVALID)
        return Sample(tmp_path / "bad.mtx", INVALID)


def test_read_and_ingest(tmp_path):
    X = random_sparse(40, 25, 0.15, seed=7)
    scipy.io.mmwrite(tmp_path / "v.mtx", X)
    got = read_matrix_file(tmp_path / "v.mtx")
    assert isinstance(got, sp.csr_matrix)
    np.testing.assert_array_equal(got.toarray(), X.toarray())
    info = ingest(tmp_path / "v.mtx", tmp_path / "v.zarr", chunks=(16, 10))
    assert (info.format, info.shape, info.nnz, info.n_tiles) == ("sparse", (40, 25), X.nnz, (3, 3))
    np.testing.assert_array_equal(
        as_dense(open_matrix(tmp_path / "v.zarr").compute()), X.toarray()
    )


def test_read_gz_and_dense_array_format(tmp_path):
    X = random_sparse(40, 25, 0.15, seed=7)
    scipy.io.mmwrite(tmp_path / "v.mtx", X)
    with gzip.open(tmp_path / "v.mtx.gz", "wb") as f:
        f.write((tmp_path / "v.mtx").read_bytes())
    np.testing.assert_array_equal(read_matrix_file(tmp_path / "v.mtx.gz").toarray(), X.toarray())
    scipy.io.mmwrite(tmp_path / "d.mtx", X.toarray())  # 'array' (dense) MatrixMarket
    got = read_matrix_file(tmp_path / "d.mtx")
    assert isinstance(got, np.ndarray)
    info = ingest(tmp_path / "d.mtx", tmp_path / "d.zarr", format="sparse", dtype="float32")
    assert (info.format, info.dtype, info.nnz) == ("sparse", np.float32, X.nnz)


@pytest.mark.parametrize(
    ("kind", "dtype"),
    [("real", np.float64), ("integer", np.float32), ("pattern", np.float32)],
)
def test_scipy_written_fields(tmp_path, kind, dtype):
    X = random_sparse(*SHAPE, 0.1, seed=3)
    if kind == "integer":
        X = X.astype(np.int64) * 7 + X.astype(bool).astype(np.int64)
    elif kind == "pattern":
        X = X.astype(bool)
    scipy.io.mmwrite(tmp_path / "v.mtx", X.tocoo(), field=kind)
    assert read_mtx_header(tmp_path / "v.mtx").field == kind
    info = ingest(tmp_path / "v.mtx", tmp_path / "v.zarr", chunks=CHUNKS)
    ref = reference(tmp_path / "v.mtx")
    assert (info.n_tiles, info.nnz, info.dtype) == ((8, 8), ref.nnz, dtype)
    assert_ingested(tmp_path / "v.zarr", ref, dtype)


def test_symmetric_mirrors_off_diagonal(tmp_path):
    A = random_sparse(40, 40, 0.1, seed=4)
    S = sp.tril(A + A.T).tocoo()  # lower triangle incl. diagonal
    scipy.io.mmwrite(tmp_path / "s.mtx", S, symmetry="symmetric")
    assert read_mtx_header(tmp_path / "s.mtx").symmetry == "symmetric"
    info = ingest(tmp_path / "s.mtx", tmp_path / "s.zarr", chunks=CHUNKS)
    ref = reference(tmp_path / "s.mtx")
    assert (ref != ref.T).nnz == 0 and info.nnz == ref.nnz > S.nnz
    assert_ingested(tmp_path / "s.zarr", ref, np.float64)


@pytest.mark.parametrize("suffix", [".mtx", ".mtx.gz", ".mtx.bz2"])
def test_hand_written_unsorted_duplicates_zeros(tmp_path, suffix):
    lines = hand_written_entries(np.random.default_rng(5), *SHAPE, 300)
    header = f"%%MatrixMarket matrix coordinate real general\n% a comment\n%\n50 40 {len(lines)}\n"
    src = tmp_path / f"h{suffix}"
    write_text(src, header, lines)
    # Negative values test the parser (duplicates that cancel): kept on purpose.
    info = ingest(src, tmp_path / "h.zarr", chunks=CHUNKS, dtype="float32", keep_invalid=True)
    ref = reference(src)
    assert info.nnz == ref.nnz < len(lines)  # duplicates merged, zeros dropped
    assert_ingested(tmp_path / "h.zarr", ref, np.float32)


def test_tiny_blocks_give_the_same_store(tmp_path, monkeypatch):
    # About two entries per block: proves the result does not depend on the blocking.
    lines = hand_written_entries(np.random.default_rng(6), *SHAPE, 200)
    write_text(
        tmp_path / "t.mtx",
        f"%%MatrixMarket matrix coordinate real general\n50 40 {len(lines)}\n",
        lines,
    )
    ingest(tmp_path / "t.mtx", tmp_path / "big.zarr", chunks=CHUNKS, keep_invalid=True)
    monkeypatch.setattr(mtx_files, "BLOCK_BYTES", 24)
    sizes = [r.size for r, _, _ in iter_mtx_entries(tmp_path / "t.mtx")]
    assert len(sizes) > 50 and max(sizes) <= 3
    ingest(tmp_path / "t.mtx", tmp_path / "small.zarr", chunks=CHUNKS, keep_invalid=True)
    ref = reference(tmp_path / "t.mtx")
    assert_ingested(tmp_path / "small.zarr", ref, np.float64)
    a, b = open_matrix(tmp_path / "big.zarr"), open_matrix(tmp_path / "small.zarr")
    assert (a.compute() != b.compute()).nnz == 0


def test_blank_lines_and_no_final_newline(tmp_path):
    text = "%%MatrixMarket matrix coordinate real general\n3 3 3\n1 1 1\n\n2 2 2\n  3 3 3  \n\n"
    (tmp_path / "b.mtx").write_text(text.rstrip("\n"))
    ingest(tmp_path / "b.mtx", tmp_path / "b.zarr")
    np.testing.assert_array_equal(
        open_matrix(tmp_path / "b.zarr").compute().toarray(), np.diag([1.0, 2, 3])
    )
    (tmp_path / "c.mtx").write_text(text)
    ingest(tmp_path / "c.mtx", tmp_path / "c.zarr")
    assert open_matrix(tmp_path / "c.zarr").compute().nnz == 3


def test_default_chunks_from_header(tmp_path):
    X = random_sparse(3000, 200, 0.01, seed=8)
    scipy.io.mmwrite(tmp_path / "d.mtx", X.tocoo())
    info = ingest(tmp_path / "d.mtx", tmp_path / "d.zarr")
    assert info.tile_shape == (3000, 200) and info.dtype == np.float64 and info.nnz == X.nnz


BODY = "%%MatrixMarket matrix coordinate real general\n5 4 {nnz}\n"


@pytest.mark.parametrize(
    ("nnz", "lines", "match"),
    [
        (4, ["1 1 1", "2 2 2", "3 3 3"], r"declares 4 entries, the file holds 3"),
        (2, ["1 1 1", "2 2 2", "3 3 3"], r"declares 2 entries but there are more"),
        (3, ["1 1 1", "6 2 2", "3 3 3"], r"line 4, entry 2: row index 6 is outside \[1, 5\]"),
        (3, ["1 1 1", "2 2 2", "3 0 3"], r"line 5, entry 3: column index 0 is outside \[1, 4\]"),
        (3, ["1 1 1", "2 x 2", "3 3 3"], r"line 4, entry 2: cannot parse '2 x 2'"),
        (3, ["1 1 1", "2 2 2", "3 3 abc"], r"line 5, entry 3: cannot parse '3 3 abc'"),
        (2, ["1 1 1", "2 2"], r"line 4, entry 2: cannot parse '2 2'"),
    ],
)
def test_bad_body_is_refused_and_nothing_written(tmp_path, monkeypatch, nnz, lines, match):
    write_text(tmp_path / "bad.mtx", BODY.format(nnz=nnz), lines)
    for block in (None, 8):  # one block; or one line per block (error in a later block)
        if block:
            monkeypatch.setattr(mtx_files, "BLOCK_BYTES", block)
        with pytest.raises(UnsupportedFormatError, match=r"bad\.mtx.*" + match):
            ingest(tmp_path / "bad.mtx", tmp_path / "bad.zarr", chunks=(2, 2))
        assert not (tmp_path / "bad.zarr").exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mtx", "spill"]


@pytest.mark.parametrize(
    "banner",
    [
        "%%MatrixMarket matrix coordinate complex general",
        "%%MatrixMarket matrix coordinate real skew-symmetric",
        "%%MatrixMarket matrix coordinate complex hermitian",
    ],
)
def test_unsupported_header(tmp_path, banner):
    (tmp_path / "u.mtx").write_text(f"{banner}\n2 2 1\n1 1 1 0\n")
    with pytest.raises(UnsupportedFormatError, match=r"u\.mtx.*" + banner.split()[-1]):
        ingest(tmp_path / "u.mtx", tmp_path / "u.zarr")
    assert not (tmp_path / "u.zarr").exists()


def test_truncated_gzip(tmp_path):
    X = random_sparse(*SHAPE, 0.2, seed=9)
    scipy.io.mmwrite(tmp_path / "v.mtx", X.tocoo())
    data = gzip.compress((tmp_path / "v.mtx").read_bytes())
    (tmp_path / "v.mtx.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsupportedFormatError, match=r"v\.mtx\.gz"):
        ingest(tmp_path / "v.mtx.gz", tmp_path / "v.zarr", chunks=CHUNKS)
    assert not (tmp_path / "v.zarr").exists()


def test_existing_destination_refused_before_reading(tmp_path, monkeypatch):
    X = random_sparse(*SHAPE, 0.1, seed=10)
    scipy.io.mmwrite(tmp_path / "v.mtx", X.tocoo())
    ingest(tmp_path / "v.mtx", tmp_path / "v.zarr")

    def fail(*args, **kwargs):
        raise AssertionError("the body was read")

    monkeypatch.setattr(mtx_ingest, "iter_mtx_entries", fail)
    with pytest.raises(StoreExistsError):
        ingest(tmp_path / "v.mtx", tmp_path / "v.zarr")


def test_dense_format_requested(tmp_path):
    X = random_sparse(*SHAPE, 0.1, seed=11)
    scipy.io.mmwrite(tmp_path / "v.mtx", X.tocoo())
    info = ingest(tmp_path / "v.mtx", tmp_path / "v.zarr", chunks=CHUNKS, format="dense")
    assert info.format == "dense" and info.nnz == X.nnz
    np.testing.assert_array_equal(open_matrix(tmp_path / "v.zarr").compute(), X.toarray())


def test_spill_folder_used_and_removed(tmp_path, monkeypatch):
    made = []
    mkdtemp = tempfile.mkdtemp

    def spy(*args, **kwargs):
        made.append(mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", spy)
    X = random_sparse(*SHAPE, 0.1, seed=12)
    scipy.io.mmwrite(tmp_path / "v.mtx", X.tocoo())
    spilled = []
    append = RowBlockSpill.append

    def record(self, *args):
        append(self, *args)
        spilled.extend(p.name for p in self.folder.iterdir())

    monkeypatch.setattr(RowBlockSpill, "append", record)
    ingest(tmp_path / "v.mtx", tmp_path / "v.zarr", chunks=CHUNKS)
    assert len(made) == 1 and os.path.dirname(made[0]) == str(tmp_path / "spill")
    assert len(set(spilled)) == 8  # one file per row block
    assert not os.path.exists(made[0])


def test_no_entries(tmp_path):
    (tmp_path / "z.mtx").write_text("%%MatrixMarket matrix coordinate pattern general\n4 3 0\n")
    info = ingest(tmp_path / "z.mtx", tmp_path / "z.zarr", chunks=(2, 2))
    assert (info.nnz, info.n_tiles, info.dtype) == (0, (2, 2), np.float32)
    assert open_matrix(tmp_path / "z.zarr").compute().nnz == 0


# The peak RSS of this process (VmHWM): unlike getrusage's ru_maxrss, which Linux
# carries over exec from the parent (a test process that already peaked high would
# hide the growth), it starts afresh with the new program.
_MEASURE = """
import sys
import scipy.io
from dasknmf.ingest import ingest, read_matrix_file
from dasknmf.ingest.mtx import files
from dasknmf.storage import write_matrix

def peak():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024

files.BLOCK_BYTES = 8 * 2**20
base = peak()
if sys.argv[1] == "stream":
    ingest(sys.argv[2], sys.argv[3], chunks=(50_000, 20_000))
else:
    write_matrix(read_matrix_file(sys.argv[2]), sys.argv[3], chunks=(50_000, 20_000))
print(peak() - base)
"""


@pytest.mark.slow
def test_streaming_peak_memory_below_in_memory_path(tmp_path):
    # 1e7 entries, 330 MB of text. The sparse writer buffers whole 4 Mi-element shards
    # (a fixed ~250 MiB) on either path, so the streaming growth is compared with the
    # in-memory path measured in the same run: streaming must save at least half of
    # the matrix itself (its CSR arrays), which the in-memory path holds whole.
    import subprocess
    import sys

    rng = np.random.default_rng(13)
    n = 10_000_000
    X = sp.coo_matrix(
        (rng.random(n), (rng.integers(0, 1_000_000, n), rng.integers(0, 20_000, n))),
        shape=(1_000_000, 20_000),
    )
    scipy.io.mmwrite(tmp_path / "big.mtx", X)
    del X

    def growth(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _MEASURE, mode, tmp_path / "big.mtx", tmp_path / mode],
            check=True,
            capture_output=True,
            text=True,
        )
        return int(out.stdout.split()[-1])

    streamed, in_memory = growth("stream"), growth("memory")
    csr_bytes = n * (8 + 4)
    assert in_memory - streamed > 0.5 * csr_bytes, (streamed / 2**20, in_memory / 2**20)
    a, b = open_matrix(tmp_path / "stream"), open_matrix(tmp_path / "memory")
    assert (a.compute() != b.compute()).nnz == 0


@pytest.mark.parametrize(
    ("value", "what"), [("-1.5", "negative"), ("nan", "NaN"), ("inf", "infinite")]
)
def test_invalid_values_are_refused_naming_the_line(tmp_path, value, what):
    """Issue: such a file used to become a store, refused only at fit time."""
    src = tmp_path / "v.mtx"
    src.write_text(
        "%%MatrixMarket matrix coordinate real general\n% a comment\n3 3 4\n"
        f"1 1 1.0\n\n2 2 2.0\n3 3 {value}\n1 3 {value}\n"
    )
    with pytest.raises(InvalidInputError) as excinfo:
        ingest(src, tmp_path / "v.zarr")
    message = str(excinfo.value)
    assert message.startswith(f"{str(src)!r}, line 7, entry 3: the value ")
    assert f"is {what} (2 such value(s)" in message and "keep_invalid=True" in message
    assert not (tmp_path / "v.zarr").exists()
    # Kept on request, for a user who cleans the store later (fit refuses them).
    info = ingest(src, tmp_path / "v.zarr", keep_invalid=True)
    assert info.nnz == 4


def test_the_keep_invalid_flag_on_the_command_line(tmp_path, capsys):
    from dasknmf.cli import EXIT_OK, EXIT_USAGE, main

    src = tmp_path / "v.mtx"
    src.write_text("%%MatrixMarket matrix coordinate real general\n2 2 2\n1 1 1\n2 2 -1\n")
    assert main(["ingest", str(src), str(tmp_path / "v.zarr")]) == EXIT_USAGE
    assert "line 4, entry 2: the value -1.0 is negative" in capsys.readouterr().err
    assert not (tmp_path / "v.zarr").exists()
    assert main(["ingest", str(src), str(tmp_path / "v.zarr"), "--keep-invalid"]) == EXIT_OK
    np.testing.assert_array_equal(
        open_matrix(tmp_path / "v.zarr").compute().toarray(), [[1, 0], [0, -1]]
    )


def test_a_dense_file_is_refused_by_row_and_column_its_nan_kept(tmp_path):
    """A dense ('array') file is read whole: every invalid value is counted, the first
    in row order named; NaN marks a missing entry there, as in any dense input."""
    V = SMALL.copy()
    V[1, 1], V[4, 3], V[5, 0] = np.nan, -2.0, np.inf
    scipy.io.mmwrite(tmp_path / "d.mtx", V)
    with pytest.raises(InvalidInputError) as info:
        ingest(tmp_path / "d.mtx", tmp_path / "d.zarr")
    assert str(info.value).startswith(
        f"{str(tmp_path / 'd.mtx')!r}, row 4, column 3 (counted from 0): the value -2.0 is "
        "negative (2 such value(s) in the file)"
    )
    assert not (tmp_path / "d.zarr").exists()
    V[4, 3], V[5, 0] = 0.0, 0.0
    scipy.io.mmwrite(tmp_path / "ok.mtx", V)
    ingest(tmp_path / "ok.mtx", tmp_path / "ok.zarr")
    np.testing.assert_array_equal(open_matrix(tmp_path / "ok.zarr").compute(), V)
