"""The entry points that take any input file: :func:`ingest` writes it into a store,
:func:`read_matrix_file` reads it into memory; both, and :func:`input_kind` and
:func:`ingest_function`, find its importer in the registry."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from dasknmf.errors import InvalidParameterError
from dasknmf.storage import MatrixInfo

from .registry import importer_for

__all__ = ["ingest", "ingest_function", "input_kind", "read_matrix_file"]


def input_kind(path: str | os.PathLike[str], *, corpus: bool = False) -> str:
    """The name of the importer :func:`ingest` uses for ``path``, from its name (and,
    for a directory, whether it holds a zarr group).

    ``corpus=True`` makes any file or directory a text corpus. Otherwise ``.h5ad``
    files and zarr directories (``.zarr`` names, or any directory holding a zarr
    group) are AnnData, other directories are corpora of ``.txt`` documents, and
    files go by extension (see :func:`~dasknmf.ingest.registry.importer_for`).

    Raises
    ------
    UnsupportedFormatError
        An unknown extension, naming the accepted formats.

    Examples
    --------
    >>> input_kind("cells.h5ad"), input_kind("r.txt"), input_kind("docs.txt", corpus=True)
    ('anndata', 'triplets', 'corpus')
    """
    return importer_for(path, corpus=corpus).name


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
        Unknown extension, a format that is read into a store only (triplets,
        AnnData, corpora), or content that cannot be read as that format.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "x.npy"), np.eye(2))
    >>> read_matrix_file(os.path.join(d, "x.npy")).shape
    (2, 2)
    """
    return importer_for(path).read(path)


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
    keep_invalid: bool = False,
    **options: Any,
) -> MatrixInfo:
    """Import a matrix file into a store; return the new store's :class:`MatrixInfo`.

    MatrixMarket coordinate files (``.mtx``, ``.mtx.gz``, ``.mtx.bz2``) are streamed:
    parsed block by block and bucketed by row block into temporary files (in
    :func:`tempfile.gettempdir`, about 16 bytes per entry), so they may be larger
    than RAM. A ``.npy`` file is memory-mapped and written tile by tile, so it may
    be larger than RAM too. Dense MatrixMarket (``array``) and ``.npz`` files are
    read into memory first. Parameters after ``dst`` are those of
    :func:`~dasknmf.storage.write_matrix` (``storage_options`` applies to ``dst``);
    for coordinate files the default tile shape uses the header's entry count, and
    ``real`` values are stored as float64, ``integer`` and ``pattern`` ones as float32.

    Triplet files (``.csv``, ``.tsv``, ``.txt``, each optionally ``.gz``/``.bz2``,
    and ``.parquet``; one ``row id, column id, value`` per line) are streamed by
    :func:`~dasknmf.ingest.ingest_triplets` with its defaults (no hold-out split;
    call it directly for that and for parsing options) into a sparse store that
    keeps explicit zeros; ``format`` must then be None or ``"sparse"``.

    AnnData files (``.h5ad``, and ``.zarr`` directories holding an AnnData group)
    are streamed by :func:`~dasknmf.ingest.ingest_anndata`: ``X``, or
    ``layers/<layer>`` when ``layer`` is given, with ``obs_names`` / ``var_names``
    as the store's row / column ids.

    Text corpora are streamed by :func:`~dasknmf.ingest.ingest_corpus` with its
    defaults (scikit-learn's ``CountVectorizer`` defaults; call it directly for the
    tokenisation and vocabulary options) into a documents x terms count store: any
    directory that is not a zarr store (its ``.txt`` files are the documents), or,
    with ``corpus=True``, a file of one document per line (without it a ``.txt``
    file is a triplet file). ``format`` must then be None or ``"sparse"``.

    NMF needs finite non-negative values: a negative, NaN or infinite value is
    refused before anything is written (``InvalidInputError`` naming the file, the
    first such value's line, or its row and column, and how many there are), unless
    ``keep_invalid=True`` stores them for a user who cleans the store before fitting.
    In a dense matrix (``.npy``, a plain ``.npz``, dense MatrixMarket, dense AnnData)
    NaN marks a missing entry (``missing='ignore'``) and is kept.

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
        A negative, NaN or infinite value (without ``keep_invalid``); a triplet
        file with a bad line, naming it (see :func:`~dasknmf.ingest.ingest_triplets`);
        an AnnData file without the matrix asked for; a corpus without documents or
        terms.
    InvalidParameterError
        ``layer`` for a file that is not AnnData, or ``format="dense"`` for triplet
        files and corpora.

    Examples
    --------
    >>> import tempfile, os, scipy.io
    >>> d = tempfile.mkdtemp()
    >>> scipy.io.mmwrite(os.path.join(d, "v.mtx"), sp.eye(3, format="coo"))
    >>> ingest(os.path.join(d, "v.mtx"), os.path.join(d, "v.zarr")).nnz
    3
    """
    p = Path(src)
    importer = importer_for(p, corpus=corpus)
    if layer is not None:
        if "layer" not in importer.option_names:
            raise InvalidParameterError(
                f"The 'layer' parameter applies to AnnData files only; got layer={layer!r} "
                f"for {str(p)!r}, a {importer.name} input."
            )
        options["layer"] = layer
    return importer.ingest(
        p,
        dst,
        chunks=chunks,
        format=format,
        dtype=dtype,
        overwrite=overwrite,
        storage_options=storage_options,
        keep_invalid=keep_invalid,
        **options,
    )


def ingest_function(path: str | os.PathLike[str], *, corpus: bool = False) -> Callable[..., Any]:
    """The function that ingests ``path``: :func:`~dasknmf.ingest.ingest_triplets`,
    :func:`~dasknmf.ingest.ingest_corpus`, :func:`~dasknmf.ingest.ingest_anndata`,
    :func:`~dasknmf.ingest.ingest_mtx`, or :func:`ingest` itself for ``.npz`` and
    ``.npy`` files (its keyword-only parameters are the options that kind of file
    takes).

    Examples
    --------
    >>> ingest_function("ratings.csv").__name__, ingest_function("v.mtx").__name__
    ('ingest_triplets', 'ingest_mtx')
    """
    return importer_for(path, corpus=corpus).function or ingest
