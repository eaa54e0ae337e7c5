"""Triplet (ratings) files: ingest, ids, explicit zeros, duplicates, hold-out split.

The reference is always built independently from the same triplets: ids numbered by
first appearance with a plain dict, the matrix by ``scipy.sparse.coo_matrix``, and
stored entries read back tile by tile (so explicit zeros are seen).
"""

from __future__ import annotations

import bz2
import gzip
import tracemalloc

import dask.array as da
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from dasknmf.errors import (
    InvalidInputError,
    InvalidParameterError,
    StoreExistsError,
    UnsupportedFormatError,
)
from dasknmf.ingest import ingest, ingest_triplets
from dasknmf.ingest.triplets import ingest as triplets_module
from dasknmf.storage import matrix_info, open_matrix, read_ids, write_matrix
from tests.ingest.importer_testing import GARBAGE, INVALID, SMALL, ImporterTests, Sample

Entries = dict[tuple[int, int], float]


# -- helpers ---------------------------------------------------------------------------


def stored_entries(path) -> Entries:
    """Every stored entry (explicit zeros included), read tile by tile."""
    V = open_matrix(path)
    out: Entries = {}
    r0 = 0
    for i, rows in enumerate(V.chunks[0]):
        c0 = 0
        for j, cols in enumerate(V.chunks[1]):
            tile = V.blocks[i, j].compute().tocoo()
            for r, c, v in zip(tile.row, tile.col, tile.data, strict=True):
                out[(r0 + int(r), c0 + int(c))] = float(v)
            c0 += cols
        r0 += rows
    return out


def number_by_appearance(ids: list[str]) -> tuple[dict[str, int], list[str]]:
    index: dict[str, int] = {}
    for x in ids:
        index.setdefault(x, len(index))
    return index, list(index)


