"""What a job reports besides the factors: the convergence plot, top features, and the
words of its stopping rule."""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["column_ids", "convergence_png", "format_top_features", "top_features"]

logger = logging.getLogger(__name__)

#: How a job turns the ``tol`` rule off, in the line that says why a fit stopped.
TOL_OFF = "set model.tol: 0"


def convergence_png(curve: Sequence[tuple[int, float]], *, title: str = "") -> bytes:
    """A PNG of the error against the iteration, on a log scale.

    Drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas: no pyplot,
    no global state, no display needed. A curve with a zero or negative error (an
    exact factorisation) is drawn on a linear scale.

    Examples
    --------
    >>> convergence_png([(1, 10.0), (2, 5.0)])[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    iterations = [i for i, _ in curve]
    errors = [e for _, e in curve]
    ax.plot(iterations, errors, marker="." if len(curve) < 50 else None)
    if errors and min(errors) > 0 and all(math.isfinite(e) for e in errors):
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("reconstruction error")
    ax.set_title(title or "convergence")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def top_features(H: np.ndarray, ids: Sequence[Any], n: int) -> list[list[dict[str, Any]]]:
    """The ``n`` heaviest features of each component (row of ``H``), by weight.

    Features of weight 0 are left out. Ties are broken by the lower column index.

    Parameters
    ----------
    H : ndarray of shape (k, n_features)
    ids : sequence of length n_features
        The column ids (a vocabulary, gene names ...).
    n : int

    Returns
    -------
    list of list of dict
        For each component, ``{"feature": id, "index": column, "weight": float}``.

    Examples
    --------
    >>> H = np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    >>> [[f["feature"] for f in c] for c in top_features(H, ["a", "b", "c"], 2)]
    [['b', 'c'], ['a']]
    """
    H = np.asarray(H)
    if len(ids) != H.shape[1]:
        raise ValueError(f"{len(ids)} column ids for {H.shape[1]} columns of H")
    table = []
    for row in H:
        order = np.argsort(-row, kind="stable")[:n]
        table.append(
            [
                {"feature": _plain(ids[j]), "index": int(j), "weight": float(row[j])}
                for j in order
                if row[j] > 0
            ]
        )
    return table


def format_top_features(table: Sequence[Sequence[dict[str, Any]]]) -> str:
    """One line per component: ``component 0: word (0.512), other (0.250)``.

    Examples
    --------
    >>> print(format_top_features([[{"feature": "a", "index": 0, "weight": 0.5}], []]))
    component 0: a (0.5)
    component 1: (no feature of positive weight)
    """
    lines = []
    for c, features in enumerate(table):
        text = ", ".join(f"{f['feature']} ({f['weight']:.4g})" for f in features)
        lines.append(f"component {c}: {text or '(no feature of positive weight)'}")
    return "\n".join(lines)


def column_ids(path: str, storage_options: dict[str, Any] | None = None) -> list[Any] | None:
    """The column ids (vocabulary) stored with a matrix store, or ``None``.

    Uses :func:`dasknmf.storage.read_ids` where this dasknmf exports it. A store
    without stored ids (its columns are named by their indices) has no vocabulary,
    and neither has an older dasknmf without ``read_ids``: the job then skips top
    features.
    """
    try:
        from dasknmf.storage import read_ids  # type: ignore[attr-defined]
    except ImportError:
        logger.info("dasknmf.storage.read_ids is not available: no top features")
        return None
    ids = np.asarray(read_ids(path, "columns", storage_options=storage_options or None))
    if ids.dtype.kind in "iu":  # the indices themselves: no names to show
        return None
    return ids.tolist()


def _plain(value: Any) -> Any:
    """NumPy scalars as Python ones, for JSON."""
    return value.item() if isinstance(value, np.generic) else value
