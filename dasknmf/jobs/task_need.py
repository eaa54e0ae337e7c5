"""What one task of a job's fit needs in memory, from the job's configuration and its
input's description (no data read), and what sets that task's tiles: the job's side
of the workers' memory check, which :mod:`dasknmf.jobs.worker_memory` makes."""

from __future__ import annotations

import numpy as np

from dasknmf.estimator.placement import PERSIST_FRACTION
from dasknmf.inputs import auto_chunks, working_dtype
from dasknmf.jobs.cluster import SchedulerInfo
from dasknmf.jobs.config import JobConfig
from dasknmf.jobs.inputs import JobInput
from dasknmf.jobs.worker_memory import TaskNeed, task_need
from dasknmf.resources import available_memory

__all__ = ["CHUNKS_KEY", "job_task_need"]

#: What sets the tiles of each kind of input (for the message of workers too small).
CHUNKS_KEY = {
    "example": "input.chunks",
    "file": "input.chunks, the tile shape of the ingested store",
    "store": "a store keeps its tiles: ingest it again with smaller --chunks",
}


def job_task_need(config: JobConfig, source: JobInput, scheduler: SchedulerInfo) -> TaskNeed:
    """What one task of the fit needs, from the input's description: a store's tiles,
    or the example's (``input.chunks``, else those :class:`dasknmf.NMF` chooses)."""
    d = source.description
    shape = (int(d["shape"][0]), int(d["shape"][1]))
    sparse = d.get("format", "sparse") == "sparse"
    nnz = int(d["nnz"]) if sparse else None
    k, persist = config.stacked_components, config.model.persist
    if "tile_shape" in d:
        tiles = (int(d["tile_shape"][0]), int(d["tile_shape"][1]))
    else:
        itemsize = working_dtype(np.dtype(d["dtype"])).itemsize
        nbytes = (nnz or 0) * (itemsize + 4) if sparse else shape[0] * shape[1] * itemsize
        gather = (k, itemsize) if sparse else None
        tiles = source.chunks or auto_chunks(
            shape, nbytes=nbytes, threads=scheduler.threads, gather=gather
        )
    need = task_need(shape, tiles, nnz=nnz, dtype=d["dtype"], n_components=k)
    whole = task_need(shape, tiles, nnz=nnz, dtype=d["dtype"], n_components=k, persisted=True)
    # The estimator's own rule for persist='auto' (estimator.placement.keeps_in_memory).
    kept = persist is True or (
        persist == "auto" and whole.persisted < PERSIST_FRACTION * available_memory()
    )
    return whole if kept else need
