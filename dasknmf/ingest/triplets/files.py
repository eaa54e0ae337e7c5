"""Streaming readers of triplet files: one (row id, column id, value) per line or row.

Text files (``.csv``, ``.tsv``, ``.txt``, each optionally ``.gz`` or ``.bz2``
compressed) are parsed by ``pyarrow.csv.open_csv`` one block of ``block_size`` bytes
at a time, Parquet files by ``ParquetFile.iter_batches``, so memory is bounded by a
few batches whatever the file size. Every batch is validated here, where the line (text)
or row (Parquet) of each entry is known, so that errors name the file, the place and
the bad value; consumers see clean batches only.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from dasknmf.errors import (
    InputFileNotFoundError,
    InvalidInputError,
    InvalidParameterError,
    UnsupportedFormatError,
)
from dasknmf.params import check_int, check_option

from .columns import (
    COMPRESSIONS,
    PARQUET_SUFFIX,
    check_columns,
    detect_header,
    resolve_columns,
    triplet_suffix,
)

__all__ = ["DEFAULT_BLOCK_SIZE", "TripletBatch", "TripletFile"]

logger = logging.getLogger(__name__)

DEFAULT_BLOCK_SIZE = 2 * 2**20
"""Bytes of text parsed at once (Parquet: rows per batch is this divided by 64).

