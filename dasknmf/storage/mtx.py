"""Streaming import of MatrixMarket coordinate files larger than memory.

The body is parsed in blocks of about :data:`BLOCK_BYTES` of text. Each block's
entries are appended, split by row block (``row // tile_rows``), to one spill file per
row block in a temporary directory (an external bucket sort). The row blocks are
then presented to :func:`~dasknmf.storage.api.write_matrix` as a lazy dask array
whose chunk ``(i, j)`` loads spill file ``i`` and cuts tile ``(i, j)`` from it, so the
writer's own machinery (validation, tile-row order, atomic temp-dir-and-rename) is
reused unchanged. Peak memory is about one block of text and its parsed entries,
plus one row block of entries.
"""

from __future__ import annotations

import bz2
import gzip
import io
import logging
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import dask
import dask.array as da
import numpy as np
import scipy.io
import scipy.sparse as sp
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from dasknmf.errors import InvalidInputError, UnsupportedFormatError

from .api import _check_chunks, _check_dtype, _check_format, write_matrix
from .atomic import check_target
from .chunking import default_chunks
from .layout import grid_chunks
from .location import StoreLocation
from .tiling import stored_dtype

__all__ = ["BLOCK_BYTES", "MtxHeader", "iter_mtx_entries", "read_mtx_header", "write_mtx"]

logger = logging.getLogger(__name__)

BLOCK_BYTES = 32 * 2**20
"""Text parsed per block (about a million entries). Measured on 2 cores: ~6.8 M
entries/s with 32 MiB blocks, ~6 M with 16 MiB (per-call overhead) and no faster with
larger blocks, whose text and parsed copies only raise the peak memory."""

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


def _check_streamable(header: MtxHeader, path: Path) -> None:
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