def random_triplets(n_rows: int, n_cols: int, n: int, seed: int) -> tuple[list, list, list]:
    """``n`` distinct (row, col) pairs with values 0..5 (so some are explicit zeros)."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(n_rows * n_cols, size=n, replace=False)
    vals = rng.integers(0, 6, size=n).astype(float)
    vals[:3] = 0.0
    return (flat // n_cols).tolist(), (flat % n_cols).tolist(), vals.tolist()


def lines_of(*columns, sep: str = ",") -> list[str]:
    """One line per entry; float values written as ``%g`` (so 3.0 is "3")."""
    return [
        sep.join(f"{x:g}" if isinstance(x, float) else str(x) for x in entry)
        for entry in zip(*columns, strict=True)
    ]


def write_lines(path, lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    elif path.name.endswith(".bz2"):
        with bz2.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)


def no_stores(tmp_path) -> bool:
    return not any(p.name.endswith(".zarr") for p in tmp_path.iterdir())


@pytest.fixture
def int_triplets():
    return random_triplets(40, 25, 300, seed=1)


def small_triplets(matrix: np.ndarray = SMALL) -> pa.Table:
    """The non-zero entries of SMALL with integer ids: its row and column indices."""
    rows, cols = np.nonzero(matrix)
    return pa.table({"row": rows, "col": cols, "value": matrix[rows, cols]})


class TestTripletsCsv(ImporterTests):
    name = "triplets"

    @pytest.fixture
    def sample(self, tmp_path):
        table = small_triplets()
        pacsv.write_csv(table, tmp_path / "r.csv")
        return Sample(tmp_path / "r.csv", SMALL)

    invalid_place = "line 6, entry 5"  # the header is line 1

    @pytest.fixture
    def invalid(self, tmp_path):
        pacsv.write_csv(small_triplets(INVALID), tmp_path / "bad.csv")
        return Sample(tmp_path / "bad.csv", INVALID)

    @pytest.fixture
    def damaged(self, tmp_path, sample):
        # Cut anywhere, a text file may still be whole lines: a line cut short instead.
        lines = sample.path.read_text().splitlines()
        (tmp_path / "garbage").mkdir()
        (tmp_path / "garbage" / "r.csv").write_bytes(GARBAGE)
        (tmp_path / "short").mkdir()
        (tmp_path / "short" / "r.csv").write_text("\n".join([*lines, "5,4"]) + "\n")
        return [tmp_path / "garbage" / "r.csv", tmp_path / "short" / "r.csv"]


class TestTripletsParquet(ImporterTests):
    name = "triplets"

    @pytest.fixture
    def sample(self, tmp_path):
        pq.write_table(small_triplets(), tmp_path / "r.parquet")
        return Sample(tmp_path / "r.parquet", SMALL)

    invalid_place = "row 5, entry 5"  # Parquet rows, from 1

    @pytest.fixture
    def invalid(self, tmp_path):
        pq.write_table(small_triplets(INVALID), tmp_path / "bad.parquet")
        return Sample(tmp_path / "bad.parquet", INVALID)


# -- ids and formats -------------------------------------------------------------------


def test_integer_ids_are_indices(tmp_path, int_triplets):
    rows, cols, vals = int_triplets
    write_lines(tmp_path / "r.csv", lines_of(*int_triplets))
    result = ingest_triplets(tmp_path / "r.csv", tmp_path / "r.zarr", chunks=(16, 10))

    shape = (max(rows) + 1, max(cols) + 1)
    expected = sp.coo_matrix((vals, (rows, cols)), shape=shape)
    assert (result.n_rows, result.n_cols) == shape
    assert result.n_train == result.train.nnz == len(vals)  # zeros counted
    assert (result.holdout, result.n_holdout, result.row_ids, result.col_ids) == (
        None,
        0,
        None,
        None,
    )
    assert stored_entries(tmp_path / "r.zarr") == dict(
        zip(zip(rows, cols, strict=True), vals, strict=True)
    )
    np.testing.assert_array_equal(
        open_matrix(tmp_path / "r.zarr").compute().toarray(), expected.toarray()
    )
    np.testing.assert_array_equal(read_ids(tmp_path / "r.zarr", 0), np.arange(shape[0]))


def test_string_ids_numbered_by_first_appearance(tmp_path, int_triplets):
    rows, cols, vals = int_triplets
    users = [f"user-{r}" for r in rows]
    items = [f"item {c}" for c in cols]  # a space inside an id is part of it
    write_lines(
        tmp_path / "r.csv",
        ["userId,itemId,rating", *lines_of(users, items, vals)],
    )
    result = ingest_triplets(tmp_path / "r.csv", tmp_path / "r.zarr", chunks=(8, 8))

    row_index, row_ids = number_by_appearance(users)
    col_index, col_ids = number_by_appearance(items)
    expected = {
        (row_index[u], col_index[i]): v for u, i, v in zip(users, items, vals, strict=True)
    }
    assert (result.n_rows, result.n_cols) == (len(row_ids), len(col_ids))
    assert stored_entries(tmp_path / "r.zarr") == expected
    assert read_ids(tmp_path / "r.zarr", "rows").tolist() == row_ids
    assert read_ids(tmp_path / "r.zarr", 1).tolist() == col_ids
    assert result.row_ids == f"{tmp_path / 'r.zarr'}/row_ids"
    info = matrix_info(tmp_path / "r.zarr")
    assert info.has_row_ids and info.has_col_ids and "ids" in str(info)


def test_integer_looking_ids_become_strings_when_one_is_not(tmp_path):
    # The string id comes last and the blocks are tiny: the first pass must start
    # over and number every row id, "10" and "2" included, by first appearance.
    lines = [f"{r},{c},1" for r, c in [(10, 0), (2, 1), (10, 1), (3, 0)] * 1] + ["x7,0,5"]
    write_lines(tmp_path / "r.csv", lines)
    result = ingest_triplets(tmp_path / "r.csv", tmp_path / "r.zarr", block_size=8)
    assert read_ids(tmp_path / "r.zarr", 0).tolist() == ["10", "2", "3", "x7"]
    assert result.col_ids is None and result.n_cols == 2
    assert stored_entries(tmp_path / "r.zarr") == {
        (0, 0): 1.0,
        (1, 1): 1.0,
        (0, 1): 1.0,
        (2, 0): 1.0,
        (3, 0): 5.0,
    }


@pytest.mark.parametrize(
    "name", ["r.csv", "r.tsv", "r.txt", "r.csv.gz", "r.tsv.bz2", "r.txt.gz", "r.parquet"]
)
def test_formats_agree_with_reference(tmp_path, name):
    users, items, vals = random_triplets(30, 20, 150, seed=2)
    users = [f"u{u}" for u in users]
    path = tmp_path / name
    if name.endswith(".parquet"):
        table = pa.table({"user": users, "item": items, "rating": vals})
        pq.write_table(table, path, row_group_size=40)
    else:
        sep = {"csv": ",", "tsv": "\t", "txt": "   "}[name.split(".")[1]]
        header = sep.join(["user", "item", "rating"])
        write_lines(path, [header, *lines_of(users, items, vals, sep=sep)])
    ingest_triplets(path, tmp_path / "r.zarr", block_size=256)

    row_index, row_ids = number_by_appearance(users)
    shape = (len(row_ids), max(items) + 1)
    reference = sp.coo_matrix(
        (vals, ([row_index[u] for u in users], items)), shape=shape
    ).toarray()
    np.testing.assert_array_equal(open_matrix(tmp_path / "r.zarr").compute().toarray(), reference)
    assert matrix_info(tmp_path / "r.zarr").nnz == len(vals)
    assert read_ids(tmp_path / "r.zarr", 0).tolist() == row_ids


@pytest.mark.parametrize(
    ("lines", "kwargs", "expected"),
    [
        # Non-numeric value field on line 1: a header.
        (["user,item,rating", "0,1,4"], {}, {(0, 1): 4.0}),
        # Numeric value field: data.
        (["1,0,2", "0,1,4"], {}, {(1, 0): 2.0, (0, 1): 4.0}),
        # Forced either way.
        (["5,5,5", "0,1,4"], {"header": True}, {(0, 1): 4.0}),
        (["0,1,4"], {"header": False}, {(0, 1): 4.0}),
        # Two columns: implicit value 1.0; header detected over integer ids.
        (["user,item", "1,0", "0,2"], {}, {(1, 0): 1.0, (0, 2): 1.0}),
        # Columns by name (which implies a header) and by index; extra columns ignored.
        (["ts,item,user,r", "9,0,1,3"], {"columns": ["user", "item", "r"]}, {(1, 0): 3.0}),
        (["9,0,1,3"], {"columns": [2, 1]}, {(1, 0): 1.0}),
        # Blank lines are skipped; whitespace around fields ignored.
        (["0, 1 , 4", "", " 1,0,2"], {}, {(0, 1): 4.0, (1, 0): 2.0}),
    ],
)
def test_header_and_columns(tmp_path, lines, kwargs, expected):
    write_lines(tmp_path / "r.csv", lines)
    ingest_triplets(tmp_path / "r.csv", tmp_path / "r.zarr", **kwargs)
    assert stored_entries(tmp_path / "r.zarr") == expected


def test_quoted_fields_and_byte_order_mark(tmp_path):
    (tmp_path / "r.csv").write_bytes(
        '\ufeffuser,item,rating\r\n"Smith, Ann",x,1\r\nbob,"say ""hi""",2\r\n'.encode()
    )
    ingest_triplets(tmp_path / "r.csv", tmp_path / "r.zarr")
    assert read_ids(tmp_path / "r.zarr", 0).tolist() == ["Smith, Ann", "bob"]
    assert read_ids(tmp_path / "r.zarr", 1).tolist() == ["x", 'say "hi"']


