"""Streaming reader of MatrixMarket coordinate files: header first, then the body
in blocks of about :data:`BLOCK_BYTES` of text, so a file may be larger than memory.
"""

from __future__ import annotations

import bz2
import gzip
import io
import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import scipy.io
import scipy.sparse as sp

from dasknmf.errors import UnsupportedFormatError

from ..values import InvalidValues

__all__ = ["BLOCK_BYTES", "MtxHeader", "check_streamable", "iter_mtx_entries", "read_mtx_header"]

logger = logging.getLogger(__name__)

BLOCK_BYTES = 32 * 2**20
"""Text parsed per block (about a million entries). Smaller blocks parsed slower
(per-call overhead) and larger ones no faster, while their text and parsed copies
raise the peak memory (docs/benchmarks.md, "Figures behind the code")."""

_FIELDS = ("real", "integer", "pattern")
_SYMMETRIES = ("general", "symmetric")
# Errors from a damaged .gz/.bz2 stream or undecodable text: the file is not what its
# name says. PermissionError and friends are OSErrors too but are re-raised as is.
_STREAM_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError)
_MAX_HEADER_LINE = 1 << 16


@dataclass(frozen=True)
class MtxHeader:
    """The banner and size line of a MatrixMarket file.

    Examples
    --------
    >>> MtxHeader("coordinate", "real", "general", (3, 4), 5, 2).is_coordinate
    True
    """

    format: str
    field: str
    symmetry: str
    shape: tuple[int, int]
    nnz: int | None
    lines: int
    """Lines up to and including the size line; the body starts on line ``lines + 1``."""

    @property
    def is_coordinate(self) -> bool:
        """Whether the body lists ``row col [value]`` entries (sparse storage)."""
        return self.format == "coordinate"

    @property
    def banner(self) -> str:
        """The banner line, normalised to lower case."""
        return f"%%MatrixMarket matrix {self.format} {self.field} {self.symmetry}"


def _open(path: Path) -> IO[bytes]:
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


def _unreadable(path: Path, exc: BaseException) -> UnsupportedFormatError:
    return UnsupportedFormatError(
        f"cannot read {str(path)!r} as MatrixMarket ({type(exc).__name__}: {exc})"
    )


def _parse_header(f: IO[bytes], path: Path) -> MtxHeader:
    banner = f.readline(_MAX_HEADER_LINE).decode("ascii", errors="replace").strip()
    words = banner.lower().split()
    if len(words) != 5 or words[0] != "%%matrixmarket" or words[1] != "matrix":
        raise UnsupportedFormatError(
            f"cannot read {str(path)!r} as MatrixMarket: the first line must be "
            f"'%%MatrixMarket matrix <format> <field> <symmetry>', got {banner[:200]!r}"
        )
    fmt, field, symmetry = words[2:]
    if fmt not in ("coordinate", "array"):
        raise UnsupportedFormatError(
            f"{str(path)!r}: unknown MatrixMarket format {fmt!r} in header {banner!r}"
        )
    lines = 1
    while True:
        raw = f.readline(_MAX_HEADER_LINE)
        lines += 1
        if not raw:
            raise UnsupportedFormatError(
                f"{str(path)!r}: MatrixMarket file ends before its size line"
            )
        text = raw.decode("ascii", errors="replace").strip()
        if text and not text.startswith("%"):
            break
    want = 3 if fmt == "coordinate" else 2
    try:
        sizes = [int(t) for t in text.split()]
    except ValueError:
        sizes = []
    if len(sizes) != want or min(sizes) < 0:
        raise UnsupportedFormatError(
            f"{str(path)!r}: line {lines} should be the size line "
            f"({'rows cols entries' if want == 3 else 'rows cols'}), got {text[:200]!r}"
        )
    return MtxHeader(
        fmt, field, symmetry, (sizes[0], sizes[1]), sizes[2] if want == 3 else None, lines
    )


