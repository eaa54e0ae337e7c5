"""The work area of a job: a hidden sibling of its output directory.

``.NAME.dasknmf-work`` next to ``NAME`` holds what a job makes on the way and does not
publish: the store an input file is ingested into (``input.zarr``, with
``holdout.zarr`` for a hold-out split) and the checkpoints (``checkpoints/``). Being
next to the output, it is wherever the workers can read the output location.

It is removed when the job succeeds. After a failure it is kept when the job writes
checkpoints, so that ``dasknmf resume`` continues from them without ingesting the
input again; otherwise it is removed too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["WORK_SUFFIX", "WorkArea", "work_area"]

WORK_SUFFIX = ".dasknmf-work"
#: Names inside a work area.
INPUT_STORE, HOLDOUT_STORE, CHECKPOINTS = "input.zarr", "holdout.zarr", "checkpoints"
#: Where a job's stored W lives (``model.factors``) unless ``model.factor_store`` says.
FACTORS = "factors"


class WorkArea:
    """The work area of the output directory ``directory``, created on first use.

    Examples
    --------
    >>> WorkArea("/runs/k20").path
    PosixPath('/runs/.k20.dasknmf-work')
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        target = Path(os.path.abspath(directory))
        self.path = target.parent / f".{target.name}{WORK_SUFFIX}"

    def __truediv__(self, name: str) -> Path:
        """The path of ``name`` inside, creating the work area."""
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path / name

    @property
    def checkpoints(self) -> Path:
        """The checkpoints folder (not created)."""
        return self.path / CHECKPOINTS

    def exists(self) -> bool:
        """Whether the work area is on disk."""
        return self.path.is_dir()

    def remove(self) -> None:
        """Remove the work area and everything in it."""
        shutil.rmtree(self.path, ignore_errors=True)


@contextmanager
def work_area(directory: str | os.PathLike[str], *, keep_on_failure: bool) -> Iterator[WorkArea]:
    """Context manager: the work area of ``directory``, removed on normal exit and,
    unless ``keep_on_failure``, on an exception."""
    work = WorkArea(directory)
    try:
        yield work
    except BaseException:
        if not keep_on_failure:
            work.remove()
        raise
    work.remove()
