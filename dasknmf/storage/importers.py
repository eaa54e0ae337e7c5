"""Importers: matrix files (MatrixMarket, .npz, .npy) to in-memory matrices and stores,
and the :func:`ingest` dispatcher, which also sends triplet files to
:func:`~dasknmf.storage.triplets.ingest_triplets`, AnnData files to
:func:`~dasknmf.storage.anndata_ingest.ingest_anndata` and text corpora to
:func:`~dasknmf.storage.corpus.ingest_corpus`."""

from __future__ import annotations

import logging
import os
import time
import zipfile
from pathlib import Path
from typing import Any, Literal

import dask
import numpy as np
import scipy.io
import scipy.sparse as sp

from dasknmf.errors import (
    InputFileNotFoundError,
    InvalidInputError,
    InvalidParameterError,
    UnsupportedFormatError,
)
from dasknmf.params import check_float_dtype, check_option

from .anndata_elements import is_zarr_directory
from .anndata_ingest import ingest_anndata
from .api import MatrixInfo, clip_chunks, matrix_info, write_matrix
from .atomic import check_target
from .chunking import default_chunks
from .corpus import ingest_corpus
from .location import StoreLocation
from .mtx import check_streamable, iter_mtx_entries, read_mtx_header
from .spill import RowBlockSpill
from .tiling import stored_dtype
from .triplet_files import triplet_suffix
from .triplets import ingest_triplets

__all__ = ["ACCEPTED", "ingest", "input_kind", "read_matrix_file"]

logger = logging.getLogger(__name__)

ACCEPTED = (
    ".mtx, .mtx.gz, .mtx.bz2 (MatrixMarket), .npz (scipy.sparse or one numpy array), .npy; "
    "row,col,value triplets: .csv, .tsv, .txt (each optionally .gz or .bz2), .parquet; "
    "AnnData: .h5ad, AnnData .zarr directories; text corpora: a directory of .txt "
    "documents, or a file of one document per line with corpus=True (--corpus)"
)
_MTX_SUFFIXES = (".mtx", ".mtx.gz", ".mtx.bz2")

InputKind = Literal["mtx", "npz", "npy", "triplets", "anndata", "corpus"]
_IN_MEMORY_KINDS = ("mtx", "npz", "npy")

# Errors that mean "this file's content is not what its name says" (OSError covers
# bad gzip / bz2 streams; access errors are re-raised as they are).
_DECODE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    zipfile.BadZipFile,
    OSError,
)


def input_kind(path: str | os.PathLike[str], *, corpus: bool = False) -> InputKind:
    """What :func:`ingest` takes ``path`` for, from its name (and, for a directory,
    whether it holds a zarr group).

    ``corpus=True`` makes any file or directory a text corpus. Otherwise ``.h5ad``
    files and zarr directories (``.zarr`` names, or any directory holding a zarr
    group) are AnnData, other directories are corpora of ``.txt`` documents, and
    files go by extension.

    Raises
    ------
    UnsupportedFormatError
        An unknown extension, naming the accepted formats.

    Examples
    --------
    >>> input_kind("cells.h5ad"), input_kind("r.txt"), input_kind("docs.txt", corpus=True)
    ('anndata', 'triplets', 'corpus')
    """
    p = Path(path)
    if corpus:
        return "corpus"
    name = p.name.lower()
    if name.endswith(".h5ad") or name.endswith(".zarr") or is_zarr_directory(p):
        return "anndata"
    if p.is_dir():
        return "corpus"
    if name.endswith(_MTX_SUFFIXES):
        return "mtx"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".npy"):
        return "npy"
    if triplet_suffix(p) is not None:
        return "triplets"
    raise UnsupportedFormatError(
        f"cannot import {str(p)!r}: unknown file extension; accepted formats: {ACCEPTED}"
    )


def read_matrix_file(path: str | os.PathLike[str]) -> np.ndarray | sp.csr_matrix:
    """Read a matrix file into memory (``.npy``: memory-mapped, read on access).

    Parameters
    ----------
    path : str or os.PathLike
        A MatrixMarket file (``.mtx``, optionally ``.gz``/``.bz2`` compressed), a
        ``.npz`` written by ``scipy.sparse.save_npz`` or holding a single 2-D numpy
        array, or a ``.npy`` file.

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_matrix
        Sparse files give a CSR matrix; ``.npy`` gives a read-only ``numpy.memmap``;
        dense MatrixMarket (``array`` format) and plain ``.npz`` give an ndarray.

    Raises
    ------
    InputFileNotFoundError
        ``path`` does not exist.
    UnsupportedFormatError
        Unknown extension, or content that cannot be read as that format.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "x.npy"), np.eye(2))
    >>> read_matrix_file(os.path.join(d, "x.npy")).shape
    (2, 2)
    """
    p = Path(path)
    kind = input_kind(p)
    if kind not in _IN_MEMORY_KINDS:
        what = {"triplets": "a triplet file", "anndata": "an AnnData file"}.get(kind, "a corpus")
        raise UnsupportedFormatError(
            f"{str(p)!r} is {what}; it is read into a store with ingest "
            f"(or ingest_{kind}), not into memory"
        )
    _require_file(p)
    try:
        if kind == "mtx":
            return _as_matrix(scipy.io.mmread(p))
        if kind == "npz":
            return _read_npz(p)
        return np.load(p, mmap_mode="r", allow_pickle=False)
    except (UnsupportedFormatError, PermissionError, IsADirectoryError):
        raise
    except _DECODE_ERRORS as exc:
        raise UnsupportedFormatError(
            f"cannot read {str(p)!r} as {kind} ({type(exc).__name__}: {exc}); "
            f"accepted formats: {ACCEPTED}"
        ) from exc