def read_mtx_header(path: str | os.PathLike[str]) -> MtxHeader:
    """Read the banner and size line of a MatrixMarket file, not its body.

    Raises
    ------
    UnsupportedFormatError
        The file does not start with a MatrixMarket banner and size line, or its
        compressed stream is damaged.

    Examples
    --------
    >>> import tempfile, scipy.sparse as sp
    >>> p = os.path.join(tempfile.mkdtemp(), "e.mtx")
    >>> scipy.io.mmwrite(p, sp.eye(3, format="coo"))
    >>> read_mtx_header(p).shape
    (3, 3)
    """
    p = Path(path)
    try:
        with _open(p) as f:
            return _parse_header(f, p)
    except (PermissionError, IsADirectoryError, FileNotFoundError):
        raise
    except _STREAM_ERRORS as exc:
        raise _unreadable(p, exc) from exc


def check_streamable(header: MtxHeader, path: Path) -> None:
    """Raise :class:`UnsupportedFormatError` unless ``header`` is a coordinate file this
    reader streams: field real/integer/pattern, symmetry general/symmetric.

    Examples
    --------
    >>> check_streamable(MtxHeader("coordinate", "integer", "symmetric", (2, 2), 1, 2), Path("x"))
    """
    if not header.is_coordinate:
        raise UnsupportedFormatError(f"{str(path)!r} is a dense MatrixMarket 'array' file")
    if header.field not in _FIELDS or header.symmetry not in _SYMMETRIES:
        raise UnsupportedFormatError(
            f"cannot import {str(path)!r}: header {header.banner!r} is not supported; "
            f"dasknmf reads fields {'/'.join(_FIELDS)} with symmetry "
            f"{'/'.join(_SYMMETRIES)} (real, non-negative data)"
        )
    if header.symmetry == "symmetric" and header.shape[0] != header.shape[1]:
        raise UnsupportedFormatError(
            f"{str(path)!r}: a symmetric matrix must be square, header says {header.shape}"
        )


def _text_blocks(f: IO[bytes], block_bytes: int) -> Iterator[tuple[bytes, bytes, int]]:
    """Yield the rest of ``f`` as ``(head, tail, lines)``: about ``block_bytes`` of
    text, completed to a line end by ``tail``, and its number of lines.

    Kept as two pieces so the text is copied once, when the parser's input is built.
    """
    while True:
        head = f.read(block_bytes)
        if not head:
            return
        tail = b"" if head.endswith(b"\n") else f.readline()
        if not (tail or head).endswith(b"\n"):  # last line without a line end
            tail += b"\n"
        yield head, tail, head.count(b"\n") + tail.count(b"\n")


def _is_entry(line: bytes) -> bool:
    s = line.strip()
    return bool(s) and not s.startswith(b"%")


def _fast_parse(pieces: tuple[bytes, ...], n_lines: int, header: MtxHeader) -> sp.coo_matrix:
    # scipy.io.mmread parses with fast_matrix_market (C++, multi-threaded), 4-7 times
    # faster than np.fromstring / np.loadtxt; it reads whole files only, so each
    # block is handed to it as a small file of its own.
    m, n = header.shape
    banner = f"%%MatrixMarket matrix coordinate {header.field} general\n{m} {n} {n_lines}\n"
    return scipy.io.mmread(io.BytesIO(b"".join((banner.encode(), *pieces))))


def _locate_error(
    text: bytes, header: MtxHeader, path: Path, first_line: int, first_entry: int
) -> UnsupportedFormatError | None:
    """The precise error for the first bad entry of ``text`` (a slow, per-line scan)."""
    m, n = header.shape
    want = 2 if header.field == "pattern" else 3
    entry = first_entry
    for k, line in enumerate(text.splitlines()):
        if not _is_entry(line):
            continue
        where = f"{str(path)!r}, line {first_line + k}, entry {entry}"
        tokens = line.split()
        try:
            i, j = int(tokens[0]), int(tokens[1])
            if want == 3:
                float(tokens[2])
        except (ValueError, IndexError):
            shown = line.decode("ascii", errors="replace").strip()[:200]
            return UnsupportedFormatError(
                f"{where}: cannot parse {shown!r} as 'row col{' value' if want == 3 else ''}' "
                f"({header.field} field)"
            )
        for label, index, size in (("row", i, m), ("column", j, n)):
            if not 1 <= index <= size:
                return UnsupportedFormatError(
                    f"{where}: {label} index {index} is outside [1, {size}] "
                    f"(header shape {m} x {n})"
                )
        entry += 1
    return None


