"""Built-in synthetic matrices for the demo, the examples and the benchmarks.

Deterministic for a given seed and generated in seconds, so every run of the demo and
of the benchmarks sees the same data.
"""

from __future__ import annotations

from collections.abc import Iterator

import dask
import dask.array as da
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
    cdf = _zipf_cdf(n_terms, zipf_exponent)
    return _documents(rng, n_docs, n_terms, cdf, None, mean_terms_per_doc, dtype)


def term_document_blocks(
    n_docs: int = 2_000_000,
    n_terms: int = 50_000,
    *,
    block_rows: int = 100_000,
    mean_terms_per_doc: float = 47.0,
    zipf_exponent: float = 1.07,
    seed: int = 0,
    dtype=np.float32,
) -> Iterator[sp.csr_matrix]:
    """:func:`term_document`'s matrix made lazily, one block of ``block_rows`` rows at a time.

    A generator of CSR row blocks (the last may be shorter) to hand to
    :func:`dasknmf.write_matrix` with ``shape=(n_docs, n_terms)``: only one block is
    in memory at a time, so a matrix larger than memory can be tried without writing
    a reader. Block ``i`` is generated from ``(seed, i)``, so the matrix depends on
    ``seed`` and ``block_rows`` (not on how it is consumed); its statistics are those
    of :func:`term_document` (same vocabulary order, Zipf law and document lengths).
    See :func:`lazy_term_document` for the same blocks as a dask array.

    Examples
    --------
    >>> from dasknmf.datasets import term_document_blocks
    >>> [b.shape for b in term_document_blocks(2_500, 300, block_rows=1_000)]
    [(1000, 300), (1000, 300), (500, 300)]
    """
    block, sizes = _row_blocks(
        n_docs, n_terms, block_rows, mean_terms_per_doc, zipf_exponent, seed, dtype
    )
    for i, rows in sizes:
        yield block(i, rows)


def lazy_term_document(
    n_docs: int = 2_000_000,
    n_terms: int = 50_000,
    *,
    block_rows: int = 100_000,
    mean_terms_per_doc: float = 47.0,
    zipf_exponent: float = 1.07,
    seed: int = 0,
    dtype=np.float32,
) -> da.Array:
    """The blocks of :func:`term_document_blocks` as a lazy dask array of CSR chunks.

    Nothing is generated until a block is computed, each in the task that needs it:
    ``dasknmf.write_matrix(lazy_term_document(), "big.zarr")`` writes a
    2,000,000 × 50,000 store (≈ 94M non-zeros) one row of tiles at a time, and
    ``NMF().fit`` takes it directly (then ``persist='auto'`` decides whether it is
    kept in memory). Equal, block for block, to :func:`term_document_blocks` with the
    same arguments.

    Examples
    --------
    >>> from dasknmf.datasets import lazy_term_document
    >>> X = lazy_term_document(2_500, 300, block_rows=1_000)
    >>> X.chunks
    ((1000, 1000, 500), (300,))
    >>> X.blocks[2].compute().shape
    (500, 300)
    """
    block, sizes = _row_blocks(
        n_docs, n_terms, block_rows, mean_terms_per_doc, zipf_exponent, seed, dtype
    )
    meta = sp.csr_matrix((0, 0), dtype=dtype)
    parts = [
        da.from_delayed(
            dask.delayed(block, pure=True)(i, rows), shape=(rows, n_terms), dtype=dtype, meta=meta
        )
        for i, rows in sizes
    ]
    return da.concatenate(parts, axis=0)


def _row_blocks(n_docs, n_terms, block_rows, mean_terms_per_doc, zipf_exponent, seed, dtype):
    """``block(i, rows)``, the generator of row block ``i`` (seeded by ``(seed, i)``),
    and the ``(i, rows)`` of every block."""
    cdf = _zipf_cdf(n_terms, zipf_exponent)
    permutation = np.random.default_rng(seed).permutation(n_terms)

    def block(i: int, rows: int) -> sp.csr_matrix:
        rng = np.random.default_rng([seed, i])
        return _documents(rng, rows, n_terms, cdf, permutation, mean_terms_per_doc, dtype)

    starts = range(0, n_docs, block_rows)
    return block, [(i, min(block_rows, n_docs - start)) for i, start in enumerate(starts)]


def _zipf_cdf(n_terms: int, zipf_exponent: float) -> np.ndarray:
    popularity = 1.0 / np.arange(1, n_terms + 1) ** zipf_exponent
    return np.cumsum(popularity / popularity.sum())


