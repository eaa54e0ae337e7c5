"""Ready-made observers of the fit loop (see :class:`dasknmf.fit.IterationInfo`)."""

from __future__ import annotations

import sys
from typing import TextIO

from dasknmf.fit import IterationInfo


class PrintProgress:
    """Write one line per iteration: number, error, relative error, seconds.

    Parameters
    ----------
    stream : file-like, optional
        Where to write; ``sys.stdout`` when not given (looked up at each call, so
        redirections made later are honoured).
    every : int
        Write every ``every``-th iteration only.

    Examples
    --------
    >>> import numpy as np, dasknmf
    >>> X = np.random.default_rng(0).random((20, 10))
    >>> progress = dasknmf.PrintProgress()
    >>> model = dasknmf.NMF(3, init="random", random_state=0, max_iter=2, callbacks=[progress])
    >>> _ = model.fit(X)  # doctest: +ELLIPSIS
    iter     1  error ... rel 0.6...
    iter     2  error ...
    """

    def __init__(self, stream: TextIO | None = None, every: int = 1) -> None:
        self.stream = stream
        self.every = every

    def __call__(self, info: IterationInfo) -> None:
        if info.iteration % self.every:
            return
        stream = self.stream or sys.stdout
        relative = info.error / info.error_at_init if info.error_at_init else 0.0
        stream.write(
            f"iter {info.iteration:5d}  error {info.error:.6e}  rel {relative:.4f}  "
            f"{info.elapsed:.1f}s\n"
        )
        stream.flush()