def _parse_block(
    block: tuple[bytes, bytes, int],
    header: MtxHeader,
    path: Path,
    first_line: int,
    first_entry: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse one block of whole lines into 0-based (rows, cols, float64 values)."""
    head, tail, n_lines = block
    try:
        coo = _fast_parse((head, tail), n_lines, header)
    except (ValueError, OverflowError):
        # Blank or comment lines make the line count wrong; anything else is an error
        # that the per-line scan names precisely.
        text = head + tail
        kept = [line for line in text.splitlines() if _is_entry(line)]
        try:
            coo = _fast_parse((b"\n".join(kept), b"\n"), len(kept), header)
        except (ValueError, OverflowError) as exc:
            located = _locate_error(text, header, path, first_line, first_entry)
            raise located or UnsupportedFormatError(
                f"{str(path)!r}: cannot parse the entries on lines {first_line} and after: {exc}"
            ) from exc
    return coo.row, coo.col, coo.data.astype(np.float64, copy=False)


def _entry_line(text: bytes, first_line: int, index: int) -> int:
    """The line number of the ``index``-th entry (0-based) of a block of lines."""
    entries = (k for k, line in enumerate(text.splitlines()) if _is_entry(line))
    for _ in range(index):
        next(entries)
    return first_line + next(entries)


def _check_values(
    vals: np.ndarray, block: tuple[bytes, bytes, int], path: Path, first_line: int, seen: int
) -> None:
    """Refuse the block's first negative, NaN or infinite value, naming its line."""
    found = InvalidValues(repr(str(path)))
    text = block[0] + block[1]
    found.add(vals, lambda i: f"line {_entry_line(text, first_line, i)}, entry {seen + i + 1}")
    found.check(f"in lines {first_line}-{first_line + block[2] - 1}")


def iter_mtx_entries(
    path: str | os.PathLike[str], *, block_bytes: int | None = None, check_values: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield the entries of a MatrixMarket coordinate file, block by block.

    Each item is ``(rows, cols, values)``: 0-based int indices and float64 values in
    file order, duplicates as they appear; the mirrored entries of a symmetric file
    are included. The number of entries is checked against the header.

    Parameters
    ----------
    path : str or os.PathLike
        ``.mtx``, optionally ``.gz``/``.bz2`` compressed.
    block_bytes : int, optional
        Text per block, default :data:`BLOCK_BYTES`.
    check_values : bool, default False
        Refuse a negative, NaN or infinite value.

    Raises
    ------
    UnsupportedFormatError
        Not a real/integer/pattern general/symmetric coordinate file; an entry that
        cannot be parsed or lies outside the shape (naming the line and entry); an
        entry count that differs from the header's; a damaged compressed stream.
    InvalidInputError
        With ``check_values``, the first negative, NaN or infinite value, naming its
        line and entry.

    Examples
    --------
    >>> import tempfile, scipy.sparse as sp
    >>> p = os.path.join(tempfile.mkdtemp(), "e.mtx")
    >>> scipy.io.mmwrite(p, sp.eye(3, format="coo"))
    >>> sum(r.size for r, _, _ in iter_mtx_entries(p))
    3
    """
    p = Path(path)
    block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
    try:
        with _open(p) as f:
            header = _parse_header(f, p)
            check_streamable(header, p)
            line, seen = header.lines + 1, 0
            for block in _text_blocks(f, block_bytes):
                rows, cols, vals = _parse_block(block, header, p, line, seen + 1)
                if check_values:
                    _check_values(vals, block, p, line, seen)
                seen += rows.size
                line += block[2]
                if seen > header.nnz:
                    raise UnsupportedFormatError(
                        f"{str(p)!r}: the header declares {header.nnz} entries but there "
                        f"are more (at least {seen}, up to line {line - 1})"
                    )
                if header.symmetry == "symmetric":
                    off = rows != cols
                    rows, cols = (
                        np.concatenate((rows, cols[off])),
                        np.concatenate((cols, rows[off])),
                    )
                    vals = np.concatenate((vals, vals[off]))
                yield rows, cols, vals
    except (PermissionError, IsADirectoryError, FileNotFoundError):
        raise
    except _STREAM_ERRORS as exc:
        raise _unreadable(p, exc) from exc
    if seen != header.nnz:
        raise UnsupportedFormatError(
            f"{str(p)!r}: the header declares {header.nnz} entries, the file holds {seen} "
            "(truncated file?)"
        )
