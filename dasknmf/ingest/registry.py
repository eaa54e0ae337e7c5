"""The registry of importers: which formats dasknmf reads, and which one a path is.

Every caller that chooses among input formats asks here (:func:`importer_for`), and
the suffixes and the list of accepted formats shown in messages come from the
registered importers, so a format is added in one place: its :class:`Importer`
subclass, registered with :func:`register_importer` (the built-in ones register
themselves when :mod:`dasknmf.ingest` is imported).
"""

from __future__ import annotations

import os
from pathlib import Path

from dasknmf.errors import InvalidParameterError, UnsupportedFormatError

from .base import Importer

__all__ = [
    "accepted_formats",
    "file_suffixes",
    "get_importer",
    "importer_for",
    "importers",
    "register_importer",
]

_IMPORTERS: dict[str, Importer] = {}

#: The importer that ``corpus=True`` forces, whatever the path's name.
CORPUS = "corpus"


def register_importer(importer: Importer, *, replace: bool = False) -> Importer:
    """Make ``importer`` known to :func:`importer_for` under ``importer.name``.

    Parameters
    ----------
    importer : Importer
        An instance of an :class:`~dasknmf.ingest.base.Importer` subclass.
    replace : bool, default False
        Replace an importer registered under the same name.

    Returns
    -------
    Importer
        ``importer``, so that a module may register and keep it in one line.

    Raises
    ------
    InvalidParameterError
        Not an :class:`Importer`, or its name is taken and ``replace`` is false.

    Examples
    --------
    >>> register_importer(get_importer("npy"))
    Traceback (most recent call last):
    ...
    dasknmf.errors.InvalidParameterError: an importer named 'npy' is registered already
    """
    if not isinstance(importer, Importer):
        raise InvalidParameterError(
            f"register_importer takes an Importer instance, got {type(importer).__name__}"
        )
    if importer.name in _IMPORTERS and not replace:
        raise InvalidParameterError(f"an importer named {importer.name!r} is registered already")
    _IMPORTERS[importer.name] = importer
    return importer


def importers() -> list[Importer]:
    """The registered importers, in the order :func:`importer_for` asks them.

    Examples
    --------
    >>> [importer.name for importer in importers()]
    ['mtx', 'npz', 'npy', 'triplets', 'anndata', 'corpus']
    """
    return sorted(_IMPORTERS.values(), key=lambda importer: (importer.priority, importer.name))


def get_importer(name: str) -> Importer:
    """The importer registered as ``name``.

    Raises
    ------
    InvalidParameterError
        No importer has that name (the message lists the names there are).

    Examples
    --------
    >>> get_importer("mtx").suffixes
    ('.mtx', '.mtx.gz', '.mtx.bz2')
    """
    try:
        return _IMPORTERS[name]
    except KeyError:
        known = ", ".join(repr(importer.name) for importer in importers())
        raise InvalidParameterError(f"no importer named {name!r}; known: {known}") from None


def importer_for(path: str | os.PathLike[str], *, corpus: bool = False) -> Importer:
    """The importer of ``path``: the first, by priority, whose ``can_read`` says yes.

    ``corpus=True`` makes any file or directory a text corpus.

    Raises
    ------
    UnsupportedFormatError
        No importer claims ``path``; the message lists the accepted formats.

    Examples
    --------
    >>> importer_for("cells.h5ad").name, importer_for("ratings.tsv").name
    ('anndata', 'triplets')
    >>> importer_for("docs.txt", corpus=True).name
    'corpus'
    """
    p = Path(path)
    if corpus:
        return get_importer(CORPUS)
    for importer in importers():
        if importer.can_read(p):
            return importer
    raise UnsupportedFormatError(
        f"cannot import {str(p)!r}: unknown file extension; accepted formats: {accepted_formats()}"
    )


def accepted_formats() -> str:
    """The registered formats in a sentence, for error messages.

    Examples
    --------
    >>> accepted_formats().split("; ")[0]
    '.mtx, .mtx.gz, .mtx.bz2 (MatrixMarket)'
    """
    return "; ".join(importer.formats for importer in importers())


def file_suffixes() -> tuple[str, ...]:
    """Every file-name suffix a registered importer claims, in priority order.

    Examples
    --------
    >>> file_suffixes()[:4]
    ('.mtx', '.mtx.gz', '.mtx.bz2', '.npz')
    """
    return tuple(suffix for importer in importers() for suffix in importer.suffixes)
