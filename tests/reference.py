"""Dense NumPy reference implementations the distributed code is checked against.

Written straight from the textbook formulas, in float64, sharing no code with
dasknmf.
"""

from __future__ import annotations

import numpy as np

EPSILON = np.finfo(np.float32).eps
TINY = np.finfo(np.float64).eps


def dense(X) -> np.ndarray:
    return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)


def mu_frobenius(V, W, H, n_iter: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Lee & Seung updates, W first then H; returns W, H and ‖V − WH‖_F per iteration."""
    V, W, H = dense(V), np.array(W, dtype=np.float64), np.array(H, dtype=np.float64)
    errors = []
    for _ in range(n_iter):
        den = W @ (H @ H.T)
        den[den == 0] = EPSILON
        W = W * (V @ H.T) / den
        den = (W.T @ W) @ H
        den[den == 0] = EPSILON
        H = H * (W.T @ V) / den
        errors.append(float(np.linalg.norm(V - W @ H)))
    return W, H, errors


def frobenius_error(V, W, H) -> float:
    return float(np.linalg.norm(dense(V) - np.asarray(W, np.float64) @ np.asarray(H, np.float64)))


def hals_frobenius(V, W, H, n_iter: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Coordinate descent as scikit-learn's Cython loop writes it (element by element,
    W's columns in order, then H's rows), for small matrices."""
    V, W, H = dense(V), np.array(W, dtype=np.float64), np.array(H, dtype=np.float64)
    errors = []

    def sweep(X, A, G):  # X: rows × k factor, A: X's rows of V·other, G: other's Gram
        for t in range(X.shape[1]):
            for i in range(X.shape[0]):
                grad = -A[i, t] + sum(G[t, r] * X[i, r] for r in range(X.shape[1]))
                if G[t, t] != 0:
                    X[i, t] = max(X[i, t] - grad / G[t, t], 0.0)

    for _ in range(n_iter):
        sweep(W, V @ H.T, H @ H.T)
        Ht = H.T.copy()
        sweep(Ht, V.T @ W, W.T @ W)
        H = Ht.T
        errors.append(float(np.linalg.norm(V - W @ H)))
    return W, H, errors


def masked_mu(V, M, W, H, n_iter: int, beta: float = 2.0, l1=(0.0, 0.0), l2=(0.0, 0.0)):
    """Multiplicative updates of the β-divergence over the entries where ``M`` is 1,
    densely: every product formed in full and multiplied by the mask. ``l1``/``l2``
    are the (W, H) penalties added to the denominators. Returns W, H and the error
    ``sqrt(2 Σ_M d_β)`` per iteration."""
    V = np.nan_to_num(dense(V))
    M = np.asarray(M, dtype=np.float64)
    W, H = np.array(W, dtype=np.float64), np.array(H, dtype=np.float64)
    gamma = 1 / (2 - beta) if beta < 1 else (1 / (beta - 1) if beta > 2 else 1.0)

    def factors(WH):
        WH = WH if beta == 2 else np.maximum(WH, EPSILON)
        return M * V * WH ** (beta - 2), M * WH ** (beta - 1)

    def step(X, num, den, a, b):
        den = den + a + b * X
        den[den == 0] = EPSILON
        return X * (num / den) ** gamma

    errors = []
    for _ in range(n_iter):
        num, den = factors(W @ H)
        W = step(W, num @ H.T, den @ H.T, l1[0], l2[0])
        if beta < 1:
            W[W < TINY] = 0
        num, den = factors(W @ H)
        H = step(H, W.T @ num, W.T @ den, l1[1], l2[1])
        if beta <= 1:
            H[H < TINY] = 0
        errors.append(masked_error(V, M, W, H, beta))
    return W, H, errors


def masked_error(V, M, W, H, beta: float = 2.0) -> float:
    """``sqrt(2 Σ_M d_β(V | WH))`` with the elementwise divergence written out."""
    V, M = np.nan_to_num(dense(V)), np.asarray(M, dtype=bool)
    v, x = V[M], (np.asarray(W, np.float64) @ np.asarray(H, np.float64))[M]
    if beta == 2:
        d = 0.5 * (v - x) ** 2
    else:
        x = np.maximum(x, EPSILON)
        if beta == 1:
            d = np.where(v > 0, v * np.log(np.where(v > 0, v, 1) / x), 0) - v + x
        elif beta == 0:
            d = v / x - np.log(v / x) - 1
        else:
            d = (v**beta + (beta - 1) * x**beta - beta * v * x ** (beta - 1)) / (beta * (beta - 1))
    return float(np.sqrt(2 * max(d.sum(), 0.0)))


def masked_als(V, M, W, H, n_iter: int, *, l1=(0.0, 0.0), l2=(0.0, 0.0), weighted=(0.0, 0.0)):
    """Alternating non-negative least squares over the entries where ``M`` is 1: each
    row of ``W`` (then each column of ``H``) by ``scipy.optimize.nnls`` on its own
    observed entries, the ridge ``l2 + weighted · n_obs`` and ``l1`` written as extra
    least-squares rows. Returns W, H and ``‖M ∘ (V − WH)‖_F`` per sweep."""
    from scipy.optimize import nnls

    V, M = np.nan_to_num(dense(V)), np.asarray(M, dtype=bool)
    W, H = np.array(W, dtype=np.float64), np.array(H, dtype=np.float64)
    k = W.shape[1]

    def solve(A, y, l1_, l2_):
        # min ½‖Ax − y‖² + l1·Σx + ½ l2‖x‖², x ≥ 0  ==  an NNLS on stacked rows, with the
        # linear term folded in by completing the square against A's Gram.
        G = A.T @ A + l2_ * np.eye(k)
        rhs = A.T @ y - l1_
        if not A.shape[0] and not l2_:
            return np.zeros(k)
        # G = RᵀR (G is positive definite here, or a zero row: handled above).
        R = np.linalg.cholesky(G + 1e-300 * np.eye(k)).T
        return nnls(R, np.linalg.solve(R.T, rhs))[0]

    errors = []
    for _ in range(n_iter):
        for i in range(W.shape[0]):
            seen = M[i]
            W[i] = solve(H[:, seen].T, V[i, seen], l1[0], l2[0] + weighted[0] * seen.sum())
        for j in range(H.shape[1]):
            seen = M[:, j]
            H[:, j] = solve(W[seen], V[seen, j], l1[1], l2[1] + weighted[1] * seen.sum())
        errors.append(float(np.linalg.norm((V - W @ H)[M])))
    return W, H, errors
