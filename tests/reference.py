"""Dense NumPy reference implementations the distributed code is checked against.

Written straight from the textbook formulas, in float64, sharing no code with
dasknmf.
"""

from __future__ import annotations

import numpy as np

EPSILON = np.finfo(np.float32).eps


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
