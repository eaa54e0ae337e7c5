"""Importers of matrix files that are read whole into memory (or memory-mapped) and
written by :func:`~dasknmf.storage.write_matrix`."""

from __future__ import annotations

import logging
import os
import zipfile
from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from dasknmf.errors import UnsupportedFormatError
from dasknmf.storage import MatrixInfo, matrix_info, write_matrix

from .base import Importer, require_file
from .registry import accepted_formats
from .values import check_matrix

__all__ = ["InMemoryImporter"]

logger = logging.getLogger(__name__)

# Errors that mean "this file's content is not what its name says" (OSError covers
# bad gzip / bz2 streams; access errors are re-raised as they are).
_DECODE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    zipfile.BadZipFile,
    OSError,
)


class InMemoryImporter(Importer):
    """A format read by one library call (:meth:`load`); :meth:`read` turns what
    cannot be decoded into an :class:`UnsupportedFormatError` naming the file."""

    @abstractmethod
    def load(self, path: Path) -> np.ndarray | sp.csr_matrix:
        """The matrix in the existing file ``path`` (decoding errors propagate)."""

    def read(self, path: str | os.PathLike[str]) -> np.ndarray | sp.csr_matrix:
        """Read the file whole into memory.

        Raises
        ------
        InputFileNotFoundError
            ``path`` does not exist.
        UnsupportedFormatError
            Content that cannot be read as this format.
        """
        p = Path(path)
        require_file(p)
        try:
            return self.load(p)
        except (UnsupportedFormatError, PermissionError, IsADirectoryError):
            raise
        except _DECODE_ERRORS as exc:
            raise UnsupportedFormatError(
                f"cannot read {str(p)!r} as {self.name} ({type(exc).__name__}: {exc}); "
                f"accepted formats: {accepted_formats()}"
            ) from exc

    def _ingest(
        self,
        path: Path,
        dst: str | os.PathLike[str],
        *,
        storage_options: dict[str, Any] | None,
        **options: Any,
    ) -> MatrixInfo:
        self.write(path, dst, storage_options=storage_options, **options)
        logger.info("ingested %s into %s", path, dst)
        return matrix_info(dst, storage_options=storage_options)

    def write(
        self,
        path: Path,
        dst: str | os.PathLike[str],
        *,
        keep_invalid: bool = False,
        **options: Any,
    ) -> None:
        """Write the file into a store: :meth:`read`, refuse a negative, infinite or
        (sparse) NaN value unless ``keep_invalid`` (:func:`~dasknmf.ingest.values.check_matrix`,
        one pass over the matrix before anything is written), then
        :func:`~dasknmf.storage.write_matrix` with ``options``."""
        matrix = self.read(path)
        if not keep_invalid:
            check_matrix(matrix, repr(str(path)))
        write_matrix(matrix, dst, **options)
