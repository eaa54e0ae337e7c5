"""Exception classes.

Every error dasknmf raises on purpose derives from :class:`DaskNMFError` and from the
builtin exception a caller would expect (``ValueError``, ``FileNotFoundError`` ...), so
``except ValueError`` keeps working while ``except DaskNMFError`` catches only ours.
"""

from __future__ import annotations

import importlib
import inspect
import types
import warnings


class DaskNMFError(Exception):
    """Base class of every error raised by dasknmf."""


class InvalidInputError(DaskNMFError, ValueError):
    """The matrix handed to dasknmf cannot be factorised (negative, NaN, empty ...)."""


class InvalidParameterError(DaskNMFError, ValueError):
    """A parameter has a value outside what is allowed."""


class StoreNotFoundError(DaskNMFError, FileNotFoundError):
    """No matrix store exists at the given path."""


class NotAStoreError(DaskNMFError, ValueError):
    """The path exists but does not hold a dasknmf matrix store."""


class CorruptStoreError(DaskNMFError, ValueError):
    """A dasknmf store is incomplete or its contents contradict its metadata."""


class StoreExistsError(DaskNMFError, FileExistsError):
    """Writing would overwrite an existing store and ``overwrite`` was not set."""


class UnsupportedFormatError(DaskNMFError, ValueError):
    """An input file has a format that dasknmf cannot import."""


class InputFileNotFoundError(DaskNMFError, FileNotFoundError):
    """An input file to import (MatrixMarket, .npz, .npy ...) does not exist."""


class DeviceUnavailableError(DaskNMFError, RuntimeError):
    """The requested device cannot be used here (CuPy missing, no GPU seen)."""


class MissingDependencyError(DaskNMFError, ImportError):
    """An optional dependency that this input needs is not installed (the message names
    the ``pip install`` to run)."""


def import_optional(module: str, *, extra: str, needed_for: str) -> types.ModuleType:
    """``module``, imported, or :class:`MissingDependencyError` naming ``dasknmf[extra]``.

    Examples
    --------
    >>> try:
    ...     import_optional("nope", extra="anndata", needed_for="reading .h5ad files")
    ... except MissingDependencyError as exc:
    ...     print(exc)
    reading .h5ad files needs nope, which is not installed: pip install 'dasknmf[anndata]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{needed_for} needs {module}, which is not installed: pip install 'dasknmf[{extra}]'"
        ) from exc


def warn_user(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` pointing at the first caller outside dasknmf and scikit-learn.

    The estimator's methods are wrapped (scikit-learn's output wrapper, the BLAS
    limit), so a fixed ``stacklevel`` would name a wrapper instead of the user's line.
    """
    level, frame = 1, inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__", "").startswith(
        ("dasknmf.", "sklearn.")
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
