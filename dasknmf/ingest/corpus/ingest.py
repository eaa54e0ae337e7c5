"""Ingest of text corpora into documents x terms count stores.

Two streamed passes over the corpus (:class:`~dasknmf.ingest.corpus.files.Corpus`),
each tokenising every document with scikit-learn's own analyzer:

1. count the document frequency and total count of every distinct term
   (:class:`~dasknmf.ingest.corpus.vocabulary.TermCounter`) and choose the vocabulary with
   ``CountVectorizer``'s ``min_df`` / ``max_df`` / ``max_features`` rules;
2. count each document's terms of the vocabulary and bucket the counts by row block
   into spill files (:class:`~dasknmf.ingest.spill.RowBlockSpill`), from which the
   store is written atomically, with the vocabulary as its column ids.

The result equals ``CountVectorizer(same options).fit_transform(documents)``.
"""

from __future__ import annotations

import logging
import os
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from typing import Any

import dask
import numpy as np

from dasknmf.errors import InvalidInputError
from dasknmf.params import check_chunks, check_float_dtype, check_int
from dasknmf.storage import (
    COL_IDS,
    ROW_IDS,
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

from ..spill import RowBlockSpill
from .files import Corpus
from .vocabulary import (
    DEFAULT_TOKEN_PATTERN,
    TermCounter,
    build_analyzer,
    check_df,
    count_terms,
)

__all__ = ["DEFAULT_BLOCK_ENTRIES", "CorpusIngest", "ingest_corpus"]

logger = logging.getLogger(__name__)

DEFAULT_BLOCK_ENTRIES = 2**19
"""Counts held before they are appended to the spill files: about 70 bytes each at
the peak of an append, so ~37 MiB."""

# Counts up to 2**24 are exact in float32.
_FLOAT32_EXACT = 2**24


@dataclass(frozen=True)
class CorpusIngest:
    """What :func:`ingest_corpus` wrote.

    Attributes
    ----------
    store : MatrixInfo
        The new store: documents x terms counts.
    n_documents : int
        Rows: documents (lines of a file, or files of a directory).
    n_terms : int
        Columns: the vocabulary's size.
    n_distinct : int
        Distinct terms before ``min_df`` / ``max_df`` / ``max_features``.
    row_ids : str or None
        Where the documents' file names are stored (a directory corpus), or None
        (a file: row ``i`` is line ``i + 1``).
    col_ids : str
        Where the vocabulary is stored (``col_ids[j]`` is the term of column ``j``);
        read it with :func:`~dasknmf.storage.read_ids`.
    """

    store: MatrixInfo
    n_documents: int
    n_terms: int
    n_distinct: int
    row_ids: str | None
    col_ids: str

    def __str__(self) -> str:
        info = self.store
        rows = [
            ("store", f"{info.path} ({info.format}, {info.dtype})"),
            ("shape", f"{info.shape[0]:,} documents x {info.shape[1]:,} terms"),
            ("non-zeros", f"{info.nnz:,} (density {info.density:.4%})"),
            (
                "vocabulary",
                f"{self.n_terms:,} of {self.n_distinct:,} distinct terms, in {self.col_ids}",
            ),
            (
                "row ids",
                f"file names, in {self.row_ids}"
                if self.row_ids
                else "none: row i is line i + 1 of the file",
            ),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}} : {v}" for k, v in rows)


