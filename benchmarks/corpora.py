"""Real corpora for the benchmarks, from files a package registry installs.

:func:`gcide` is the term-document matrix of the GNU Collaborative International
Dictionary of English (Webster's 1913 and WordNet glosses): one document per
dictionary entry, as Debian's ``dict-gcide`` package installs it
(``apt-get install dict-gcide``: ``/usr/share/dictd/gcide.{index,dict.dz}``, the dictd
format). It is a real, Zipf-distributed text corpus of about 200,000 documents that
this project's machines can reach (their network reaches the package registries
only), where a web corpus (20 Newsgroups, RCV1, Wikipedia) cannot be downloaded.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import scipy.sparse as sp

#: Where Debian's ``dict-gcide`` installs the dictionary.
GCIDE = Path("/usr/share/dictd/gcide")

#: dictd's base-64 digits for offsets and lengths in an index file.
_DIGITS = {c: i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)}  # fmt: skip


def _number(text: str) -> int:
    value = 0
    for char in text:
        value = value * 64 + _DIGITS[char]
    return value


def dictd_entries(base: Path) -> list[str]:
    """The entries of a dictd dictionary (``base.index`` and ``base.dict.dz``), each
    once (index lines sharing an entry are one document), the database's own
    ``00-database-*`` entries left out."""
    index, data = base.with_suffix(".index"), base.with_suffix(".dict.dz")
    if not index.is_file() or not data.is_file():
        raise FileNotFoundError(
            f"{index} or {data} not found: install the dictionary with "
            "`apt-get install dict-gcide` (Debian's package)"
        )
    spans = set()
    for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and not parts[0].startswith("00-database"):
            spans.add((_number(parts[1]), _number(parts[2])))
    with gzip.open(data, "rb") as file:  # dictzip is gzip with a random-access table
        text = file.read()
    return [
        text[start : start + length].decode("utf-8", errors="replace")
        for start, length in sorted(spans)
    ]


def gcide(min_df: int = 5, dtype=np.float32) -> tuple[sp.csr_matrix, np.ndarray]:
    """The GCIDE term-document matrix: raw counts of the words (2+ letters, lower
    case, English stop words removed) in each entry, terms in at least ``min_df``
    entries, empty documents dropped. Returns the CSR matrix (documents × terms) and
    the terms."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(
        lowercase=True,
        stop_words="english",
        token_pattern=r"(?u)\b[a-z][a-z]+\b",
        min_df=min_df,
        dtype=dtype,
    )
    X = vectorizer.fit_transform(dictd_entries(GCIDE)).tocsr()
    X = X[np.diff(X.indptr) > 0]
    X.sort_indices()
    return X, vectorizer.get_feature_names_out()
