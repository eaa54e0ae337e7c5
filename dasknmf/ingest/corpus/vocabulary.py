"""The vocabulary of a text corpus, chosen as scikit-learn's ``CountVectorizer`` does.

Tokens come from ``CountVectorizer(...).build_analyzer()`` itself, so they are exactly
scikit-learn's. :class:`TermCounter` counts, in one streamed pass, the document
frequency and the total count of every distinct term; :meth:`TermCounter.select`
then applies ``min_df``, ``max_df`` and ``max_features`` with the same arithmetic,
the same array dtypes and the same (unstable) sort as ``CountVectorizer.fit``, so
ties are broken identically, and returns the kept terms in alphabetical order.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer

from dasknmf.errors import InvalidInputError, InvalidParameterError
from dasknmf.params import check_int, check_option

__all__ = [
    "DEFAULT_TOKEN_PATTERN",
    "TermCounter",
    "Vocabulary",
    "build_analyzer",
    "check_df",
    "count_terms",
]

DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
"""scikit-learn's default: words of two or more word characters."""

# Below this many terms, counting in a Python loop beats collections.Counter.
_SHORT_DOCUMENT = 64


def build_analyzer(
    *,
    lowercase: bool,
    token_pattern: str,
    stop_words: str | Sequence[str] | None,
    ngram_range: tuple[int, int],
    analyzer: str,
    strip_accents: str | None,
) -> Callable[[str], list[str]]:
    """scikit-learn's analyzer for these ``CountVectorizer`` options, checked first.

    Examples
    --------
    >>> analyze = build_analyzer(lowercase=True, token_pattern=DEFAULT_TOKEN_PATTERN,
    ...     stop_words="english", ngram_range=(1, 2), analyzer="word", strip_accents=None)
    >>> analyze("The cat sat")
    ['cat', 'sat', 'cat sat']
    """
    if not isinstance(lowercase, bool):
        raise InvalidParameterError(
            f"The 'lowercase' parameter must be a bool; got {lowercase!r}."
        )
    if not isinstance(token_pattern, str):
        raise InvalidParameterError(
            f"The 'token_pattern' parameter must be a str; got {token_pattern!r}."
        )
    if stop_words is not None and stop_words != "english":
        if isinstance(stop_words, str) or not all(isinstance(w, str) for w in stop_words):
            raise InvalidParameterError(
                "The 'stop_words' parameter must be None, 'english' or a list of str; "
                f"got {stop_words!r}."
            )
        stop_words = list(stop_words)
    ok = (
        isinstance(ngram_range, (tuple, list))
        and len(ngram_range) == 2
        and all(isinstance(v, Integral) and not isinstance(v, bool) for v in ngram_range)
        and 1 <= ngram_range[0] <= ngram_range[1]
    )
    if not ok:
        raise InvalidParameterError(
            "The 'ngram_range' parameter must be a pair (min_n, max_n) of ints with "
            f"1 <= min_n <= max_n; got {ngram_range!r}."
        )
    check_option("analyzer", analyzer, ("word", "char", "char_wb"))
    check_option("strip_accents", strip_accents, (None, "ascii", "unicode"))
    vectorizer = CountVectorizer(
        lowercase=lowercase,
        token_pattern=token_pattern,
        stop_words=stop_words,
        ngram_range=(int(ngram_range[0]), int(ngram_range[1])),
        analyzer=analyzer,
        strip_accents=strip_accents,
    )
    try:
        return vectorizer.build_analyzer()
    except Exception as exc:  # an invalid regular expression, for one
        raise InvalidParameterError(f"cannot build the analyzer: {exc}") from exc


def count_terms(terms: list[str]) -> dict[str, int]:
    """How many times each term occurs in one document's list of terms.

    Examples
    --------
    >>> count_terms(["b", "a", "b"])
    {'b': 2, 'a': 1}
    """
    if len(terms) > _SHORT_DOCUMENT:
        return Counter(terms)  # a loop in C, but a costly set-up for short documents
    counts: dict[str, int] = {}
    for term in terms:
        counts[term] = counts.get(term, 0) + 1
    return counts


def check_df(name: str, value: Any) -> int | float:
    """``min_df`` / ``max_df`` as scikit-learn takes them: an int >= 1 is a number of
    documents, a float in [0, 1] a proportion of them.

    Examples
    --------
    >>> check_df("min_df", 2), check_df("max_df", 0.5)
    (2, 0.5)
    """
    if isinstance(value, Integral) and not isinstance(value, bool):
        return int(check_int(name, value, low=1))
    if isinstance(value, Real) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
        return float(value)
    raise InvalidParameterError(
        f"The {name!r} parameter must be an int >= 1 (documents) or a float in [0, 1] "
        f"(proportion of documents); got {value!r}."
    )


