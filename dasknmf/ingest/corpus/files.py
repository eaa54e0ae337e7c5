"""Text corpora on disk, streamed one document at a time.

Two layouts:

- a **file** with one document per line (``.txt``; ``.gz`` / ``.bz2`` names are
  decompressed): lines end at ``\\n``, a ``\\r`` before it is dropped, an empty line
  is an empty document, so document ``i`` is line ``i + 1``;
- a **directory** of ``.txt`` files, one document per file, in order of file name
  (hidden files, other names and subdirectories are ignored); the file names are the
  documents' ids.

Text is UTF-8 (a byte-order mark is ignored). Memory: the largest document.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from dasknmf.errors import InputFileNotFoundError, InvalidInputError, UnsupportedFormatError
from dasknmf.storage import is_zarr_directory

__all__ = ["Corpus"]

logger = logging.getLogger(__name__)

_BOM = b"\xef\xbb\xbf"
_DOCUMENT_SUFFIX = ".txt"


class Corpus:
    """A corpus file or directory, checked and ready to be streamed any number of times.

    Parameters
    ----------
    path : str or os.PathLike
        A file of one document per line, or a directory of ``.txt`` files.

    Attributes
    ----------
    files : list of Path or None
        A directory's documents, in order; None for a file.

    Raises
    ------
    InputFileNotFoundError
        ``path`` does not exist.
    InvalidInputError
        A directory without ``.txt`` files.
    UnsupportedFormatError
        A directory that is a zarr store.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "b.txt").write_text("second")
    >>> _ = (d / "a.txt").write_text("first")
    >>> corpus = Corpus(d)
    >>> list(corpus.documents()), corpus.row_ids
    (['first', 'second'], ['a.txt', 'b.txt'])
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputFileNotFoundError(f"corpus {str(self.path)!r} does not exist")
        self.files: list[Path] | None = None
        if self.path.is_dir():
            if is_zarr_directory(self.path):
                raise UnsupportedFormatError(
                    f"{str(self.path)!r} is a zarr store, not a directory of .txt documents"
                )
            self.files = sorted(
                (
                    p
                    for p in self.path.iterdir()
                    if p.name.lower().endswith(_DOCUMENT_SUFFIX)
                    and not p.name.startswith(".")
                    and p.is_file()
                ),
                key=lambda p: p.name,
            )
            if not self.files:
                raise InvalidInputError(
                    f"{str(self.path)!r} holds no documents: no {_DOCUMENT_SUFFIX} files"
                )

    @property
    def row_ids(self) -> list[str] | None:
        """The file names of a directory's documents; None for a file (line ``i + 1``
        is document ``i``)."""
        return None if self.files is None else [p.name for p in self.files]

    def documents(self) -> Iterator[str]:
        """Stream the documents.

        Raises
        ------
        UnsupportedFormatError
            Text that is not UTF-8 (naming the file and the line or byte), or a
            damaged ``.gz`` / ``.bz2`` stream.
        """
        if self.files is None:
            yield from self._lines()
            return
        for p in self.files:
            yield _read_document(p)

    def _open(self) -> IO[bytes]:
        name = self.path.name.lower()
        if name.endswith(".gz"):
            return gzip.open(self.path, "rb")
        if name.endswith(".bz2"):
            return bz2.open(self.path, "rb")
        return open(self.path, "rb")

    def _lines(self) -> Iterator[str]:
        where = str(self.path)
        with self._open() as fh:
            number = 0
            try:
                for number, raw in enumerate(fh, 1):
                    line = raw[:-1] if raw.endswith(b"\n") else raw
                    line = line[:-1] if line.endswith(b"\r") else line
                    if number == 1 and line.startswith(_BOM):
                        line = line[len(_BOM) :]
                    try:
                        text = line.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise UnsupportedFormatError(
                            f"cannot read {where!r} as UTF-8 text: line {number}: {exc.reason} "
                            f"(byte {exc.start + 1} of the line)"
                        ) from None
                    yield text
            except (OSError, EOFError) as exc:
                raise UnsupportedFormatError(
                    f"cannot read {where!r} after line {number}: {exc}"
                ) from exc


def _read_document(p: Path) -> str:
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputFileNotFoundError(
            f"{str(p)!r} disappeared while the corpus was being read"
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnsupportedFormatError(
            f"cannot read {str(p)!r} as UTF-8 text: {exc.reason} at byte {exc.start + 1}"
        ) from None
    # Universal newlines, as Path.read_text reads it.
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