def _require_file(p: Path) -> None:
    if not p.is_file():
        raise InputFileNotFoundError(f"input file {str(p)!r} does not exist (or is not a file)")


def _is_coordinate_mtx(p: Path) -> bool:
    # Only the header is read: coordinate files are streamed, dense ones are not.
    _require_file(p)
    return read_mtx_header(p).is_coordinate


def _as_matrix(obj: Any) -> np.ndarray | sp.csr_matrix:
    if sp.issparse(obj):
        return sp.csr_matrix(obj)
    return np.asarray(obj)


def _read_npz(p: Path) -> np.ndarray | sp.csr_matrix:
    with np.load(p, allow_pickle=False) as npz:
        keys = list(npz.files)
        if "format" in keys and {"data", "shape"} <= set(keys):
            return sp.csr_matrix(sp.load_npz(p))
        if len(keys) == 1:
            return np.asarray(npz[keys[0]])
    raise UnsupportedFormatError(
        f"cannot import {str(p)!r}: a .npz must be written by scipy.sparse.save_npz or "
        f"hold exactly one array; it holds {keys}"
    )


def ingest(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    chunks: tuple[int, int] | None = None,
    format: Literal["sparse", "dense"] | None = None,
    dtype: Any = None,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
    layer: str | None = None,
    corpus: bool = False,
    **options: Any,
) -> MatrixInfo:
    """Import a matrix file into a store; return the new store's :class:`MatrixInfo`.

    MatrixMarket coordinate files (``.mtx``, ``.mtx.gz``, ``.mtx.bz2``) are streamed:
    parsed block by block and bucketed by row block into temporary files (in
    :func:`tempfile.gettempdir`, about 16 bytes per entry), so they may be larger
    than RAM. A ``.npy`` file is memory-mapped and written tile by tile, so it may
    be larger than RAM too. Dense MatrixMarket (``array``) and ``.npz`` files are
    read into memory first. Parameters after ``dst`` are those of
    :func:`write_matrix` (``storage_options`` applies to ``dst``); for coordinate
    files the default tile shape uses the header's entry count, and ``real`` values
    are stored as float64, ``integer`` and ``pattern`` ones as float32.

    Triplet files (``.csv``, ``.tsv``, ``.txt``, each optionally ``.gz``/``.bz2``,
    and ``.parquet``; one ``row id, column id, value`` per line) are streamed by
    :func:`~dasknmf.storage.ingest_triplets` with its defaults (no hold-out split;
    call it directly for that and for parsing options) into a sparse store that
    keeps explicit zeros; ``format`` must then be None or ``"sparse"``.

    AnnData files (``.h5ad``, and ``.zarr`` directories holding an AnnData group)
    are streamed by :func:`~dasknmf.storage.ingest_anndata`: ``X``, or
    ``layers/<layer>`` when ``layer`` is given, with ``obs_names`` / ``var_names``
    as the store's row / column ids.

    Text corpora are streamed by :func:`~dasknmf.storage.ingest_corpus` with its
    defaults (scikit-learn's ``CountVectorizer`` defaults; call it directly for the
    tokenisation and vocabulary options) into a documents x terms count store: any
    directory that is not a zarr store (its ``.txt`` files are the documents), or,
    with ``corpus=True``, a file of one document per line (without it a ``.txt``
    file is a triplet file). ``format`` must then be None or ``"sparse"``.

    Further keyword ``options`` go to the function for the file's kind
    (:func:`ingest_function` says which: e.g. ``delimiter=``, ``columns=`` for
    triplets, ``min_df=``, ``stop_words=`` for corpora); other kinds take none.

    Raises
    ------
    InputFileNotFoundError
        ``src`` does not exist.
    UnsupportedFormatError
        Unknown extension or unreadable content; for MatrixMarket coordinate files
        also an unsupported header (complex, hermitian, skew-symmetric), an entry
        that cannot be parsed or lies outside the declared shape (naming the line
        and entry) and an entry count differing from the header's. Nothing is
        written to ``dst`` then.
    InvalidInputError
        A triplet file with a bad line, naming it (see
        :func:`~dasknmf.storage.ingest_triplets`); an AnnData file without the
        matrix asked for; a corpus without documents or terms.
    InvalidParameterError
        ``layer`` for a file that is not AnnData, or ``format="dense"`` for triplet
        files and corpora.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> scipy.io.mmwrite(os.path.join(d, "v.mtx"), sp.eye(3, format="coo"))
    >>> ingest(os.path.join(d, "v.mtx"), os.path.join(d, "v.zarr")).nnz
    3
    """
    p = Path(src)
    kind = input_kind(p, corpus=corpus)
    if layer is not None and kind != "anndata":
        raise InvalidParameterError(
            f"The 'layer' parameter applies to AnnData files only; got layer={layer!r} "
            f"for {str(p)!r}, a {kind} input."
        )
    if kind in ("triplets", "corpus") and format not in (None, "sparse"):
        raise InvalidParameterError(
            f"The 'format' parameter must be None or 'sparse' for {kind} input; got {format!r}."
        )
    if options and kind not in ("triplets", "corpus", "anndata"):
        raise InvalidParameterError(
            f"{str(p)!r} is a {kind} file, which takes no ingest options; got "
            f"{', '.join(sorted(options))}."
        )
    options.update(
        chunks=chunks, dtype=dtype, overwrite=overwrite, storage_options=storage_options
    )
    if kind == "triplets":
        return ingest_triplets(p, dst, **options).train
    if kind == "corpus":
        return ingest_corpus(p, dst, **options).store
    if kind == "anndata":
        return ingest_anndata(p, dst, layer=layer, format=format, **options).store
    if kind == "mtx" and _is_coordinate_mtx(p):
        _ingest_mtx(p, dst, format=format, **options)
    else:
        write_matrix(read_matrix_file(src), dst, format=format, **options)
    logger.info("ingested %s into %s", src, dst)
    return matrix_info(dst, storage_options=storage_options)


