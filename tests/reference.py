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