pyarrow's streaming CSV reader reads and parses several blocks ahead, so its memory
is a few tens of times this, whatever the file size; larger blocks were not faster
(docs/benchmarks.md, "Figures behind the code").
"""

# None: fields are separated by runs of whitespace.
_DEFAULT_DELIMITERS = {".csv": ",", ".tsv": "\t", ".txt": None}
# Whitespace-separated files are read one whole line per record (with a delimiter
# that text files do not contain) and split by pyarrow's whitespace splitter, which,
# unlike the CSV parser, treats a run of blanks as one separator.
_LINE_DELIMITER = "\x1f"
_AXES = ("row id", "column id")


@dataclass(frozen=True)
class TripletBatch:
    """Validated entries: ids as arrow arrays, float64 values, and the line (or
    Parquet row) number of each entry, counted from 1 (a header line included).

    Values are numbers; whether they are finite and non-negative is the ingest's to
    decide (:class:`~dasknmf.ingest.values.InvalidValues`), over the whole file."""

    rows: pa.Array
    cols: pa.Array
    values: np.ndarray
    where: np.ndarray


class TripletFile:
    """A triplet file, checked and ready to be streamed any number of times.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv``, ``.tsv``, ``.txt`` (optionally ``.gz``/``.bz2``) or ``.parquet``
        file.
    delimiter : str, optional
        One character. Default: ``","`` for ``.csv``, tab for ``.tsv``, runs of
        whitespace for ``.txt``. Not for Parquet.
    header : {"auto", True, False}
        Whether the first line holds column names; see
        :func:`~dasknmf.ingest.triplets.columns.detect_header`.
        Not for Parquet.
    columns : sequence of 2 or 3 str or int, optional
        Row, column and value columns, by name or 0-based index. Default: the first
        three (two when the file has two: every value is then 1.0).
    block_size : int
        Bytes of text per parsed block; Parquet batches hold ``block_size // 64``
        rows.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "r.csv"
    >>> _ = p.write_text("user,item,rating\\nann,x,4\\nbob,y,0\\n")
    >>> f = TripletFile(p)
    >>> f.header, [b.values.tolist() for b in f.batches()]
    (True, [[4.0, 0.0]])
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        delimiter: str | None = None,
        header: bool | Literal["auto"] = "auto",
        columns: Sequence[str | int] | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        self.path = Path(path)
        suffix = triplet_suffix(self.path)
        if suffix is None:
            raise UnsupportedFormatError(f"{str(self.path)!r} is not a triplet file")
        header = check_option("header", header, ("auto", True, False))
        self.block_size = int(check_int("block_size", block_size, low=1))
        wanted = check_columns(columns)
        if delimiter is not None and (
            not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '\r\n"'
        ):
            raise InvalidParameterError(
                "The 'delimiter' parameter must be None or one character other than a "
                f"quote or line break; got {delimiter!r}."
            )
        if not self.path.is_file():
            raise InputFileNotFoundError(
                f"input file {str(self.path)!r} does not exist (or is not a file)"
            )
        self.parquet = suffix == PARQUET_SUFFIX
        self.unit = "row" if self.parquet else "line"
        self._bad_row: Any = None
        if self.parquet:
            if delimiter is not None or header != "auto":
                raise InvalidParameterError(
                    "The 'delimiter' and 'header' parameters do not apply to Parquet files; "
                    f"got delimiter={delimiter!r}, header={header!r}."
                )
            self.header = True
            self._init_parquet(wanted)
        else:
            compressed = self.path.name.lower().rsplit(".", 1)[-1]
            self.compression = COMPRESSIONS.get("." + compressed)
            self.delimiter = delimiter if delimiter is not None else _DEFAULT_DELIMITERS[suffix]
            self._init_text(wanted, header)
        self.has_values = len(self.selected) == 3

    # -- set-up ----------------------------------------------------------------------

    def _init_parquet(self, wanted: list[str | int] | None) -> None:
        try:
            self._parquet = pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            raise UnsupportedFormatError(
                f"cannot read {str(self.path)!r} as Parquet ({exc})"
            ) from exc
        self.names = list(self._parquet.schema_arrow.names)
        self.n_fields = len(self.names)
        self.selected = resolve_columns(wanted, self.names, self.n_fields, self.path)

    def _init_text(self, wanted: list[str | int] | None, header: bool | str) -> None:
        lines = self._first_lines(2)
        if not lines:
            raise InvalidInputError(f"{str(self.path)!r} is empty: it holds no entries")
        first = self._split(lines[0])
        second = self._split(lines[1]) if len(lines) > 1 else None
        self.n_fields = len(first)
        by_name = wanted is not None and any(isinstance(c, str) for c in wanted)
        if by_name and header is False:
            raise InvalidParameterError(
                f"columns {wanted!r} names columns, which needs a header line; got header=False."
            )
        if by_name:
            header = True
        elif header == "auto":
            indices = resolve_columns(wanted, None, self.n_fields, self.path)
            header = detect_header(first, second, indices)
            logger.debug("%s: header %s", self.path, "detected" if header else "not detected")
        self.header = bool(header)
        if self.header and len(lines) < 2:
            raise InvalidInputError(
                f"{str(self.path)!r} holds no entries: its only line was read as a header "
                "(pass header=False if it is an entry)"
            )
        self.names = [f.strip() for f in first] if self.header else None
        self.selected = resolve_columns(wanted, self.names, self.n_fields, self.path)

    def _open_text(self) -> io.TextIOBase:
        # utf-8-sig: a byte-order mark is not part of the first field.
        if self.compression == "gzip":
            return gzip.open(self.path, "rt", encoding="utf-8-sig")
        if self.compression == "bz2":
            return bz2.open(self.path, "rt", encoding="utf-8-sig")
        return open(self.path, encoding="utf-8-sig")

    def _first_lines(self, n: int) -> list[str]:
        out = []
        try:
            with self._open_text() as fh:
                for line in fh:
                    out.append(line.rstrip("\r\n"))
                    if len(out) == n:
                        break
        except (UnicodeDecodeError, OSError, EOFError) as exc:
            raise UnsupportedFormatError(
                f"cannot read {str(self.path)!r} as UTF-8 text ({exc})"
            ) from exc
        return out

    def _split(self, line: str) -> list[str]:
        if self.delimiter is None:
            return line.split()
        return next(csv.reader([line], delimiter=self.delimiter))

    # -- errors ----------------------------------------------------------------------

    def error(self, where: int | None, what: str) -> InvalidInputError:
        """An :class:`InvalidInputError` naming the file and the line (or row)."""
        place = f", {self.unit} {where}" if where is not None else ""
        return InvalidInputError(f"{str(self.path)!r}{place}: {what}")

    def _on_invalid_row(self, row: Any) -> str:
        # pyarrow does not know the line number here; it is looked up afterwards.
        self._bad_row = row
        return "error"

    def _line_of(self, text: str) -> int | None:
        with self._open_text() as fh:
            for number, line in enumerate(fh, 1):
                if line.rstrip("\r\n") == text:
                    return number
        return None

    def _parse_error(self, exc: Exception) -> InvalidInputError:
        row, self._bad_row = self._bad_row, None
        if row is None:
            return InvalidInputError(f"cannot parse {str(self.path)!r} as delimited text: {exc}")
        return self.error(
            self._line_of(row.text),
            f"{row.actual_columns} fields, expected {row.expected_columns}: {row.text!r}",
        )

    # -- reading ---------------------------------------------------------------------

    def batches(self) -> Iterator[TripletBatch]:
        """Stream the entries, one validated batch at a time (blank lines skipped).

        Raises
        ------
        InvalidInputError
            A line with a different number of fields, a missing id, a value that is
            not a number; naming the file, the line (or row) and the value.
        """
        if self.parquet:
            yield from self._parquet_batches()
        else:
            yield from self._text_batches()

    def _text_batches(self) -> Iterator[TripletBatch]:
        whitespace = self.delimiter is None
        names = ["f0"] if whitespace else [f"f{i}" for i in self.selected]
        read = pcsv.ReadOptions(
            block_size=self.block_size,
            skip_rows=int(self.header),
            autogenerate_column_names=True,
            # With threads, pyarrow reads ahead more blocks the more CPUs there are;
            # parsing is not the bottleneck here, so memory stays machine-independent.
            use_threads=False,
        )
        parse = pcsv.ParseOptions(
            delimiter=_LINE_DELIMITER if whitespace else self.delimiter,
            quote_char=False if whitespace else '"',
            ignore_empty_lines=False,  # keeps record i on line i: exact line numbers
            invalid_row_handler=self._on_invalid_row,
        )
        convert = pcsv.ConvertOptions(
            include_columns=names, column_types=dict.fromkeys(names, pa.string())
        )
        line = 1 + int(self.header)
        with pa.input_stream(str(self.path), compression=self.compression) as stream:
            try:
                reader = pcsv.open_csv(
                    stream, read_options=read, parse_options=parse, convert_options=convert
                )
                for rb in reader:
                    where = np.arange(line, line + rb.num_rows, dtype=np.int64)
                    line += rb.num_rows
                    fields = [rb.column(name) for name in names]
                    batch = self._whitespace(fields[0], where) if whitespace else (fields, where)
                    yield self._clean(*self._drop_blank(*batch))
            except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                raise self._parse_error(exc) from None
            except OSError as exc:
                # A damaged or truncated .gz / .bz2 stream (pyarrow's IOError).
                raise UnsupportedFormatError(f"cannot read {str(self.path)!r}: {exc}") from exc

    def _whitespace(self, text: pa.Array, where: np.ndarray) -> tuple[list[pa.Array], np.ndarray]:
        text = pc.utf8_trim_whitespace(text)
        keep = np.asarray(pc.greater(pc.utf8_length(text), 0), dtype=bool)
        text, where = text.filter(pa.array(keep)), where[keep]
        parts = pc.utf8_split_whitespace(text)
        counts = np.asarray(pc.list_value_length(parts), dtype=np.int64)
        bad = np.flatnonzero(counts != self.n_fields)
        if bad.size:
            i = int(bad[0])
            raise self.error(
                int(where[i]),
                f"{counts[i]} fields, expected {self.n_fields}: {text[i].as_py()!r}",
            )
        return [pc.list_element(parts, i) for i in self.selected], where

    def _drop_blank(
        self, fields: list[pa.Array], where: np.ndarray
    ) -> tuple[list[pa.Array], np.ndarray]:
        # A blank line reads as a record of empty fields.
        blank = np.ones(len(where), dtype=bool)
        for col in fields:
            blank &= np.asarray(pc.equal(pc.utf8_length(col), 0), dtype=bool)
        if not blank.any():
            return fields, where
        keep = pa.array(~blank)
        return [col.filter(keep) for col in fields], where[~blank]

    def _parquet_batches(self) -> Iterator[TripletBatch]:
        names = [self.names[i] for i in self.selected]
        row = 1
        try:
            for rb in self._parquet.iter_batches(
                batch_size=max(1, self.block_size // 64), columns=names
            ):
                where = np.arange(row, row + rb.num_rows, dtype=np.int64)
                row += rb.num_rows
                fields = [rb.column(i) for i in range(len(names))]
                for what, col in zip((*_AXES, "value"), fields, strict=False):
                    if col.null_count:
                        first = int(np.flatnonzero(np.asarray(col.is_null()))[0])
                        raise self.error(int(where[first]), f"missing {what}")
                yield self._clean(fields, where)
        except (pa.ArrowException, OSError) as exc:
            raise UnsupportedFormatError(
                f"cannot read {str(self.path)!r} as Parquet ({exc})"
            ) from exc

    def _clean(self, fields: list[pa.Array], where: np.ndarray) -> TripletBatch:
        for what, col in zip(_AXES, fields[:2], strict=True):
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                empty = np.asarray(
                    pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0), dtype=bool
                )
                if empty.any():
                    raise self.error(int(where[np.argmax(empty)]), f"missing {what}")
        if self.has_values:
            values = self._values(fields[2], where)
        else:
            values = np.ones(len(where), dtype=np.float64)
        return TripletBatch(fields[0], fields[1], values, where)

    def _values(self, col: pa.Array, where: np.ndarray) -> np.ndarray:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pc.utf8_trim_whitespace(col)
            try:
                values = pc.cast(col, pa.float64())
            except pa.ArrowInvalid:
                i = _first_unparsable(col)
                text = col[i].as_py()
                what = "missing value" if text == "" else f"value {text!r} is not a number"
                raise self.error(int(where[i]), what) from None
        elif (
            pa.types.is_integer(col.type)
            or pa.types.is_floating(col.type)
            or (pa.types.is_boolean(col.type) or pa.types.is_decimal(col.type))
        ):
            values = pc.cast(col, pa.float64())
        else:
            raise self.error(None, f"the value column has type {col.type}; expected numbers")
        return np.asarray(values, dtype=np.float64)


def _first_unparsable(col: pa.Array) -> int:
    """Index of the first string that does not parse as float64 (one must exist).

    A bisection of casts (the error names no position), so a few more casts than
    the batch's length in total, on the error path only.
    """
    lo, hi = 0, len(col)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            pc.cast(col.slice(lo, mid - lo), pa.float64())
        except pa.ArrowInvalid:
            hi = mid
        else:
            lo = mid
    return lo