def ingest_function(path: str | os.PathLike[str], *, corpus: bool = False):
    """The function that ingests ``path``: :func:`~dasknmf.storage.ingest_triplets`,
    :func:`~dasknmf.storage.ingest_corpus`, :func:`~dasknmf.storage.ingest_anndata`,
    or :func:`ingest` itself for matrix files (its keyword-only parameters are the
    options that kind of file takes).

    Examples
    --------
    >>> ingest_function("ratings.csv").__name__, ingest_function("v.mtx").__name__
    ('ingest_triplets', 'ingest')
    """
    kind = input_kind(path, corpus=corpus)
    special = {"triplets": ingest_triplets, "corpus": ingest_corpus, "anndata": ingest_anndata}
    return special.get(kind, ingest)


# How each MatrixMarket field is held before write_matrix's dtype rule applies.
_FIELD_DTYPES = {"real": np.float64, "integer": np.int64, "pattern": np.bool_}


def _ingest_mtx(
    src: Path,
    dst: str | os.PathLike[str],
    *,
    chunks: tuple[int, int] | None,
    format: Literal["sparse", "dense"] | None,
    dtype: Any,
    overwrite: bool,
    storage_options: dict[str, Any] | None,
) -> None:
    """Write a MatrixMarket coordinate file with bounded memory.

    The body is streamed into per-row-block spill files, then written by
    :func:`write_matrix` from a lazy dask array over those files, so validation,
    tile-row order and the atomic write are the writer's own.
    """
    header = read_mtx_header(src)
    check_streamable(header, src)
    if 0 in header.shape:
        raise InvalidInputError(f"{str(src)!r} holds an empty matrix (shape {header.shape})")
    kind = check_option("format", format, (None, "sparse", "dense"))
    out_dtype = check_float_dtype("dtype", dtype) or stored_dtype(
        np.dtype(_FIELD_DTYPES[header.field])
    )
    if chunks is None:
        # A symmetric file lists one triangle: up to twice its entries are stored.
        nnz = header.nnz * (2 if header.symmetry == "symmetric" else 1)
        tile_shape = default_chunks(header.shape, nnz=nnz, itemsize=out_dtype.itemsize)
    else:
        tile_shape = clip_chunks(chunks, header.shape)
    # Refuse an existing destination before the long pass over the file;
    # write_matrix checks again when it writes.
    check_target(StoreLocation.from_user(dst, storage_options), overwrite=overwrite)
    with RowBlockSpill(header.shape, tile_shape[0]) as spill:
        start = time.perf_counter()
        for rows, cols, vals in iter_mtx_entries(src):
            spill.append(rows, cols, vals)
        logger.info(
            "bucketed %d entries of %s into %d row blocks in %.1f s",
            spill.n_entries,
            src,
            spill.n_blocks,
            time.perf_counter() - start,
        )
        # The spill files are local to this process: an active distributed client
        # must not receive the tasks that read them.
        with dask.config.set(scheduler="synchronous"):
            write_matrix(
                spill.to_dask(tile_shape, out_dtype),
                dst,
                chunks=tile_shape,
                format=kind,
                dtype=out_dtype,
                overwrite=overwrite,
                storage_options=storage_options,
            )
