"""The k-selection figure: error and held-out error against k, stability beside them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def k_selection_plot(summary, path: str | os.PathLike, *, best_k: int | None = None) -> Path:
    """Draw ``summary`` (a row per k: ``k``, ``train_error``, ``test_error``,
    ``stability``) to ``path`` (its suffix names the format: ``.png``, ``.pdf``,
    ``.svg``).

    The file is written whole or not at all: drawn to a temporary file beside it,
    then renamed over it.

    Returns
    -------
    pathlib.Path
        Where the figure was written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    k = np.asarray(summary["k"])
    ax.plot(k, summary["train_error"], "o-", color="tab:blue", label="error (fitted)")
    if np.isfinite(np.asarray(summary["test_error"], dtype=float)).any():
        ax.plot(k, summary["test_error"], "s-", color="tab:orange", label="held-out error")
    ax.set_xlabel("k (number of components)")
    ax.set_ylabel("median ‖V − WH‖_F")
    ax.set_xticks(k)
    stab = ax.twinx()
    stab.plot(k, summary["stability"], "^--", color="tab:green", label="stability")
    stab.set_ylabel("stability (silhouette)")
    stab.set_ylim(min(0.0, float(np.nanmin(summary["stability"]))) if len(k) else 0.0, 1.05)
    if best_k is not None:
        ax.axvline(best_k, color="grey", linestyle=":", label=f"suggested k = {best_k}")
    handles = ax.get_legend_handles_labels()
    more = stab.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], loc="best", fontsize="small")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