def test_dtype_follows_the_values(tmp_path):
    write_lines(tmp_path / "i.csv", ["0,0,3", "1,1,5"])
    write_lines(tmp_path / "f.csv", ["0,0,3.5", "1,1,5"])
    assert ingest_triplets(tmp_path / "i.csv", tmp_path / "i.zarr").train.dtype == np.float32
    assert ingest_triplets(tmp_path / "f.csv", tmp_path / "f.zarr").train.dtype == np.float64


def test_ingest_dispatches_triplet_files(tmp_path, int_triplets):
    write_lines(tmp_path / "r.tsv", lines_of(*int_triplets, sep="\t"))
    info = ingest(tmp_path / "r.tsv", tmp_path / "r.zarr", dtype="float64")
    assert info.nnz == len(int_triplets[0]) and info.dtype == np.float64
    with pytest.raises(InvalidParameterError, match="format"):
        ingest(tmp_path / "r.tsv", tmp_path / "d.zarr", format="dense")


# -- zeros -----------------------------------------------------------------------------


def test_explicit_zeros_are_stored_and_read_back(tmp_path):
    write_lines(tmp_path / "r.csv", ["0,0,0", "0,1,3", "2,1,0", "2,2,0.0"])
    result = ingest_triplets(tmp_path / "r.csv", tmp_path / "r.zarr")
    assert result.train.nnz == 4
    tile = open_matrix(tmp_path / "r.zarr").blocks[0, 0].compute()
    assert tile.nnz == 4 and int((tile.data == 0).sum()) == 3
    np.testing.assert_array_equal(tile.toarray(), [[0, 3, 0], [0, 0, 0], [0, 0, 0]])