@dataclass(frozen=True)
class Vocabulary:
    """The chosen terms, alphabetically, and what the count matrix will hold.

    Attributes
    ----------
    terms : list of str
        Column ``j`` counts ``terms[j]``.
    nnz : int
        Non-zeros of the matrix: the sum of the kept terms' document frequencies.
    max_count : int
        Largest count of one term in one document (over every term seen).
    n_documents, n_distinct : int
        Documents, and distinct terms before pruning.
    """

    terms: list[str]
    nnz: int
    max_count: int
    n_documents: int
    n_distinct: int


class TermCounter:
    """Document frequency and total count of every distinct term of a corpus.

    The memory that grows with the corpus: a dict of the distinct terms and two
    int64 arrays, a fixed cost per term plus the term itself; :meth:`select` takes a
    little more per term (docs/benchmarks.md, "Figures behind the code").

    Examples
    --------
    >>> counter = TermCounter()
    >>> for doc in (["b", "a", "b"], ["b"], ["c"]):
    ...     counter.add(doc)
    >>> counter.select(min_df=2, max_df=1.0, max_features=None, source="x").terms
    ['b']
    """

    def __init__(self) -> None:
        self.n_documents = 0
        self.max_count = 0
        self._index: dict[str, int] = {}
        self._df = array("q")
        self._tf = array("q")

    @property
    def n_distinct(self) -> int:
        """Distinct terms seen so far."""
        return len(self._index)

    def add(self, terms: list[str]) -> None:
        """Count one document's terms."""
        counts = count_terms(terms)
        index, df, tf = self._index, self._df, self._tf
        for term, count in counts.items():
            i = index.get(term)
            if i is None:
                index[term] = len(df)
                df.append(1)
                tf.append(count)
            else:
                df[i] += 1
                tf[i] += count
        if counts:
            self.max_count = max(self.max_count, max(counts.values()))
        self.n_documents += 1

    def select(
        self,
        *,
        min_df: int | float,
        max_df: int | float,
        max_features: int | None,
        source: str,
    ) -> Vocabulary:
        """The terms ``CountVectorizer(min_df, max_df, max_features).fit`` would keep.

        Raises
        ------
        InvalidInputError
            No document, no term at all, or none left after pruning (naming
            ``source``).
        InvalidParameterError
            ``max_df`` means fewer documents than ``min_df`` for this corpus.
        """
        n = self.n_documents
        if n == 0:
            raise InvalidInputError(f"{source!r} holds no documents")
        if not self._index:
            raise InvalidInputError(
                f"{source!r}: empty vocabulary: its {n:,} documents hold no terms "
                "(empty, or only stop words?)"
            )
        high = max_df if isinstance(max_df, int) else max_df * n
        low = min_df if isinstance(min_df, int) else min_df * n
        if high < low:
            raise InvalidParameterError(
                f"max_df={max_df!r} means at most {high:g} documents, fewer than the "
                f"{low:g} of min_df={min_df!r}, for the {n:,} documents of {source!r}"
            )
        # Every array as in CountVectorizer: terms sorted alphabetically, int64
        # frequencies, numpy's default (unstable) argsort of the negated totals.
        terms = sorted(self._index)
        order = np.fromiter((self._index[t] for t in terms), dtype=np.int64, count=len(terms))
        dfs = np.frombuffer(self._df, dtype=np.int64)[order]
        mask = (dfs <= high) & (dfs >= low)
        if max_features is not None and mask.sum() > max_features:
            tfs = np.frombuffer(self._tf, dtype=np.int64)[order]
            best = (-tfs[mask]).argsort()[:max_features]
            limited = np.zeros(len(dfs), dtype=bool)
            limited[np.where(mask)[0][best]] = True
            mask = limited
        kept = np.flatnonzero(mask)
        if not kept.size:
            raise InvalidInputError(
                f"{source!r}: no terms remain after pruning (min_df={min_df!r}, "
                f"max_df={max_df!r} over {n:,} documents); try a lower min_df or a higher "
                "max_df"
            )
        return Vocabulary(
            terms=[terms[k] for k in kept.tolist()],
            nnz=int(dfs[kept].sum()),
            max_count=self.max_count,
            n_documents=n,
            n_distinct=len(terms),
        )
