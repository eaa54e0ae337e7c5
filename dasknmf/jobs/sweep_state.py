"""A rank sweep's :class:`~dasknmf.sweep.loop.SweepState` as checkpoint files: its
factors as dense stores, its numbers as JSON.

:mod:`dasknmf.jobs.checkpoints` writes and commits a checkpoint whatever its kind;
this module says what a sweep's consists of:

- ``W.zarr``, ``H.zarr``: the stacked factors of the replicates still running
  (``m × Σk`` and ``Σk × n`` over them, in the column order of ``active``);
- ``finished_W.zarr``, ``finished_H.zarr``: the factors of the replicates that have
  stopped, side by side in replicate order;
- in ``state.json``: the iteration, every replicate's rank, the running ones, per
  replicate its error at the start, at its last convergence check (where its ``tol``
  rule continues) and the last one, its error curve, the results of the finished ones
  (iterations, errors, converged) and the sweep's base seed (the held-out rows and
  columns and the replicates' seeds are drawn from it again).

A store with no column (no replicate running, none finished yet) is not written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import dask.array as da
import numpy as np

from dasknmf.sweep.loop import ReplicateResult, SweepState

__all__ = ["SWEEP_KIND", "sweep_arrays", "sweep_numbers", "sweep_state"]

#: The ``kind`` of a sweep's checkpoint in ``state.json`` (a single fit's has none).
SWEEP_KIND = "sweep"
FINISHED_W, FINISHED_H = "finished_W.zarr", "finished_H.zarr"


def _columns(ranks: tuple[int, ...], replicates: list[int]) -> list[tuple[int, int]]:
    """The column bounds of ``replicates`` stacked side by side in that order."""
    bounds, start = [], 0
    for r in replicates:
        bounds.append((start, start + ranks[r]))
        start += ranks[r]
    return bounds


def _finished(state: SweepState) -> list[int]:
    return [r for r, result in enumerate(state.finished) if result is not None]


def sweep_arrays(state: SweepState, W_store: str, H_store: str) -> dict[str, Any]:
    """The stores of a checkpoint of ``state``, by name (those with no column left out)."""
    arrays: dict[str, Any] = {}
    if state.active:
        arrays[W_store], arrays[H_store] = state.W, state.H
    done = _finished(state)
    if done:
        arrays[FINISHED_W] = _side_by_side([state.finished[r].W for r in done], 1)
        arrays[FINISHED_H] = _side_by_side([state.finished[r].H for r in done], 0)
    return arrays


def _side_by_side(blocks: list[Any], axis: int) -> Any:
    """NumPy factors joined; any dask one (a ``W`` kept in a factor store) makes the
    join lazy, so that the checkpoint streams it from the stores to its file."""
    if not any(isinstance(b, da.Array) for b in blocks):
        return np.concatenate([np.asarray(b) for b in blocks], axis)
    return da.concatenate([da.asarray(b) for b in blocks], axis)


def sweep_numbers(state: SweepState) -> dict[str, Any]:
    """The JSON part of a checkpoint of ``state``."""
    W = state.W if state.active else state.finished[_finished(state)[0]].W
    H = state.H if state.active else state.finished[_finished(state)[0]].H
    return {
        "kind": SWEEP_KIND,
        "iteration": int(state.iteration),
        "shape": [int(W.shape[0]), int(H.shape[1])],
        "ranks": [int(k) for k in state.ranks],
        "active": [int(r) for r in state.active],
        "error_at_init": [float(e) for e in state.error_at_init],
        "check_error": [None if e is None else float(e) for e in state.check_error],
        "error": [float(e) for e in state.error],
        "errors": [[[int(i), float(e)] for i, e in curve] for curve in state.errors],
        "finished": [
            None
            if result is None
            else {
                "n_iter": int(result.n_iter),
                "error": float(result.error),
                "error_at_init": float(result.error_at_init),
                "converged": bool(result.converged),
            }
            for result in state.finished
        ],
        "elapsed": float(state.elapsed),
        "seed": None if state.seed is None else int(state.seed),
    }


def sweep_state(raw: Mapping[str, Any], open_store: Callable[[str], Any], W_store: str,
                H_store: str) -> SweepState:  # fmt: skip
    """The :class:`SweepState` of a checkpoint's numbers ``raw``, its stores opened by
    ``open_store(name)``: the factors lazily, but the finished replicates' ``H`` in
    memory.

    Raises
    ------
    KeyError, TypeError, ValueError
        ``raw`` is malformed or does not match the stores (the caller names the file).
    """
    ranks = tuple(int(k) for k in raw["ranks"])
    active = tuple(int(r) for r in raw["active"])
    m, n = (int(d) for d in raw["shape"])
    curves = tuple(tuple((int(i), float(e)) for i, e in curve) for curve in raw["errors"])
    records = list(raw["finished"])
    if not (len(records) == len(curves) == len(ranks) == len(raw["error"])):
        raise ValueError("per-replicate lists of different lengths")
    done = [r for r, record in enumerate(records) if record is not None]
    if set(done) & set(active) or len(done) + len(active) != len(ranks):
        raise ValueError("every replicate must be either running or finished")
    width = sum(ranks[r] for r in active)
    if active:
        W, H = open_store(W_store), open_store(H_store)
    else:
        W, H = da.zeros((m, 0), chunks=(m, 1)), da.zeros((0, n), chunks=(1, n))
    if W.shape != (m, width) or H.shape != (width, n):
        raise ValueError(f"running factors of shapes {W.shape}, {H.shape}; expected {m} x {width}")
    finished: list[ReplicateResult | None] = [None] * len(ranks)
    if done:
        # H is read now. W stays lazy: the resumed sweep reads it into memory, or
        # into the finished replicates' factor stores, before its first checkpoint
        # deletes these stores (dasknmf.estimator.replicates).
        FW, FH = open_store(FINISHED_W), np.asarray(open_store(FINISHED_H).compute())
        for r, (s, e) in zip(done, _columns(ranks, done), strict=True):
            record = records[r]
            finished[r] = ReplicateResult(
                FW[:, s:e], FH[s:e], int(record["n_iter"]), float(record["error"]),
                float(record["error_at_init"]), curves[r], bool(record["converged"]),
            )  # fmt: skip
    return SweepState(
        iteration=int(raw["iteration"]),
        ranks=ranks,
        active=active,
        W=W,
        H=H,
        error_at_init=tuple(float(e) for e in raw["error_at_init"]),
        check_error=tuple(None if e is None else float(e) for e in raw["check_error"]),
        error=tuple(float(e) for e in raw["error"]),
        errors=curves,
        finished=tuple(finished),
        elapsed=float(raw["elapsed"]),
        seed=None if raw["seed"] is None else int(raw["seed"]),
    )