def test_write_matrix_keep_zeros(tmp_path):
    X = sp.csr_matrix((np.array([0.0, 2.0, 0.0]), ([0, 1, 3], [1, 0, 2])), shape=(4, 3))
    write_matrix(X, tmp_path / "keep.zarr", keep_zeros=True, chunks=(2, 2))
    write_matrix(X, tmp_path / "drop.zarr", chunks=(2, 2))
    assert matrix_info(tmp_path / "keep.zarr").nnz == 3
    assert matrix_info(tmp_path / "drop.zarr").nnz == 1
    assert stored_entries(tmp_path / "keep.zarr") == {(0, 1): 0.0, (1, 0): 2.0, (3, 2): 0.0}
    assert X.nnz == 3  # the caller's matrix is untouched
    # Dask input of sparse chunks, rechunked to other tiles, keeps them too.
    lazy = da.from_array(X, chunks=(1, 3), asarray=False)
    write_matrix(lazy, tmp_path / "lazy.zarr", keep_zeros=True, chunks=(3, 2))
    assert stored_entries(tmp_path / "lazy.zarr") == stored_entries(tmp_path / "keep.zarr")
    with pytest.raises(InvalidParameterError, match="keep_zeros"):
        write_matrix(X, tmp_path / "dense.zarr", keep_zeros=True, format="dense")


# -- hold-out split --------------------------------------------------------------------


def _split(tmp_path, name, lines, **kwargs) -> tuple[Entries, Entries]:
    write_lines(tmp_path / f"{name}.csv", lines)
    result = ingest_triplets(tmp_path / f"{name}.csv", tmp_path / f"{name}.zarr", **kwargs)
    assert result.holdout is not None
    assert result.holdout.path == str(tmp_path / f"{name}.holdout.zarr")
    assert result.holdout.shape == result.train.shape
    train = stored_entries(tmp_path / f"{name}.zarr")
    held = stored_entries(tmp_path / f"{name}.holdout.zarr")
    assert (result.n_train, result.n_holdout) == (len(train), len(held))
    return train, held


def _by_ids(path, entries: Entries) -> dict[tuple[str, str], float]:
    rows, cols = read_ids(path, 0), read_ids(path, 1)
    return {(str(rows[r]), str(cols[c])): v for (r, c), v in entries.items()}


def test_split_is_a_partition_independent_of_blocks_and_order(tmp_path):
    users, items, vals = random_triplets(60, 40, 2000, seed=3)
    lines = [f"u{u},i{i},{v:g}" for u, i, v in zip(users, items, vals, strict=True)]
    train, held = _split(tmp_path, "a", lines, holdout=0.3, seed=7)
    full = {(f"u{u}", f"i{i}"): v for u, i, v in zip(users, items, vals, strict=True)}
    a_train, a_held = (_by_ids(tmp_path / "a.zarr", e) for e in (train, held))
    assert a_train.keys().isdisjoint(a_held.keys())
    assert a_train | a_held == full
    assert (
        read_ids(tmp_path / "a.holdout.zarr", 0).tolist()
        == read_ids(tmp_path / "a.zarr", 0).tolist()
    )

    # Tiny blocks (many batches): the same split, entry for entry.
    assert _split(tmp_path, "b", lines, holdout=0.3, seed=7, block_size=64) == (train, held)
    # Another line order numbers the ids differently, but holds out the same pairs.
    order = np.random.default_rng(0).permutation(len(lines))
    c_train, c_held = _split(tmp_path, "c", [lines[k] for k in order], holdout=0.3, seed=7)
    assert _by_ids(tmp_path / "c.zarr", c_held) == a_held
    assert _by_ids(tmp_path / "c.zarr", c_train) == a_train
    # Another seed, another split.
    assert _split(tmp_path, "d", lines, holdout=0.3, seed=8)[1] != held


