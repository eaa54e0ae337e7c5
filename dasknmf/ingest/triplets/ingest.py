"""Ingest of triplet files (``user,item,rating``) into stores, with a hold-out split.

Two streamed passes over the file (:mod:`dasknmf.ingest.triplets.files`):

1. learn the ids of both axes (:class:`~dasknmf.storage.AxisIds`), count the
   entries and check every value, so that a bad file is refused before anything is
   written;
2. turn ids into indices, send each entry to the train or the hold-out side by a hash
   of its ids and the seed, and bucket the entries by row block into spill files
   (:class:`~dasknmf.ingest.spill.RowBlockSpill`), from which both stores are
   written together (:func:`~dasknmf.storage.atomic_store`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import dask
import numpy as np

from dasknmf.errors import InvalidInputError, InvalidParameterError
from dasknmf.params import check_chunks, check_float_dtype, check_int, check_real
from dasknmf.storage import (
    COL_IDS,
    ROW_IDS,
    AxisIds,
    MatrixInfo,
    StoreLocation,
    atomic_store,
    check_target,
    clip_chunks,
    default_chunks,
    matrix_info,
    plan_write,
    write_ids,
    write_plan,
)

from ..spill import DuplicateEntryError, RowBlockSpill
from ..split import default_holdout_path, held_out
from ..values import InvalidValues
from .files import DEFAULT_BLOCK_SIZE, TripletFile

__all__ = ["TripletIngest", "ingest_triplets"]

logger = logging.getLogger(__name__)

# Values that are all integers of at most 2**24 in magnitude are exact in float32.
_FLOAT32_EXACT = 2**24


@dataclass(frozen=True)
class TripletIngest:
    """What :func:`ingest_triplets` wrote.

    Attributes
    ----------
    train : MatrixInfo
        The store at ``dst``.
    holdout : MatrixInfo or None
        The hold-out store, None when ``holdout=0``.
    n_rows, n_cols : int
        Shape of both stores.
    n_train, n_holdout : int
        Entries in each store (stored zeros included).
    row_ids, col_ids : str or None
        Where the ids of that axis are stored (a zarr array inside the train store;
        the hold-out store holds a copy), or None when the file's ids are
        non-negative integers, used as indices. Read them with
        :func:`~dasknmf.storage.read_ids`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "r.csv").write_text("0,1,5\\n2,0,3\\n")
    >>> print(ingest_triplets(d / "r.csv", d / "r.zarr").n_train)
    2
    """

    train: MatrixInfo
    holdout: MatrixInfo | None
    n_rows: int
    n_cols: int
    n_train: int
    n_holdout: int
    row_ids: str | None
    col_ids: str | None

    def __str__(self) -> str:
        rows = [
            ("store", self.train.path),
            ("hold-out store", self.holdout.path if self.holdout else "none"),
            ("shape", f"{self.n_rows:,} x {self.n_cols:,}"),
            ("entries", f"{self.n_train:,} train, {self.n_holdout:,} hold-out"),
            ("row ids", self.row_ids or "integers in the file, used as indices"),
            ("column ids", self.col_ids or "integers in the file, used as indices"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}} : {v}" for k, v in rows)


def ingest_triplets(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    holdout: float = 0.0,
    holdout_dst: str | os.PathLike[str] | None = None,
    seed: int = 0,
    delimiter: str | None = None,
    header: bool | Literal["auto"] = "auto",
    columns: Sequence[str | int] | None = None,
    chunks: tuple[int, int] | None = None,
    dtype: Any = None,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    keep_invalid: bool = False,
) -> TripletIngest:
    """Import a (row id, column id, value) file into a sparse store, optionally
    holding out a random part of the entries in a second store.

    Parameters
    ----------
    src : str or os.PathLike
        ``.csv``, ``.tsv`` or ``.txt`` (fields separated by runs of whitespace),
        each optionally ``.gz``/``.bz2`` compressed, or ``.parquet``. One entry per
        line (row); blank lines are skipped; surrounding whitespace is ignored.
    dst : str or os.PathLike
        The store to create (local directory or fsspec URL).
    holdout : float in [0, 1), default 0
        Probability that an entry goes to the hold-out store instead of ``dst``.
        Each entry is decided independently by a hash of its row id, column id and
        ``seed``: the same file and seed always give the same split, whatever the
        block size or the order of the lines.
    holdout_dst : str or os.PathLike, optional
        The hold-out store; default ``<dst stem>.holdout.zarr`` next to ``dst``.
    seed : int, default 0
        Seed of the split (an int >= 0).
    delimiter : str, optional
        One character; default from the extension (``,`` / tab / whitespace).
    header : {"auto", True, False}, default "auto"
        Whether the first line names the columns. ``"auto"``: yes when its value
        field is not a number (without a value column: when it has non-integer ids
        above a line of integer ids; pass True for string ids). Parquet: unused.
    columns : sequence of 2 or 3 str or int, optional
        Row id, column id and value columns, by header name or 0-based index.
        Default: the first three. Without a value column (a two-column file, or two
        columns given), every entry has the implicit value 1.0 (implicit feedback).
    chunks : tuple of int, optional
        Tile shape of both stores; default from the shape and entry count.
    dtype : {"float32", "float64"}, optional
        Default float32 when every value is an integer of magnitude <= 2**24
        (star ratings, counts: exact in float32), float64 otherwise.
    overwrite : bool, default False
        Replace existing dasknmf stores at ``dst`` and ``holdout_dst``.
    storage_options : dict, optional
        fsspec options for URL destinations.
    block_size : int, default 2 MiB
        Bytes of text parsed at once (Parquet: ``block_size // 64`` rows a batch).
    keep_invalid : bool, default False
        Store negative, NaN and infinite values instead of refusing the file (NMF
        refuses them at fit time: clean the store first).

    Returns
    -------
    TripletIngest
        Both stores' :class:`MatrixInfo`, the shape, the entry counts and where the
        id mappings are.

    Raises
    ------
    InputFileNotFoundError
        ``src`` does not exist.
    UnsupportedFormatError
        Unknown extension, or content that is not UTF-8 text / Parquet.
    InvalidInputError
        Naming the file, the line (Parquet: row) and the value: a line with a
        different number of fields, a missing id, a value that is not a number, a
        (row id, column id) pair that occurs twice (both lines named), or a file
        without entries. Without ``keep_invalid``, a negative, NaN or infinite
        value, naming the first one's line (counted from 1, a header line
        included) and entry, and how many the file holds (found by the first pass,
        before anything is written).
    InvalidParameterError
        A parameter out of its range.
    StoreExistsError, NotAStoreError
        A destination exists (checked before reading the file).

    Notes
    -----
    *Ids.* Along each axis, if every id is a non-negative integer, ids are indices
    (the axis has ``max id + 1`` entries, unused ids are empty rows/columns).
    Otherwise every id, integer-looking or not, is numbered in order of first
    appearance and the list is stored as the string array ``row_ids`` /
    ``col_ids`` in both stores.

    *Zeros.* A value of 0 is an observation, not a missing entry: it is stored and
    counted in ``nnz`` (``write_matrix(keep_zeros=True)``). Negative, NaN and
    infinite values are refused unless ``keep_invalid=True``.

    *Memory.* Text is parsed ``block_size`` bytes at a time (pyarrow holds a few
    blocks: about 40 times ``block_size``) and entries are bucketed by row block
    into temporary files (16 bytes an entry, in :func:`tempfile.gettempdir`). The
    only memory that grows with the input is the id dictionaries of axes with
    string ids, O(distinct rows + distinct columns): about 100 bytes plus the id's
    length per distinct id; integer ids cost nothing. Writing holds one row block
    of entries at a time, as for MatrixMarket files. A file whose ids turn out not
    to be integers late in the file is read once more in the first pass.

    Both stores are written to temporary locations and moved into place together
    at the end: on error neither destination is created or changed.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from dasknmf.storage import read_ids
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "r.csv").write_text("user,item,rating\\nann,x,4\\nbob,x,0\\nann,y,2\\n")
    >>> result = ingest_triplets(d / "r.csv", d / "r.zarr")
    >>> (result.n_rows, result.n_cols, result.train.nnz)
    (2, 2, 3)
    >>> read_ids(d / "r.zarr", "rows").tolist()
    ['ann', 'bob']
    """
    fraction = check_real("holdout", holdout, low=0.0, high=1.0)
    if fraction >= 1.0:
        raise InvalidParameterError(f"The 'holdout' parameter must be in [0, 1); got {holdout!r}.")
    seed = int(check_int("seed", seed, low=0, high=2**64 - 1))
    out_dtype = check_float_dtype("dtype", dtype)
    check_chunks("chunks", chunks)
    locs = _destinations(dst, holdout_dst, fraction, storage_options)
    for loc in locs:
        # Refuse an existing store before the file is read; atomic_store checks again.
        check_target(loc, overwrite=overwrite)
    source = TripletFile(
        src, delimiter=delimiter, header=header, columns=columns, block_size=block_size
    )

    start = time.perf_counter()
    rows, cols, n_entries, integral = _scan(source, keep_invalid=keep_invalid)
    shape = (rows.size, cols.size)
    out_dtype = out_dtype or np.dtype(np.float32 if integral else np.float64)
    if chunks is None:
        expected = max(1, round(n_entries * (1 - fraction)))
        tile_shape = default_chunks(shape, nnz=expected, itemsize=out_dtype.itemsize)
    else:
        tile_shape = clip_chunks(chunks, shape)
    elapsed = time.perf_counter() - start
    logger.info("%s: %d entries, shape %s, read in %.1f s", src, n_entries, shape, elapsed)
    with ExitStack() as stack:
        spills = [stack.enter_context(RowBlockSpill(shape, tile_shape[0])) for _ in locs]
        _spill(source, rows, cols, spills, seed, fraction)
        plans = [
            plan_write(
                spill.to_dask(tile_shape, out_dtype, duplicates="error"),
                chunks=tile_shape,
                format="sparse",
                dtype=out_dtype,
                keep_zeros=True,
            )
            for spill in spills
        ]
        save_ids = partial(write_ids, rows=rows.labels, cols=cols.labels)
        try:
            # The spill files are local to this process: an active distributed client
            # must not receive the tasks that read them.
            with dask.config.set(scheduler="synchronous"), ExitStack() as targets:
                for plan, loc in zip(plans, locs, strict=True):
                    target = targets.enter_context(atomic_store(loc, overwrite=overwrite))
                    write_plan(plan, target, extra=save_ids)
        except DuplicateEntryError as exc:
            raise _duplicate_error(source, rows, cols, exc) from None
    infos = [matrix_info(loc.path, storage_options=loc.storage_options) for loc in locs]
    logger.info("ingested %s into %s in %.1f s", src, locs[0].path, time.perf_counter() - start)
    holdout_info = infos[1] if len(infos) > 1 else None
    return TripletIngest(
        train=infos[0],
        holdout=holdout_info,
        n_rows=shape[0],
        n_cols=shape[1],
        n_train=infos[0].nnz,
        n_holdout=holdout_info.nnz if holdout_info else 0,
        row_ids=None if rows.integer else f"{locs[0].path.rstrip('/')}/{ROW_IDS}",
        col_ids=None if cols.integer else f"{locs[0].path.rstrip('/')}/{COL_IDS}",
    )


def _destinations(
    dst: str | os.PathLike[str],
    holdout_dst: str | os.PathLike[str] | None,
    fraction: float,
    storage_options: dict[str, Any] | None,
) -> list[StoreLocation]:
    train = StoreLocation.from_user(dst, storage_options)
    if fraction == 0:
        if holdout_dst is not None:
            raise InvalidParameterError(
                f"holdout_dst={os.fspath(holdout_dst)!r} is given but holdout is 0; "
                "pass a hold-out fraction in (0, 1)"
            )
        return [train]
    path = default_holdout_path(dst) if holdout_dst is None else holdout_dst
    held = StoreLocation.from_user(path, storage_options)
    if held.path.rstrip("/") == train.path.rstrip("/"):
        raise InvalidParameterError(
            f"the hold-out store and the store are the same path {train.path!r}"
        )
    return [train, held]


#: Integer ids are their own indices unless their range would make an axis longer than
#: this and than :data:`SPARSE_ID_FACTOR` times the entries: then they are numbered
#: like string ids (ids up to 10⁸ in a few entries would otherwise make 10⁸ empty rows).
SPARSE_ID_RANGE = 2**22
SPARSE_ID_FACTOR = 4


def _too_sparse(ids: AxisIds, n_entries: int) -> bool:
    return ids.integer and ids.size > max(SPARSE_ID_RANGE, SPARSE_ID_FACTOR * n_entries)


def _scan(source: TripletFile, *, keep_invalid: bool) -> tuple[AxisIds, AxisIds, int, bool]:
    """First pass: the ids of both axes, the entry count and whether every value is
    an integer exact in float32; the invalid values counted over the whole file and
    refused at its end, unless ``keep_invalid``. An axis whose ids are not all
    integers, or whose integers are far sparser than their range
    (:func:`_too_sparse`), is scanned again with its ids numbered in order of first
    appearance."""
    as_strings = [False, False]
    while True:
        axes = [
            AxisIds("row", as_strings=as_strings[0]),
            AxisIds("column", as_strings=as_strings[1]),
        ]
        invalid = InvalidValues(repr(str(source.path)))
        n_entries, integral, restart = 0, True, False
        with closing(source.batches()) as batches:
            for batch in batches:
                for k, (ids, col) in enumerate(zip(axes, (batch.rows, batch.cols), strict=True)):
                    if not ids.observe(col):
                        as_strings[k] = restart = True
                if restart:
                    break
                v = batch.values
                if not keep_invalid:
                    invalid.add(v, partial(_place, source, batch.where, n_entries))
                n_entries += v.size
                integral = integral and bool(
                    np.all((v == np.round(v)) & (np.abs(v) <= _FLOAT32_EXACT))
                )
        if restart:
            logger.info("%s has non-integer ids: numbering them needs the pass again", source.path)
            continue
        invalid.check("in the file")
        sparse = [k for k, ids in enumerate(axes) if _too_sparse(ids, n_entries)]
        if not sparse:
            break
        for k in sparse:
            as_strings[k] = True
            logger.info(
                "%s: %s ids up to %d for %d entries: numbered like string ids",
                source.path,
                axes[k].axis,
                axes[k].size - 1,
                n_entries,
            )
    if n_entries == 0:
        raise InvalidInputError(f"{str(source.path)!r} holds no entries")
    return axes[0], axes[1], n_entries, integral


def _place(source: TripletFile, where: np.ndarray, before: int, i: int) -> str:
    """The line (Parquet: row) and entry number of a batch's ``i``-th entry, the
    batch coming after ``before`` entries."""
    return f"{source.unit} {int(where[i])}, entry {before + i + 1}"


def _spill(
    source: TripletFile,
    rows: AxisIds,
    cols: AxisIds,
    spills: list[RowBlockSpill],
    seed: int,
    fraction: float,
) -> None:
    """Second pass: entries as indices, split, bucketed by row block."""
    with closing(source.batches()) as batches:
        for batch in batches:
            try:
                r, row_keys = rows.lookup(batch.rows)
                c, col_keys = cols.lookup(batch.cols)
            except KeyError:
                raise source.error(
                    None, "the file changed while it was being ingested; ingest it again"
                ) from None
            if len(spills) == 1:
                spills[0].append(r, c, batch.values)
                continue
            held = held_out(row_keys, col_keys, seed, fraction)
            kept = ~held
            spills[0].append(r[kept], c[kept], batch.values[kept])
            spills[1].append(r[held], c[held], batch.values[held])


def _duplicate_error(
    source: TripletFile, rows: AxisIds, cols: AxisIds, exc: DuplicateEntryError
) -> InvalidInputError:
    # Spill records carry no line numbers (they would cost 8 bytes an entry): the
    # lines are found by one more pass, on this error path only.
    places: list[int] = []
    with closing(source.batches()) as batches:
        for batch in batches:
            r, _ = rows.lookup(batch.rows)
            c, _ = cols.lookup(batch.cols)
            places.extend(batch.where[(r == exc.row) & (c == exc.col)][:2].tolist())
            if len(places) >= 2:
                break
    where = " and ".join(str(p) for p in places[:2])
    return InvalidInputError(
        f"{str(source.path)!r}: row id {rows.label(exc.row)!r} and column id "
        f"{cols.label(exc.col)!r} occur together more than once ({source.unit}s {where}); "
        "a ratings file must hold one value per pair: aggregate or remove the duplicates"
    )
