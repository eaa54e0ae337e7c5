"""Bounded lineage on a distributed cluster: the factors as data without history.

Each iteration's ``W_k, H_k`` are computed from ``W_{k-1}, H_{k-1}``. The scheduler
keeps the record of a released task as long as something that depends on it may
need it recomputed, so with factors whose history goes back to the initialisation it
keeps every iteration's tasks (a few per tile per iteration; docs/architecture.md),
and a block lost with a worker is recomputed by replaying the fit from the start.

The loop therefore gathers the factors into this process (an :class:`Anchor`) before
its first iteration and scatters them back as data without history. Scattered data
cannot be recomputed, so once released the tasks that depend on it are forgotten
too: the scheduler holds one iteration's tasks, O(tiles), however long the fit
(``tests/test_lineage.py``). The price is recovery: when a worker dies holding some
of the factors the loop restores the anchor (scatters its blocks again) and replays
the iterations since. It re-anchors every :data:`REROOT_EVERY` iterations to bound
that replay; the updates are deterministic, so the result is that of a fit that lost
nothing.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np

#: Iterations between two anchors: the most a lost worker makes the loop replay. An
#: anchor moves ``(m + n) · k`` values to this process and back (one iteration's
#: factor traffic).
REROOT_EVERY = 25

#: Restores from one anchor before the loop gives up: data lost again and again is
#: not a worker that died once, and replaying for ever would hide it.
MAX_REPLAYS = 3
#: Attempts at scattering an anchor's blocks. Right after a worker is lost the
#: scheduler may still list it, and a scatter that picks it fails with a closed
#: connection; the next attempt sees the workers that are left.
SCATTER_ATTEMPTS = 3
SCATTER_RETRY_SECONDS = 0.5


@dataclass(frozen=True)
class Anchor:
    """The loop's position at the last re-root, with the factors' blocks in memory.

    ``carry`` holds whatever else the loop needs to restart from here (its error,
    stopping-rule state and error curve).
    """

    iteration: int
    W: list[np.ndarray] = field(repr=False)
    H: list[np.ndarray] = field(repr=False)
    W_like: da.Array = field(repr=False)
    H_like: da.Array = field(repr=False)
    carry: dict[str, Any] = field(default_factory=dict, repr=False)


def take_anchor(iteration: int, W: da.Array, H: da.Array, **carry: Any) -> Anchor:
    """Gather the blocks of ``W`` and ``H`` (persisted on the cluster) into memory."""
    blocks = dask.compute(*W.to_delayed().ravel(), *H.to_delayed().ravel())
    n_w = W.numblocks[0] * W.numblocks[1]
    return Anchor(iteration, list(blocks[:n_w]), list(blocks[n_w:]), W, H, carry)


def planted(client, anchor: Anchor) -> tuple[da.Array, da.Array]:
    """``W`` and ``H`` as data scattered to the workers, with no task history."""
    return _scatter(client, anchor.W, anchor.W_like), _scatter(client, anchor.H, anchor.H_like)


def _scatter(client, blocks: list[np.ndarray], like: da.Array) -> da.Array:
    for attempt in range(1, SCATTER_ATTEMPTS + 1):
        try:
            futures = client.scatter(blocks, hash=False)
            break
        except OSError:  # distributed's CommClosedError: the worker went away meanwhile
            if attempt == SCATTER_ATTEMPTS:
                raise
            time.sleep(SCATTER_RETRY_SECONDS * attempt)
    name = f"rooted-{uuid.uuid4().hex}"
    indices = list(np.ndindex(*like.numblocks))
    graph = {(name, *index): future for index, future in zip(indices, futures, strict=True)}
    return da.Array(graph, name, chunks=like.chunks, meta=like._meta)


def is_lost_data(exc: BaseException) -> bool:
    """Whether ``exc`` says that data of the loop disappeared with a worker (then the
    anchor can restore it), rather than that a computation failed."""
    from concurrent.futures import CancelledError

    from distributed.client import FutureCancelledError

    text = str(exc).lower()
    if isinstance(exc, (FutureCancelledError, CancelledError)):
        return True
    return "lost" in text and ("key" in text or "dependenc" in text or "data" in text)