def test_split_fraction(tmp_path):
    rows, cols, vals = random_triplets(500, 400, 40_000, seed=4)
    lines = lines_of(rows, cols, vals)
    train, held = _split(tmp_path, "r", lines, holdout=0.2)
    # Binomial(40000, 0.2): standard deviation 0.002; 5 of them.
    assert abs(len(held) / len(lines) - 0.2) < 0.01
    assert len(train) + len(held) == len(lines)


def test_holdout_destination(tmp_path, int_triplets):
    write_lines(tmp_path / "r.csv", lines_of(*int_triplets))
    result = ingest_triplets(
        tmp_path / "r.csv", tmp_path / "t.zarr", holdout=0.5, holdout_dst=tmp_path / "h"
    )
    assert result.holdout.path == str(tmp_path / "h")
    assert not (tmp_path / "t.holdout.zarr").exists()
    with pytest.raises(InvalidParameterError, match="holdout"):
        ingest_triplets(tmp_path / "r.csv", tmp_path / "u.zarr", holdout_dst=tmp_path / "h2")
    with pytest.raises(InvalidParameterError, match="same path"):
        ingest_triplets(
            tmp_path / "r.csv", tmp_path / "v.zarr", holdout=0.1, holdout_dst=tmp_path / "v.zarr"
        )


# -- errors ----------------------------------------------------------------------------


def test_duplicate_pair_names_both_lines(tmp_path):
    write_lines(tmp_path / "r.csv", ["user,item,r", "ann,x,1", "bob,x,2", "ann,y,3", "ann,x,4"])
    with pytest.raises(InvalidInputError, match=r"r\.csv.*'ann'.*'x'.*lines 2 and 5"):
        ingest_triplets(tmp_path / "r.csv", tmp_path / "r.zarr", holdout=0.5)
    assert no_stores(tmp_path)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["0,0,1", "1,1,abc"], r"line 2: value 'abc' is not a number"),
        (["0,0,1", "", "1,1,nan"], r"line 3, entry 2: the value nan is NaN \(1 such"),
        (["0,0,1", "1,1,-inf"], r"line 2, entry 2: the value -inf is infinite \(1 such"),
        (["0,0,1", "1,1,"], r"line 2: missing value"),
        (["0,0,1", "1,1,2,3"], r"line 2: 4 fields, expected 3: '1,1,2,3'"),
        (["u,i,r", "0,0,1", "1,1"], r"line 3: 2 fields, expected 3"),
        (["0,0,1", ",1,2"], r"line 2: missing row id"),
        ([], r"is empty"),
        (["user,item,rating"], r"holds no entries"),
        (["7"], r"1 field"),
    ],
)
def test_bad_lines_are_named(tmp_path, lines, message):
    write_lines(tmp_path / "r.csv", lines)
    with pytest.raises(InvalidInputError, match=r"r\.csv.*" + message):
        ingest_triplets(tmp_path / "r.csv", tmp_path / "r.zarr", holdout=0.2)
    assert no_stores(tmp_path)


