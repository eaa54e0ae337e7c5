"""The input of a job: a store opened as it is, a matrix file ingested into the work
area, or a built-in example made in memory.

A resumed job reopens the same input: the store, the store its file was ingested into
(kept in the work area, so the file is not ingested again), or the example (made
again, deterministically). :attr:`JobInput.fingerprint` is what a checkpoint records
to tell that it is still the same matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dasknmf.errors import InvalidParameterError
from dasknmf.ingest import ingest, ingest_triplets
from dasknmf.ingest.split import split_matrix
from dasknmf.jobs import report
from dasknmf.jobs.config import InputConfig
from dasknmf.jobs.workarea import HOLDOUT_STORE, INPUT_STORE, WorkArea
from dasknmf.storage import matrix_info, open_matrix, open_store_meta

__all__ = ["PLANTED_RANK", "JobInput", "open_input"]

#: The rank of ``example:planted-counts`` (:func:`dasknmf.datasets.planted_counts`).
PLANTED_RANK = 6


@dataclass(frozen=True)
class JobInput:
    """An opened input.

    Attributes
    ----------
    X : str or matrix
        What :meth:`dasknmf.NMF.fit` receives: a store path, or the in-memory example.
    chunks : (int, int) or None
        NMF's ``chunks`` (the example only).
    description : dict
        ``summary.json``'s ``input``: kind, path, shape, nnz, dtype, tiles.
    column_ids : list or None
        The column ids of the store (for the top features).
    holdout : str, matrix or None
        Held-out entries: a store path or an in-memory matrix.
    uuid : str or None
        The uuid of the store that is fitted (``None`` for the example).
    """

    X: Any
    chunks: tuple[int, int] | None
    description: dict[str, Any]
    column_ids: list[Any] | None
    holdout: Any = None
    uuid: str | None = None

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What identifies the matrix fitted: kind, shape, nnz and store uuid."""
        d = self.description
        return {"kind": d["kind"], "shape": list(d["shape"]), "nnz": d["nnz"], "uuid": self.uuid}


def open_input(config: InputConfig, work: WorkArea, *, reuse: bool = False) -> JobInput:
    """Open the input of a job.

    Parameters
    ----------
    config : InputConfig
        The ``input`` section.
    work : WorkArea
        Where a matrix file is ingested.
    reuse : bool
        Open the store a file was ingested into by an earlier run of the job, instead
        of ingesting it (``dasknmf resume``).
    """
    kind = config.kind
    description: dict[str, Any] = {"kind": kind, "path": config.path}
    if kind == "example":
        return _example_input(config, description)
    holdout = None
    options = None
    if kind == "file":
        store = str(work / INPUT_STORE)
        if isinstance(config.holdout, float):
            holdout = str(work / HOLDOUT_STORE)
        if reuse:
            info = matrix_info(store)
            if holdout is not None:
                description["holdout_entries"] = matrix_info(holdout).nnz
        elif holdout is not None:
            split = ingest_triplets(
                config.path,
                store,
                holdout=config.holdout,
                holdout_dst=holdout,
                seed=config.seed,
                chunks=config.chunks,
                overwrite=True,
                **config.options,
            )
            info = split.train
            description["holdout_entries"] = split.n_holdout
        else:
            info = ingest(
                config.path,
                store,
                chunks=config.chunks,
                overwrite=True,
                corpus=config.corpus,
                **config.options,
            )
        X = store
    else:
        store, options = config.path, config.storage_options or None
        info = matrix_info(store, storage_options=options)
        X = open_matrix(store, storage_options=options)
    if isinstance(config.holdout, str):
        holdout = config.holdout
        held = matrix_info(holdout, storage_options=options)
        if held.shape != info.shape:
            raise InvalidParameterError(
                f"input.holdout {holdout!r} has shape {held.shape}, the input "
                f"{config.path!r} {info.shape}: held-out entries must index the same matrix."
            )
        description["holdout_entries"] = held.nnz
    if holdout is not None:
        description["holdout"] = holdout
    description.update(
        shape=list(info.shape),
        nnz=int(info.nnz),
        dtype=str(info.dtype),
        format=info.format,
        tile_shape=list(info.tile_shape),
    )
    column_ids = report.column_ids(store, options)
    return JobInput(X, None, description, column_ids, holdout, _store_uuid(store, options))


def _store_uuid(store: str, options: dict[str, Any] | None) -> str:
    return open_store_meta(store, options)[2].uuid


def _example_input(config: InputConfig, description: dict[str, Any]) -> JobInput:
    """The built-in examples, made in memory: a term-document count matrix, counts of
    a planted rank, or a ratings matrix (2% of entries rated) split as
    ``input.holdout`` says."""
    from dasknmf.datasets import planted_counts, ratings, term_document

    holdout = None
    if config.path.endswith("ratings"):
        V, _, _ = ratings(config.rows, config.cols, int(0.02 * config.rows * config.cols), seed=0)
        if config.holdout is not None:
            V, holdout = split_matrix(V, config.holdout, config.seed)
            description["holdout_entries"] = int(holdout.nnz)
    elif config.path.endswith("planted-counts"):
        # Counts of a known rank, PLANTED_RANK: the example for choosing k.
        V, _, _ = planted_counts(config.rows, config.cols, PLANTED_RANK, seed=0)
    else:
        V = term_document(config.rows, config.cols, seed=0)
    description.update(shape=list(V.shape), nnz=int(V.nnz), dtype=str(V.dtype))
    return JobInput(V, config.chunks, description, None, holdout)