def ingest_corpus(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    lowercase: bool = True,
    token_pattern: str = DEFAULT_TOKEN_PATTERN,
    stop_words: str | Sequence[str] | None = None,
    ngram_range: tuple[int, int] = (1, 1),
    analyzer: str = "word",
    strip_accents: str | None = None,
    min_df: int | float = 1,
    max_df: int | float = 1.0,
    max_features: int | None = None,
    chunks: tuple[int, int] | None = None,
    dtype: Any = None,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
    block_size: int = DEFAULT_BLOCK_ENTRIES,
    keep_invalid: bool = False,
) -> CorpusIngest:
    """Import a text corpus as a documents x terms count matrix, streaming it twice.

    Parameters
    ----------
    src : str or os.PathLike
        A text file with one document per line (``.gz`` / ``.bz2`` names are
        decompressed), or a directory of ``.txt`` files, one document each, taken in
        order of file name. UTF-8.
    dst : str or os.PathLike
        The store to create (local directory or fsspec URL).
    lowercase, token_pattern, stop_words, ngram_range, analyzer, strip_accents
        As in :class:`sklearn.feature_extraction.text.CountVectorizer`, whose
        ``build_analyzer()`` tokenises the documents. ``stop_words``: None,
        ``"english"`` or a list of words.
    min_df, max_df : int or float
        As in ``CountVectorizer``: an int is a number of documents, a float in
        [0, 1] a proportion; terms in fewer than ``min_df`` or more than ``max_df``
        documents are dropped.
    max_features : int, optional
        Keep the ``max_features`` terms of largest total count (ties broken as
        scikit-learn breaks them).
    chunks : tuple of int, optional
        Tile shape; default from the shape and the exact entry count (known after
        the first pass).
    dtype : {"float32", "float64"}, optional
        Default float32 (exact for counts up to 2**24), float64 if a count is larger.
    overwrite : bool, default False
        Replace an existing dasknmf store at ``dst``.
    storage_options : dict, optional
        fsspec options for a URL ``dst``.
    block_size : int, default 2**19
        Counts held in memory before they are appended to the spill files (about
        70 bytes each while they are appended).
    keep_invalid : bool, default False
        The option of every importer (:func:`~dasknmf.ingest.ingest`); counts are
        never negative, NaN or infinite, so it changes nothing here.

    Returns
    -------
    CorpusIngest
        The store's :class:`MatrixInfo`, the numbers of documents and terms, and
        where the ids are. Column ids (``col_ids``) are the vocabulary, sorted
        alphabetically as ``CountVectorizer.get_feature_names_out()``; a directory's
        file names are the row ids.

    Raises
    ------
    InputFileNotFoundError
        ``src`` does not exist.
    UnsupportedFormatError
        Text that is not UTF-8, a damaged compressed file (naming file and line).
    InvalidInputError
        No documents, no terms (naming the file), or none left after pruning.
    InvalidParameterError
        An option out of its range (as scikit-learn's constraints), or ``max_df``
        meaning fewer documents than ``min_df``.
    StoreExistsError, NotAStoreError
        ``dst`` exists (checked before the corpus is read).

    Notes
    -----
    *Memory.* The first pass holds a dict of every distinct term before pruning:
    about 125 bytes plus the term's length each (50 more while the vocabulary is
    chosen). It is the only memory that grows with the corpus, with a directory's
    file names (the row ids); n-grams multiply the distinct terms. The second pass
    holds the kept vocabulary as a dict, one document and ``block_size`` counts;
    the counts go to spill files on disk (16 bytes each, in
    :func:`tempfile.gettempdir`), then the store is written one row block at a time,
    as for MatrixMarket files. The largest document is held whole (a line of a
    file, or a file of a directory).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from dasknmf.storage import read_ids
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "docs.txt").write_text("the cat sat\\nthe cat ran\\n")
    >>> result = ingest_corpus(d / "docs.txt", d / "docs.zarr", stop_words="english")
    >>> result.store.shape, result.store.nnz
    ((2, 3), 4)
    >>> read_ids(d / "docs.zarr", "columns").tolist()
    ['cat', 'ran', 'sat']
    """
    analyze = build_analyzer(
        lowercase=lowercase,
        token_pattern=token_pattern,
        stop_words=stop_words,
        ngram_range=ngram_range,
        analyzer=analyzer,
        strip_accents=strip_accents,
    )
    min_df, max_df = check_df("min_df", min_df), check_df("max_df", max_df)
    max_features = check_int("max_features", max_features, low=1, allow_none=True)
    out_dtype = check_float_dtype("dtype", dtype)
    check_chunks("chunks", chunks)
    block_size = int(check_int("block_size", block_size, low=1))
    loc = StoreLocation.from_user(dst, storage_options)
    # Refuse an existing destination before the corpus is read; atomic_store checks
    # again when it writes.
    check_target(loc, overwrite=overwrite)
    corpus = Corpus(src)
    source = str(corpus.path)

    start = time.perf_counter()
    counter = TermCounter()
    for document in corpus.documents():
        counter.add(analyze(document))
    vocabulary = counter.select(
        min_df=min_df, max_df=max_df, max_features=max_features, source=source
    )
    del counter  # the dict of every distinct term: the first pass's memory
    shape = (vocabulary.n_documents, len(vocabulary.terms))
    logger.info(
        "%s: %d documents, %d of %d distinct terms kept, %d entries; counted in %.1f s",
        source,
        shape[0],
        shape[1],
        vocabulary.n_distinct,
        vocabulary.nnz,
        time.perf_counter() - start,
    )
    if out_dtype is None:
        exact = vocabulary.max_count <= _FLOAT32_EXACT
        out_dtype = np.dtype(np.float32 if exact else np.float64)
    if chunks is None:
        nnz = max(1, vocabulary.nnz)
        tile_shape = default_chunks(shape, nnz=nnz, itemsize=out_dtype.itemsize)
    else:
        tile_shape = clip_chunks(chunks, shape)

    columns = {term: j for j, term in enumerate(vocabulary.terms)}
    with RowBlockSpill(shape, tile_shape[0]) as spill:
        _spill_counts(corpus, analyze, columns, spill, block_size)
        if spill.n_entries != vocabulary.nnz:
            raise _changed(source)
        del columns
        plan = plan_write(
            spill.to_dask(tile_shape, out_dtype),
            chunks=tile_shape,
            format="sparse",
            dtype=out_dtype,
            keep_zeros=False,
        )
        save_ids = partial(write_ids, rows=corpus.row_ids, cols=vocabulary.terms)
        # The spill files are local to this process: an active distributed client
        # must not receive the tasks that read them.
        with (
            dask.config.set(scheduler="synchronous"),
            atomic_store(loc, overwrite=overwrite) as target,
        ):
            write_plan(plan, target, extra=save_ids)
    info = matrix_info(loc.path, storage_options=loc.storage_options)
    logger.info("ingested %s into %s in %.1f s", source, loc.path, time.perf_counter() - start)
    root = loc.path.rstrip("/")
    return CorpusIngest(
        store=info,
        n_documents=shape[0],
        n_terms=shape[1],
        n_distinct=vocabulary.n_distinct,
        row_ids=None if corpus.row_ids is None else f"{root}/{ROW_IDS}",
        col_ids=f"{root}/{COL_IDS}",
    )


