"""The contract of an importer: one input format, one class.

An :class:`Importer` says which paths are its format (:meth:`~Importer.can_read`) and
writes one into a store (:meth:`~Importer.ingest`); a format that can be held in
memory also reads it whole (:meth:`~Importer.read`). Dispatch asks the registered
importers (:mod:`dasknmf.ingest.registry`) instead of testing suffixes itself.
"""

from __future__ import annotations

import inspect
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from dasknmf.errors import InputFileNotFoundError, InvalidParameterError, UnsupportedFormatError
from dasknmf.storage import MatrixInfo

__all__ = ["Importer", "require_file"]

#: Parameters of every importer's :meth:`~Importer.ingest`; the others are its own.
_COMMON_OPTIONS = ("chunks", "format", "dtype", "overwrite", "storage_options", "keep_invalid")


class Importer(ABC):
    """One input format: which paths it claims and how it writes them into a store.

    Subclasses set the class attributes and implement :meth:`_ingest`; the default
    :meth:`can_read` claims files by :attr:`suffixes`. Register an instance with
    :func:`~dasknmf.ingest.registry.register_importer`.

    Examples
    --------
    >>> from dasknmf.ingest.registry import get_importer
    >>> importer = get_importer("triplets")
    >>> importer.can_read("ratings.csv.gz"), importer.can_read("v.mtx")
    (True, False)
    """

    name: ClassVar[str]
    """The kind of input, as :func:`~dasknmf.ingest.input_kind` names it (``"mtx"``)."""
    description: ClassVar[str]
    """The kind in a sentence: ``"a triplet file"``."""
    suffixes: ClassVar[tuple[str, ...]] = ()
    """Lower-case endings of the file names it claims (directories are claimed by
    :meth:`can_read` alone): what a job takes for a file to ingest."""
    formats: ClassVar[str]
    """Its part of the list of accepted formats in error messages."""
    priority: ClassVar[int]
    """Dispatch asks importers in increasing priority; the first that can read wins."""
    sparse_only: ClassVar[bool] = False
    """Whether it writes sparse stores only (``format`` must be None or "sparse")."""
    function: ClassVar[Callable[..., Any] | None] = None
    """The public function that ingests this format, whose keyword-only parameters are
    its options; None when it takes none beyond those of :meth:`ingest`."""

    def can_read(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` is this format, by its name (and, for a directory, what it
        holds); reads no file content."""
        p = Path(path)
        return p.name.lower().endswith(self.suffixes) and not p.is_dir()

    @property
    def option_names(self) -> tuple[str, ...]:
        """The keyword-only parameters of :attr:`function`: the options it takes."""
        if self.function is None:
            return ()
        parameters = inspect.signature(self.function).parameters.values()
        return tuple(p.name for p in parameters if p.kind is p.KEYWORD_ONLY)

    def ingest(
        self,
        path: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        *,
        chunks: tuple[int, int] | None = None,
        format: Literal["sparse", "dense"] | None = None,
        dtype: Any = None,
        overwrite: bool = False,
        storage_options: dict[str, Any] | None = None,
        keep_invalid: bool = False,
        **options: Any,
    ) -> MatrixInfo:
        """Write the file at ``path`` into a new store at ``dst``; return its summary.

        Parameters after ``dst`` are those of :func:`~dasknmf.storage.write_matrix`,
        and ``keep_invalid``: store negative, NaN and infinite values instead of
        refusing the file (:mod:`dasknmf.ingest.values`; a dense matrix's NaN, its
        missing entries, are always kept). ``options`` are those of :attr:`function`
        (see :attr:`option_names`).

        Raises
        ------
        InputFileNotFoundError
            ``path`` does not exist.
        UnsupportedFormatError, InvalidInputError
            Content that is not this format, or not a matrix, naming the file; an
            invalid value (without ``keep_invalid``), naming the file, where the
            first one is and how many there are. Nothing is written.
        InvalidParameterError
            ``format="dense"`` for a sparse-only format; options for a format that
            takes none.
        StoreExistsError, NotAStoreError
            ``dst`` exists; it is left as it was.
        """
        p = Path(path)
        common = dict(chunks=chunks, dtype=dtype, overwrite=overwrite, keep_invalid=keep_invalid)
        if not self.sparse_only:
            common["format"] = format
        elif format not in (None, "sparse"):
            raise InvalidParameterError(
                f"The 'format' parameter must be None or 'sparse' for {self.name} input; "
                f"got {format!r}."
            )
        own = [name for name in self.option_names if name not in _COMMON_OPTIONS]
        unknown = sorted(set(options) - set(own))
        if unknown and not own:
            raise InvalidParameterError(
                f"{str(p)!r} is a {self.name} file, which takes no ingest options; got "
                f"{', '.join(unknown)}."
            )
        if unknown:
            raise InvalidParameterError(
                f"{str(p)!r} is a {self.name} file, whose ingest options are "
                f"{', '.join(own)}; got {', '.join(unknown)}."
            )
        return self._ingest(p, dst, storage_options=storage_options, **common, **options)

    @abstractmethod
    def _ingest(
        self,
        path: Path,
        dst: str | os.PathLike[str],
        *,
        storage_options: dict[str, Any] | None,
        **options: Any,
    ) -> MatrixInfo:
        """:meth:`ingest` once its arguments are checked against the format: ``options``
        are ``chunks``, ``dtype``, ``overwrite``, ``keep_invalid``, ``format`` (unless
        :attr:`sparse_only`) and the format's own."""

    def shape(self, path: str | os.PathLike[str]) -> tuple[int, int] | None:
        """The matrix's ``(rows, cols)`` from the file's header or metadata alone (a
        MatrixMarket size line, a ``.npy`` header, an AnnData X's attributes), or
        ``None`` when only reading the data tells (triplet ids, corpora ...).
        Validation uses it to check what the shape decides (the rank) before any work.

        Raises
        ------
        InputFileNotFoundError, UnsupportedFormatError
            As :meth:`ingest` would, for a missing file or an unreadable header.
        """
        return None

    def read(self, path: str | os.PathLike[str]) -> np.ndarray | sp.csr_matrix:
        """Read the file whole into memory; formats that are only streamed refuse.

        Raises
        ------
        UnsupportedFormatError
            This format is read into a store only.
        """
        via = f" (or {self.function.__name__})" if self.function is not None else ""
        raise UnsupportedFormatError(
            f"{str(Path(path))!r} is {self.description}; it is read into a store with "
            f"ingest{via}, not into memory"
        )


def require_file(path: Path) -> None:
    """Raise :class:`InputFileNotFoundError` unless ``path`` is an existing file.

    Examples
    --------
    >>> try:
    ...     require_file(Path("/no/such/file.mtx"))
    ... except FileNotFoundError as exc:
    ...     print(type(exc).__name__)
    InputFileNotFoundError
    """
    if not path.is_file():
        raise InputFileNotFoundError(f"input file {str(path)!r} does not exist (or is not a file)")