def iter_mtx_entries(
    path: str | os.PathLike[str], *, block_bytes: int | None = None
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

    Raises
    ------
    UnsupportedFormatError
        Not a real/integer/pattern general/symmetric coordinate file; an entry that
        cannot be parsed or lies outside the shape (naming the line and entry); an
        entry count that differs from the header's; a damaged compressed stream.

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
            _check_streamable(header, p)
            line, seen = header.lines + 1, 0
            for block in _text_blocks(f, block_bytes):
                rows, cols, vals = _parse_block(block, header, p, line, seen + 1)
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


def _index_dtype(limit: int) -> np.dtype:
    return np.dtype(np.int32 if limit <= np.iinfo(np.int32).max else np.int64)


class _RowBlockSpill:
    """Entries appended to one raw record file per row block, in a temporary folder."""

    def __init__(self, folder: Path, shape: tuple[int, int], tile_rows: int) -> None:
        self.folder = folder
        self.shape = shape
        self.tile_rows = tile_rows
        self.n_blocks = -(-shape[0] // tile_rows)
        # Local row and column: int32 whenever they fit, 16 bytes per entry.
        self.record = np.dtype(
            [("row", _index_dtype(tile_rows)), ("col", _index_dtype(shape[1])), ("val", "<f8")]
        )
        # uint16 keys let the stable argsort use radix sort (10x faster than int64).
        self.key_dtype = np.dtype(np.uint16 if self.n_blocks <= 2**16 else np.int64)

    def path(self, i: int) -> Path:
        return self.folder / f"rows-{i:08d}.bin"

    def append(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
        key = (rows // self.tile_rows).astype(self.key_dtype)
        order = np.argsort(key, kind="stable")
        key = key[order]
        rec = np.empty(rows.size, dtype=self.record)
        rec["row"] = rows[order] - key.astype(np.int64) * self.tile_rows
        rec["col"] = cols[order]
        rec["val"] = vals[order]
        counts = np.bincount(key, minlength=self.n_blocks)
        bounds = np.concatenate(([0], np.cumsum(counts)))
        for i in np.flatnonzero(counts):
            # Opened per append, so the number of row blocks is not capped by the
            # limit on open files.
            with open(self.path(int(i)), "ab") as fh:
                rec[bounds[i] : bounds[i + 1]].tofile(fh)


def _load_row_block(path: str, shape: tuple[int, int], record: np.dtype, dtype: np.dtype) -> Any:
    if not os.path.exists(path):
        return sp.csr_matrix(shape, dtype=dtype)
    rec = np.fromfile(path, dtype=record)
    # COO -> CSR sums duplicates in float64, as scipy does for the in-memory path;
    # the writer drops explicit zeros and sorts indices.
    csr = sp.csr_matrix((rec["val"], (rec["row"], rec["col"])), shape=shape)
    del rec
    return csr.astype(dtype, copy=False)


def _column_tile(block: Any, c0: int, c1: int) -> Any:
    return block[:, c0:c1]


def _row_block_array(
    spill: _RowBlockSpill, tile_shape: tuple[int, int], dtype: np.dtype
) -> da.Array:
    """A dask array whose chunk ``(i, j)`` is tile ``(i, j)`` cut from spill file ``i``."""
    chunks = grid_chunks(spill.shape, tile_shape)
    row_chunks, col_chunks = chunks
    col_bounds = np.cumsum((0, *col_chunks)).tolist()
    name = f"dasknmf-mtx-{tokenize(str(spill.folder), spill.shape, tile_shape, dtype.str)}"
    dsk: dict[Any, Any] = {}
    for i, rows in enumerate(row_chunks):
        load = (_load_row_block, str(spill.path(i)), (rows, spill.shape[1]), spill.record, dtype)
        if len(col_chunks) == 1:
            dsk[(name, i, 0)] = load
            continue
        # One load per row block, shared by the tiles of its row (computed together).
        dsk[(f"{name}-load", i)] = load
        for j in range(len(col_chunks)):
            dsk[(name, i, j)] = (
                _column_tile,
                (f"{name}-load", i),
                col_bounds[j],
                col_bounds[j + 1],
            )
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    return da.Array(graph, name, chunks, meta=sp.csr_matrix((0, 0), dtype=dtype))


def write_mtx(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    chunks: tuple[int, int] | None = None,
    format: Literal["sparse", "dense"] | None = None,
    dtype: Any = None,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
    block_bytes: int | None = None,
    spill_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Write a MatrixMarket coordinate file to a store with bounded memory.

    Parameters are those of :func:`~dasknmf.storage.api.write_matrix`, plus:

    block_bytes : int, optional
        Text parsed per block, default :data:`BLOCK_BYTES`.
    spill_dir : str or os.PathLike, optional
        Where the temporary row-block files go (about 16 bytes per entry, twice that
        for the off-diagonal entries of a symmetric file). Default:
        :func:`tempfile.gettempdir` (``$TMPDIR``). Removed on return and on error.

    Notes
    -----
    Tile shape: :func:`default_chunks` with the header's entry count (doubled for a
    symmetric file). dtype: as :func:`write_matrix` for the values the file holds:
    ``real`` is stored as float64, ``integer`` and ``pattern`` (booleans) as float32.

    Examples
    --------
    >>> import tempfile, scipy.sparse as sp
    >>> d = tempfile.mkdtemp()
    >>> scipy.io.mmwrite(os.path.join(d, "e.mtx"), sp.eye(5, format="coo"))
    >>> write_mtx(os.path.join(d, "e.mtx"), os.path.join(d, "e.zarr"), chunks=(2, 5))
    """
    p = Path(src)
    header = read_mtx_header(p)
    _check_streamable(header, p)
    if 0 in header.shape:
        raise InvalidInputError(f"{str(p)!r} holds an empty matrix (shape {header.shape})")
    kind = _check_format(format)
    natural = {"real": np.float64, "integer": np.int64, "pattern": np.bool_}[header.field]
    out_dtype = _check_dtype(dtype) or stored_dtype(np.dtype(natural))
    if chunks is None:
        nnz = header.nnz * (2 if header.symmetry == "symmetric" else 1)
        tile_shape = default_chunks(header.shape, nnz=nnz, itemsize=out_dtype.itemsize)
    else:
        tile_shape = _check_chunks(chunks, header.shape)
    # Refuse an existing destination before the long pass over the file;
    # write_matrix checks again when it writes.
    check_target(StoreLocation.from_user(dst, storage_options), overwrite=overwrite)

    folder = Path(tempfile.mkdtemp(prefix="dasknmf-mtx-", dir=spill_dir))
    try:
        spill = _RowBlockSpill(folder, header.shape, tile_shape[0])
        start = time.perf_counter()
        for rows, cols, vals in iter_mtx_entries(p, block_bytes=block_bytes):
            spill.append(rows, cols, vals)
        logger.info("read %d entries of %s in %.1f s", header.nnz, p, time.perf_counter() - start)
        X = _row_block_array(spill, tile_shape, out_dtype)
        # The spill files are on this machine: a distributed client, if one is
        # active, must not receive the tasks that read them.
        with dask.config.set(scheduler="synchronous"):
            write_matrix(
                X,
                dst,
                chunks=tile_shape,
                format=kind,
                dtype=out_dtype,
                overwrite=overwrite,
                storage_options=storage_options,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