def test_negative_nan_and_inf_are_counted_over_the_file_and_refused(tmp_path, capsys):
    """Issue: negative ratings used to be stored as given, refused only at fit time.
    The first pass counts them over the whole file (small blocks: over many batches),
    naming the first one's line (the header and a blank line counted) and entry."""
    from dasknmf.cli import EXIT_OK, EXIT_USAGE, main

    lines = ["user,item,rating", "ann,x,4", "", "bob,x,-2", "ann,y,nan", "cid,z,inf", "bob,y,-1"]
    write_lines(tmp_path / "r.csv", lines + [f"u{k},z,{k % 5}" for k in range(2000)])
    dst, held = tmp_path / "r.zarr", tmp_path / "r.holdout.zarr"
    with pytest.raises(InvalidInputError) as info:
        ingest_triplets(tmp_path / "r.csv", dst, holdout=0.3, block_size=64)
    assert str(info.value).startswith(
        f"{str(tmp_path / 'r.csv')!r}, line 4, entry 2: the value -2.0 is negative "
        "(4 such value(s) in the file)"
    )
    assert no_stores(tmp_path) and not dst.exists() and not held.exists()
    # The command line: exit 2, the same words, nothing written; then kept on request.
    assert main(["ingest", str(tmp_path / "r.csv"), str(dst), "--holdout", "0.3"]) == EXIT_USAGE
    assert "line 4, entry 2: the value -2.0 is negative (4 such" in capsys.readouterr().err
    assert no_stores(tmp_path)
    argv = ["ingest", str(tmp_path / "r.csv"), str(dst), "--keep-invalid"]
    assert main(argv) == EXIT_OK
    entries = stored_entries(dst)
    ids = read_ids(dst, "rows").tolist(), read_ids(dst, "columns").tolist()
    at = {(ids[0][r], ids[1][c]): v for (r, c), v in entries.items()}
    assert at[("bob", "x")] == -2.0 and at[("bob", "y")] == -1.0
    assert np.isnan(at[("ann", "y")]) and at[("cid", "z")] == np.inf
    assert matrix_info(dst).dtype == "float64"  # NaN and inf are not integers


def test_bad_whitespace_line_parquet_row_and_damaged_files(tmp_path):
    write_lines(tmp_path / "r.txt", ["0 0 1", "1  1", "2 2 2"])
    with pytest.raises(InvalidInputError, match=r"r\.txt', line 2: 2 fields, expected 3"):
        ingest_triplets(tmp_path / "r.txt", tmp_path / "r.zarr")
    pq.write_table(
        pa.table({"u": [0, 1, 2], "i": [0, 1, 2], "r": [1.0, None, 2.0]}), tmp_path / "p.parquet"
    )
    with pytest.raises(InvalidInputError, match=r"p\.parquet', row 2: missing value"):
        ingest_triplets(tmp_path / "p.parquet", tmp_path / "p.zarr")
    data = gzip.compress("".join(f"{k},{k % 7},1\n" for k in range(50_000)).encode())
    (tmp_path / "cut.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsupportedFormatError, match=r"cut\.csv\.gz"):
        ingest_triplets(tmp_path / "cut.csv.gz", tmp_path / "c.zarr")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(UnsupportedFormatError, match=r"bad\.parquet"):
        ingest_triplets(tmp_path / "bad.parquet", tmp_path / "b.zarr")
    assert no_stores(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"holdout": 1.0}, "holdout"),
        ({"holdout": -0.1}, "holdout"),
        ({"seed": -1}, "seed"),
        ({"columns": ["a"]}, "columns"),
        ({"columns": [0, 0, 1]}, "columns"),
        ({"columns": ["nope", "item", "rating"]}, "nope"),
        ({"columns": [0, 1, 5]}, "out of range"),
        ({"delimiter": "::"}, "delimiter"),
        ({"header": "yes"}, "header"),
        ({"chunks": (0, 5)}, "chunks"),
    ],
)
def test_bad_parameters(tmp_path, kwargs, match):
    write_lines(tmp_path / "r.csv", ["user,item,rating", "0,1,4"])
    with pytest.raises(InvalidParameterError, match=match):
        ingest_triplets(tmp_path / "r.csv", tmp_path / "r.zarr", **kwargs)
    with pytest.raises(InvalidParameterError, match="axis"):
        read_ids(tmp_path / "nowhere", 2)