def _documents(
    rng: np.random.Generator,
    n_docs: int,
    n_terms: int,
    cdf: np.ndarray,
    permutation: np.ndarray | None,
    mean_terms_per_doc: float,
    dtype,
) -> sp.csr_matrix:
    """``n_docs`` documents: Poisson lengths, Zipf terms, 1 + geometric counts.

    ``permutation`` shuffles term ids so popular terms are spread over column tiles;
    ``None`` draws it from ``rng`` (after the terms, the order :func:`term_document`
    has always drawn in, so its matrices stay the same)."""
    lengths = rng.poisson(mean_terms_per_doc, size=n_docs)
    rows = np.repeat(np.arange(n_docs, dtype=np.int32), lengths)
    cols = np.minimum(np.searchsorted(cdf, rng.random(rows.size)), n_terms - 1)
    if permutation is None:
        permutation = rng.permutation(n_terms)
    cols = permutation[cols].astype(np.int32)
    values = rng.geometric(0.6, size=rows.size).astype(dtype)
    V = sp.csr_matrix((values, (rows, cols)), shape=(n_docs, n_terms), dtype=dtype)
    V.sum_duplicates()
    return V


def ratings(
    n_users: int = 100_000,
    n_items: int = 20_000,
    n_ratings: int = 5_000_000,
    rank: int = 10,
    noise: float = 0.3,
    seed: int = 0,
    dtype=np.float32,
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """A users × items ratings matrix on the 1–5 scale with a low-rank structure.

    Each rating is ``1 + u_i · v_j`` for non-negative rank-``rank`` taste vectors
    scaled so that 99% of ratings fall below 5, plus Gaussian noise of standard
    deviation ``noise``, clipped to [1, 5]. Observed pairs are drawn with popularity
    skew (a few items are rated often, as in real catalogues); duplicates are
    dropped. Only the observed entries are ever computed: O(n_ratings · rank).

    Returns
    -------
    X : scipy.sparse.csr_matrix
        The observed ratings (no stored zeros).
    U, V : ndarray
        The noise-free factors: the true rating of ``(i, j)`` is
        ``1 + U[i] @ V[:, j]`` clipped to [1, 5].

    Examples
    --------
    >>> from dasknmf.datasets import ratings
    >>> X, U, V = ratings(1_000, 200, 10_000, seed=0)
    >>> X.shape, bool(X.data.min() >= 1 and X.data.max() <= 5)
    ((1000, 200), True)
    """
    rng = np.random.default_rng(seed)
    U = rng.gamma(1.0, 1.0, size=(n_users, rank))
    V = rng.gamma(1.0, 1.0, size=(rank, n_items))
    popularity = rng.permutation(1.0 / np.arange(1, n_items + 1) ** 0.8)
    rows = rng.integers(0, n_users, size=n_ratings)
    cols = rng.choice(n_items, size=n_ratings, p=popularity / popularity.sum())
    pairs = np.unique(rows.astype(np.int64) * n_items + cols)
    rows, cols = pairs // n_items, pairs % n_items
    scale = 4.0 / np.quantile(np.einsum("pk,kp->p", U[rows[:10_000]], V[:, cols[:10_000]]), 0.99)
    U *= np.sqrt(scale)
    V *= np.sqrt(scale)
    truth = 1 + np.einsum("pk,kp->p", U[rows], V[:, cols])
    values = np.clip(truth + rng.normal(0.0, noise, size=truth.size), 1, 5).astype(dtype)
    X = sp.csr_matrix((values, (rows, cols)), shape=(n_users, n_items), dtype=dtype)
    return X, U, V


def planted_counts(
    n_rows: int = 2_000,
    n_cols: int = 1_000,
    rank: int = 6,
    *,
    density: float = 0.5,
    mean_count: float = 5.0,
    seed: int = 0,
    dtype=np.float64,
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Counts of a known rank: Poisson draws around a sparse non-negative ``W₀ H₀``.

    The example for choosing ``k`` (:class:`dasknmf.RankSweep` should find ``rank``).
    ``W₀`` and ``H₀`` are uniform on [0, 1) with a share ``1 − density`` of their
    entries zero; the counts' mean is ``mean_count``.

    Returns
    -------
    X : scipy.sparse.csr_matrix
        The counts (zeros not stored).
    W0, H0 : ndarray
        The planted factors (``X``'s expectation is ``c · W0 @ H0`` for a scalar ``c``).

    Examples
    --------
    >>> from dasknmf.datasets import planted_counts
    >>> X, W0, H0 = planted_counts(300, 200, rank=4, seed=0)
    >>> X.shape, W0.shape, H0.shape
    ((300, 200), (300, 4), (4, 200))
    """
    rng = np.random.default_rng(seed)
    W0 = rng.random((n_rows, rank)) * (rng.random((n_rows, rank)) < density)
    H0 = rng.random((rank, n_cols)) * (rng.random((rank, n_cols)) < density)
    expected = W0 @ H0
    counts = rng.poisson(expected * (mean_count / expected.mean()))
    return sp.csr_matrix(counts.astype(dtype)), W0, H0
