"""Built-in synthetic matrices for the demo, the examples and the benchmarks.

Deterministic for a given seed and generated in seconds, so every run of the demo and
of the benchmarks sees the same data.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def term_document(
    n_docs: int = 200_000,
    n_terms: int = 50_000,
    mean_terms_per_doc: float = 47.0,
    zipf_exponent: float = 1.07,
    seed: int = 0,
    dtype=np.float32,
) -> sp.csr_matrix:
    """A documents × terms count matrix with Zipf-distributed term popularity.

    Document lengths are Poisson, each document draws its terms from a Zipf law over
    the vocabulary, and counts are 1 + geometric, so duplicates merge into larger
    counts as in real bag-of-words data. With the defaults: ≈ 7.4M non-zeros.

    Examples
    --------
    >>> from dasknmf.datasets import term_document
    >>> V = term_document(2_000, 500, seed=0)
    >>> V.shape, V.dtype
    ((2000, 500), dtype('float32'))
    """
    rng = np.random.default_rng(seed)
    lengths = rng.poisson(mean_terms_per_doc, size=n_docs)
    rows = np.repeat(np.arange(n_docs, dtype=np.int32), lengths)
    popularity = 1.0 / np.arange(1, n_terms + 1) ** zipf_exponent
    cdf = np.cumsum(popularity / popularity.sum())
    cols = np.minimum(np.searchsorted(cdf, rng.random(rows.size)), n_terms - 1)
    # Shuffle term ids so popular terms are spread over column tiles.
    cols = rng.permutation(n_terms)[cols].astype(np.int32)
    values = rng.geometric(0.6, size=rows.size).astype(dtype)
    V = sp.csr_matrix((values, (rows, cols)), shape=(n_docs, n_terms), dtype=dtype)
    V.sum_duplicates()
    return V