def _spill_counts(
    corpus: Corpus,
    analyze: Callable[[str], list[str]],
    columns: dict[str, int],
    spill: RowBlockSpill,
    block_size: int,
) -> None:
    """Second pass: each document's counts of vocabulary terms, bucketed by row block."""
    n_rows = spill.shape[0]
    rows, cols, counts = array("q"), array("q"), array("q")

    def flush() -> None:
        r, c = np.frombuffer(rows, dtype=np.int64), np.frombuffer(cols, dtype=np.int64)
        spill.append(r, c, np.frombuffer(counts, dtype=np.int64).astype(np.float64))
        del r, c  # views of the buffers, which cannot shrink while they exist
        del rows[:], cols[:], counts[:]

    row = -1
    for row, document in enumerate(corpus.documents()):
        if row >= n_rows:
            raise _changed(str(corpus.path))
        found: dict[int, int] = {}
        for term, count in count_terms(analyze(document)).items():
            j = columns.get(term)
            if j is not None:
                found[j] = count
        rows.extend(repeat(row, len(found)))
        cols.extend(found.keys())
        counts.extend(found.values())
        if len(rows) >= block_size:
            flush()
    if rows:
        flush()
    if row + 1 != n_rows:
        raise _changed(str(corpus.path))


def _changed(source: str) -> InvalidInputError:
    return InvalidInputError(
        f"{source!r} changed while it was being ingested (the second pass differs from "
        "the first); ingest it again"
    )