def test_existing_stores_are_not_overwritten(tmp_path, int_triplets):
    write_lines(tmp_path / "r.csv", lines_of(*int_triplets))
    first = ingest_triplets(tmp_path / "r.csv", tmp_path / "r.zarr", holdout=0.5)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    # Checked before the file is read: a bad file still gives the store error.
    write_lines(tmp_path / "bad.csv", ["0,0,1", "1,1,x"])
    for src in ("r.csv", "bad.csv"):
        with pytest.raises(StoreExistsError, match="overwrite"):
            ingest_triplets(tmp_path / src, tmp_path / "r.zarr", holdout=0.5)
    # Only the hold-out store exists: refused as well, and r2.zarr is not created.
    with pytest.raises(StoreExistsError, match=r"r\.holdout\.zarr"):
        ingest_triplets(
            tmp_path / "r.csv",
            tmp_path / "r2.zarr",
            holdout=0.5,
            holdout_dst=tmp_path / "r.holdout.zarr",
        )
    assert not (tmp_path / "r2.zarr").exists()
    assert {p: p.read_bytes() for p in before} == before

    again = ingest_triplets(
        tmp_path / "r.csv", tmp_path / "r.zarr", holdout=0.5, seed=1, overwrite=True
    )
    assert again.train.path == first.train.path and again.n_holdout != first.n_holdout


# -- memory ----------------------------------------------------------------------------


def test_reading_passes_use_bounded_memory(tmp_path, monkeypatch):
    """2 M lines, 256 KiB blocks: the passes over the file hold a few blocks.

    Loading the file at once would hold its 2 M entries as arrays (48 MB as two int64
    index arrays and float64 values, measured by tracemalloc, which numpy reports
    to) and its ~22 MB of text in pyarrow's memory pool (more once parsed): both
    bounds below fail then. Measured up to the point where the stores are written
    (the writer's own bound is one row block of tiles, tested elsewhere).
    """
    n = 2_000_000
    k = np.arange(n)
    table = pa.table({"r": k // 50, "c": (k * 7) % 50, "v": k % 6})
    pacsv.write_csv(table, tmp_path / "big.csv", pacsv.WriteOptions(include_header=False))
    text_bytes = (tmp_path / "big.csv").stat().st_size

    pool = pa.proxy_memory_pool(pa.default_memory_pool())  # its own peak counter
    peaks: list[tuple[int, int]] = []
    plan_write = triplets_module.plan_write

    def measure_then_plan(*args, **kwargs):
        peaks.append((tracemalloc.get_traced_memory()[1], pool.max_memory()))
        return plan_write(*args, **kwargs)

    monkeypatch.setattr(triplets_module, "plan_write", measure_then_plan)
    old_pool = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        result = ingest_triplets(
            tmp_path / "big.csv",
            tmp_path / "big.zarr",
            holdout=0.1,
            chunks=(4096, 50),
            block_size=256 * 1024,
        )
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(old_pool)

    assert result.n_train + result.n_holdout == n
    assert (result.n_rows, result.n_cols) == (n // 50, 50)
    python_peak, arrow_peak = peaks[0]
    assert python_peak < 16 * 2**20, python_peak
    assert arrow_peak < min(24 * 2**20, text_bytes), (arrow_peak, text_bytes)


@pytest.mark.parametrize("top", [10**8, 10**18])
def test_integer_ids_far_sparser_than_their_range_are_numbered(tmp_path, top):
    """Issue: ids up to 10**18 crashed allocating 10**18 rows; up to 10**8 made a
    10**8 x 10**8 store for two entries. Such ids are numbered like string ids."""
    src = tmp_path / "r.csv"
    src.write_text(f"user,item,rating\n{top},5,4\n3,{top - 1},2\n{top},{top - 1},1\n")
    info = ingest_triplets(src, tmp_path / "r.zarr").train
    assert info.shape == (2, 2) and info.nnz == 3
    assert list(read_ids(tmp_path / "r.zarr", "rows")) == [str(top), "3"]
    assert list(read_ids(tmp_path / "r.zarr", "columns")) == ["5", str(top - 1)]
    V = open_matrix(tmp_path / "r.zarr").compute().toarray()
    np.testing.assert_array_equal(V, [[4, 1], [0, 2]])


def test_dense_integer_ids_stay_their_own_indices(tmp_path):
    src = tmp_path / "r.csv"
    src.write_text("0,0,1\n9,3,2\n5,1,1\n")
    info = ingest_triplets(src, tmp_path / "r.zarr").train
    assert info.shape == (10, 4)
    np.testing.assert_array_equal(read_ids(tmp_path / "r.zarr", "rows"), np.arange(10))
