"""What the paths of a job file name, and how they are resolved.

An ``input.path`` names a built-in example (``example:...``), a matrix file to ingest
(:data:`MATRIX_FILE_SUFFIXES`, or any existing regular file) or a dasknmf store;
local paths are made absolute against the current directory, fsspec URLs are kept as
given. The section checks (:mod:`dasknmf.jobs.sections`) and the job schema
(:mod:`dasknmf.jobs.config`, ``InputConfig.kind``) ask these helpers; they are kept
apart from the rules and the checks because they answer questions about paths and
the file system, not about the keys of a job file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from dasknmf.ingest.registry import file_suffixes
from dasknmf.storage import is_store_directory

__all__ = [
    "EXAMPLES",
    "EXAMPLE_PREFIX",
    "EXAMPLE_SHAPE",
    "MATRIX_FILE_SUFFIXES",
    "absolute",
    "exists_locally",
    "input_kind",
    "is_url",
]

#: ``input.path`` values naming a built-in matrix instead of a file or store.
EXAMPLE_PREFIX = "example:"
EXAMPLES = ("term-document", "ratings", "planted-counts")
#: Default ``(rows, cols)`` of an example input.
EXAMPLE_SHAPE = (5_000, 2_000)

#: Extensions of the files :func:`dasknmf.ingest.ingest` imports (matrices,
#: row,column,value triplets, AnnData), ingested into a store before the fit: those
#: its registered importers claim. An existing regular file with another name is handed
#: to ``ingest`` too (it names the formats it accepts); anything else is a dasknmf store.
MATRIX_FILE_SUFFIXES = file_suffixes()


def input_kind(path: str) -> Literal["example", "file", "store"]:
    """What an ``input.path`` names: a built-in example, a matrix file or a store.

    A file is a path with one of :data:`MATRIX_FILE_SUFFIXES` or an existing regular
    local file; anything else is a store.

    Examples
    --------
    >>> input_kind("example:term-document"), input_kind("v.mtx.gz"), input_kind("s3://b/v")
    ('example', 'file', 'store')
    """
    if path.startswith(EXAMPLE_PREFIX):
        return "example"
    if path.lower().endswith(MATRIX_FILE_SUFFIXES):
        return "file"
    if not is_url(path):
        local = Path(absolute(path))
        # A directory that is not a dasknmf store (an AnnData .zarr, a corpus of .txt
        # files) is something to ingest.
        if local.is_file() or (local.is_dir() and not is_store_directory(local)):
            return "file"
    return "store"


def is_url(path: str) -> bool:
    """Whether ``path`` is an fsspec URL rather than a local path."""
    return "://" in path


def absolute(path: str) -> str:
    """Local paths made absolute against the current directory; URLs unchanged."""
    return path if is_url(path) else str(Path(path).expanduser().absolute())


def exists_locally(path: str) -> bool:
    """Whether ``path`` exists on this machine; a URL is taken to exist: URLs are not
    checked here (they may need credentials only workers have)."""
    return is_url(path) or os.path.exists(absolute(path))
