"""Synthetic matrices for the benchmarks (deterministic, generated in seconds)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def term_document(
    n_docs: int = 200_000,
    n_terms: int = 50_000,
    mean_terms_per_doc: float = 37.5,
    zipf_exponent: float = 1.07,
    seed: int = 0,
    dtype=np.float32,
) -> sp.csr_matrix:
    """A documents × terms count matrix with Zipf-distributed term popularity.

    Document lengths are Poisson, each document draws its terms from a Zipf law over
    the vocabulary, and counts are 1 + geometric, so duplicates merge into larger
    counts as in real bag-of-words data. The defaults give ≈ 7.4M non-zeros.
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
