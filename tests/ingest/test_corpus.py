"""Text corpora ingested into documents x terms count stores.

The reference is scikit-learn's ``CountVectorizer(same options).fit_transform`` on
the documents held in memory: the store must equal it exactly, and the column ids
must equal ``get_feature_names_out()``.
"""

from __future__ import annotations

import bz2
import gzip
import itertools
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from dasknmf.errors import (
    InputFileNotFoundError,
    InvalidInputError,
    InvalidParameterError,
    StoreExistsError,
    UnsupportedFormatError,
)
from dasknmf.ingest import ingest, ingest_corpus
from dasknmf.ingest.corpus import ingest as corpus_module
from dasknmf.storage import matrix_info, open_matrix, read_ids
from tests.ingest.importer_testing import GARBAGE, ImporterTests, Sample

DOCS = [
    "The quick brown fox jumps over the lazy dog.",
    "Never jump over the lazy dog quickly; the dog sleeps.",
    "",
    "A café, a CAFE and a cafe: three cafés?",
    "Brown dogs and brown foxes are not the same animals",
    "fox fox fox FOX",
    "   ",
    "Numbers like 42 and x1 are tokens too, a is not",
    "the the the and and of of",
    "Jumping foxes, sleeping dogs; quick brown animals.",
]


def random_docs(n: int, seed: int, words: int = 40) -> list[str]:
    """Short documents over a small vocabulary: many ties in the term counts."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i:02d}" for i in range(words)] + ["the", "and", "of", "Big", "big"]
    return [" ".join(rng.choice(vocabulary, size=rng.integers(0, 9))) for _ in range(n)]


def write_lines(path: Path, docs: list[str]) -> Path:
    path.write_text("\n".join(docs) + "\n", encoding="utf-8")
    return path


def write_directory(path: Path, docs: list[str]) -> list[str]:
    """One file per document, named so that name order differs from creation order."""
    path.mkdir()
    names = [f"doc-{(7 * i) % len(docs):03d}.txt" for i in range(len(docs))]
    for name, doc in zip(names, docs, strict=True):
        (path / name).write_text(doc, encoding="utf-8")
    return names


def assert_like_sklearn(dst: Path, docs: list[str], **options) -> None:
    reference = CountVectorizer(**options)
    expected = reference.fit_transform(docs)
    V = open_matrix(dst).compute()
    assert V.shape == expected.shape
    assert (sp.csr_matrix(V) != expected).nnz == 0
    assert read_ids(dst, "columns").tolist() == reference.get_feature_names_out().tolist()
    assert matrix_info(dst).nnz == expected.nnz


class TestCorpusDirectory(ImporterTests):
    name = "corpus"

    @pytest.fixture
    def sample(self, tmp_path):
        (tmp_path / "docs").mkdir()
        for i, doc in enumerate(DOCS):
            (tmp_path / "docs" / f"doc-{i:02d}.txt").write_text(doc, encoding="utf-8")
        return Sample(tmp_path / "docs", CountVectorizer().fit_transform(DOCS).toarray())

    @pytest.fixture
    def invalid(self):
        return None  # counts are never negative, NaN or infinite

    @pytest.fixture
    def damaged(self, tmp_path, sample):
        write_directory(tmp_path / "binary", ["good text", "more text"])
        (tmp_path / "binary" / "bad.txt").write_bytes(GARBAGE)
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "notes.md").write_text("not a document")
        return [tmp_path / "binary", tmp_path / "empty"]


# -- parity with scikit-learn ----------------------------------------------------------


OPTIONS = [
    {},
    {"lowercase": False},
    {"stop_words": "english"},
    {"stop_words": ["fox", "dog"]},
    {"ngram_range": (1, 2)},
    {"ngram_range": (2, 3), "stop_words": "english"},
    {"min_df": 2},
    {"min_df": 0.25},
    {"max_df": 0.3},
    {"max_df": 2},
    {"max_features": 7},
    {"max_features": 5, "ngram_range": (1, 2), "min_df": 2},
    {"token_pattern": r"(?u)\b\w+\b"},
    {"strip_accents": "unicode"},
    {"analyzer": "char_wb", "ngram_range": (2, 3)},
    {"analyzer": "char", "max_features": 20},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(map(str, o.items())) or "-")
def test_file_corpus_equals_count_vectorizer(tmp_path, options):
    src = write_lines(tmp_path / "docs.txt", DOCS)
    result = ingest_corpus(src, tmp_path / "v.zarr", chunks=(3, 4), block_size=5, **options)
    assert_like_sklearn(tmp_path / "v.zarr", DOCS, **options)
    assert result.n_documents == len(DOCS)
    assert result.row_ids is None
    assert read_ids(tmp_path / "v.zarr", "rows").tolist() == list(range(len(DOCS)))


@pytest.mark.parametrize(
    "options",
    [{"max_features": 13}, {"max_features": 29, "min_df": 3, "max_df": 0.1}, {"max_df": 40}],
)
def test_ties_are_broken_as_scikit_learn_does(tmp_path, options):
    docs = random_docs(400, seed=1)
    src = write_lines(tmp_path / "docs.txt", docs)
    ingest_corpus(src, tmp_path / "v.zarr", **options)
    assert_like_sklearn(tmp_path / "v.zarr", docs, **options)


def test_directory_corpus_keeps_file_names(tmp_path):
    names = write_directory(tmp_path / "docs", DOCS)
    (tmp_path / "docs" / "notes.md").write_text("not a document")
    (tmp_path / "docs" / ".hidden.txt").write_text("not a document either")
    (tmp_path / "docs" / "sub.txt").mkdir()

    result = ingest(tmp_path / "docs", tmp_path / "v.zarr", chunks=(4, 10))

    order = sorted(range(len(names)), key=names.__getitem__)
    docs = [DOCS[i] for i in order]
    assert_like_sklearn(tmp_path / "v.zarr", docs)
    assert read_ids(tmp_path / "v.zarr", "rows").tolist() == sorted(names)
    assert result.has_row_ids and result.has_col_ids


def test_line_endings_and_compression(tmp_path):
    docs = ["Alpha beta", "gamma\tdelta", "", "alpha ALPHA"]
    (tmp_path / "crlf.txt").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(docs).encode() + b"\r\n")
    with gzip.open(tmp_path / "docs.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(docs))  # no final newline
    with bz2.open(tmp_path / "docs.txt.bz2", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(docs) + "\n")
    for name in ("crlf.txt", "docs.txt.gz", "docs.txt.bz2"):
        dst = tmp_path / f"{name}.zarr"
        ingest(tmp_path / name, dst, corpus=True)
        assert_like_sklearn(dst, docs)


def test_result_and_dtype(tmp_path):
    src = write_lines(tmp_path / "docs.txt", DOCS)
    result = ingest_corpus(src, tmp_path / "v.zarr", stop_words="english", min_df=2)
    reference = CountVectorizer(stop_words="english", min_df=2).fit(DOCS)
    assert result.n_terms == len(reference.vocabulary_)
    assert result.n_distinct == len(CountVectorizer(stop_words="english").fit(DOCS).vocabulary_)
    assert result.store.dtype == np.float32 and result.store.format == "sparse"
    text = str(result)
    assert f"{len(DOCS)} documents x {result.n_terms} terms" in text
    assert f"{result.n_terms} of {result.n_distinct} distinct terms" in text
    assert "col_ids" in text

    ingest_corpus(src, tmp_path / "f64.zarr", dtype="float64")
    assert matrix_info(tmp_path / "f64.zarr").dtype == np.float64


# -- bad inputs ------------------------------------------------------------------------


def test_empty_corpora_write_nothing(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(InvalidInputError, match=r"empty\.txt' holds no documents"):
        ingest_corpus(tmp_path / "empty.txt", tmp_path / "v.zarr")
    write_lines(tmp_path / "stop.txt", ["the and of", "", "a I"])
    with pytest.raises(InvalidInputError, match=r"stop\.txt.*empty vocabulary.*3 documents"):
        ingest_corpus(tmp_path / "stop.txt", tmp_path / "v.zarr", stop_words="english")
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "readme.md").write_text("no .txt here")
    with pytest.raises(InvalidInputError, match=r"nothing' holds no documents: no \.txt"):
        ingest(tmp_path / "nothing", tmp_path / "v.zarr")
    with pytest.raises(InvalidInputError, match=r"no terms remain after pruning"):
        ingest_corpus(write_lines(tmp_path / "d.txt", DOCS), tmp_path / "v.zarr", min_df=10)
    assert not (tmp_path / "v.zarr").exists()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_unreadable_documents_write_nothing(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("fine line\nnaïve café\n".encode("latin-1"))
    with pytest.raises(UnsupportedFormatError, match=r"latin1\.txt.*UTF-8.*line 2"):
        ingest_corpus(tmp_path / "latin1.txt", tmp_path / "v.zarr")
    write_directory(tmp_path / "docs", ["good text", "more text"])
    (tmp_path / "docs" / "bad.txt").write_bytes(b"\xff\xfe binary \x00")
    with pytest.raises(UnsupportedFormatError, match=r"bad\.txt.*UTF-8"):
        ingest(tmp_path / "docs", tmp_path / "v.zarr")
    (tmp_path / "broken.txt.gz").write_bytes(gzip.compress(b"one\ntwo\n" * 100)[:-20])
    with pytest.raises(UnsupportedFormatError, match=r"broken\.txt\.gz"):
        ingest_corpus(tmp_path / "broken.txt.gz", tmp_path / "v.zarr")
    with pytest.raises(InputFileNotFoundError, match=r"absent\.txt"):
        ingest_corpus(tmp_path / "absent.txt", tmp_path / "v.zarr")
    assert not (tmp_path / "v.zarr").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_df": 0}, "min_df"),
        ({"max_df": 1.5}, "max_df"),
        ({"min_df": True}, "min_df"),
        ({"max_features": 0}, "max_features"),
        ({"ngram_range": (2, 1)}, "ngram_range"),
        ({"analyzer": "sentence"}, "analyzer"),
        ({"stop_words": "french"}, "stop_words"),
        ({"token_pattern": "("}, "analyzer"),
        ({"min_df": 5, "max_df": 3}, r"max_df=3 means at most 3 documents.*min_df=5"),
        ({"min_df": 0.5, "max_df": 0.2}, r"max_df=0\.2.*fewer than.*min_df=0\.5"),
    ],
)
def test_invalid_options(tmp_path, options, message):
    src = write_lines(tmp_path / "docs.txt", DOCS)
    with pytest.raises(InvalidParameterError, match=message):
        ingest_corpus(src, tmp_path / "v.zarr", **options)
    assert not (tmp_path / "v.zarr").exists()


def test_existing_store_is_not_overwritten(tmp_path):
    src = write_lines(tmp_path / "docs.txt", DOCS)
    ingest_corpus(src, tmp_path / "v.zarr")
    before = {p: p.read_bytes() for p in (tmp_path / "v.zarr").rglob("*") if p.is_file()}
    with pytest.raises(StoreExistsError, match=r"v\.zarr"):
        ingest_corpus(src, tmp_path / "v.zarr", min_df=2)
    assert {p: p.read_bytes() for p in before} == before
    ingest_corpus(src, tmp_path / "v.zarr", min_df=2, overwrite=True)
    assert_like_sklearn(tmp_path / "v.zarr", DOCS, min_df=2)


def test_dispatch_of_txt_files(tmp_path):
    # A .txt is a triplet file unless told otherwise; a corpus is always sparse.
    write_lines(tmp_path / "r.txt", ["u1 i1 3.5", "u2 i1 1"])
    assert ingest(tmp_path / "r.txt", tmp_path / "t.zarr").shape == (2, 1)
    assert ingest(tmp_path / "r.txt", tmp_path / "c.zarr", corpus=True).shape == (2, 3)
    with pytest.raises(InvalidParameterError, match="format"):
        ingest(tmp_path / "r.txt", tmp_path / "d.zarr", corpus=True, format="dense")


# -- memory ----------------------------------------------------------------------------


@pytest.mark.slow
def test_passes_use_bounded_memory(tmp_path, monkeypatch):
    """120 000 short lines (2.3 MB), counts spilled 1024 at a time.

    Loading the corpus at once takes at least its size (one str of 2.3 MB; a list
    of 120 000 str, ~8 MB; then CountVectorizer's 300 000-entry matrix), so the
    bound below, a quarter of the file's size, fails then; streaming measured
    ~0.14 MB. Measured by tracemalloc (which slows the passes fourfold, hence not
    more lines) up to the point where the store is written (the writer's own
    bound, one row block, is tested elsewhere); the vocabulary is 300 words, so the
    term dict is small.
    """
    n = 120_000
    rng = np.random.default_rng(0)
    words = np.array([f"term{i}" for i in range(300)])
    lengths = rng.integers(1, 5, size=n)
    tokens = words[rng.integers(0, words.size, size=int(lengths.sum()))]
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    with open(tmp_path / "big.txt", "w") as fh:
        for a, b in itertools.pairwise(bounds):
            fh.write(" ".join(tokens[a:b]) + "\n")
    del tokens
    text_bytes = (tmp_path / "big.txt").stat().st_size

    peaks: list[int] = []
    plan_write = corpus_module.plan_write

    def measure_then_plan(*args, **kwargs):
        peaks.append(tracemalloc.get_traced_memory()[1])
        return plan_write(*args, **kwargs)

    monkeypatch.setattr(corpus_module, "plan_write", measure_then_plan)
    tracemalloc.start()
    try:
        result = ingest_corpus(
            tmp_path / "big.txt", tmp_path / "big.zarr", chunks=(16_384, 300), block_size=1024
        )
    finally:
        tracemalloc.stop()

    assert result.n_documents == n and result.n_terms == 300
    assert text_bytes > 2 * 2**20
    assert peaks[0] < text_bytes / 4, (peaks[0], text_bytes)
