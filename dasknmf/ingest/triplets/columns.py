"""The shape of a triplet file: its format, which fields hold the row id, column id
and value, and whether its first line is a header."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dasknmf.errors import InvalidInputError, InvalidParameterError

__all__ = [
    "COMPRESSIONS",
    "PARQUET_SUFFIX",
    "TEXT_SUFFIXES",
    "check_columns",
    "detect_header",
    "resolve_columns",
    "triplet_suffix",
]

TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
COMPRESSIONS = {"": None, ".gz": "gzip", ".bz2": "bz2"}
PARQUET_SUFFIX = ".parquet"


def triplet_suffix(path: str | os.PathLike[str]) -> str | None:
    """The triplet format of a file name (``".csv"`` ...), or None if it is not one.

    Examples
    --------
    >>> triplet_suffix("ratings.tsv.gz"), triplet_suffix("m.mtx")
    ('.tsv', None)
    """
    name = Path(path).name.lower()
    if name.endswith(PARQUET_SUFFIX):
        return PARQUET_SUFFIX
    for suffix in TEXT_SUFFIXES:
        if any(name.endswith(suffix + c) for c in COMPRESSIONS):
            return suffix
    return None


def check_columns(columns: Any) -> list[str | int] | None:
    """The ``columns`` parameter checked: None, or 2-3 distinct names or indices.

    Examples
    --------
    >>> check_columns(("user", "item", 2))
    ['user', 'item', 2]
    """
    if columns is None:
        return None
    ok = (
        isinstance(columns, (list, tuple))
        and len(columns) in (2, 3)
        and all(
            isinstance(c, str) or (isinstance(c, int) and not isinstance(c, bool) and c >= 0)
            for c in columns
        )
        and len(set(columns)) == len(columns)
    )
    if not ok:
        raise InvalidParameterError(
            "The 'columns' parameter must be None or 2 or 3 distinct column names or "
            f"0-based indices (row, column[, value]); got {columns!r}."
        )
    return list(columns)


def resolve_columns(
    wanted: list[str | int] | None, names: list[str] | None, n_fields: int, path: Path
) -> list[int]:
    """Indices of the row, column (and value) fields; ``names``: the header's.

    Examples
    --------
    >>> resolve_columns(["item", "user"], ["user", "item", "rating"], 3, Path("r.csv"))
    [1, 0]
    >>> resolve_columns(None, None, 4, Path("r.csv"))
    [0, 1, 2]
    """
    if n_fields < 2:
        raise InvalidInputError(
            f"{str(path)!r}: the first line has {n_fields} field(s); a triplet file needs "
            "row id, column id and (optionally) value columns"
        )
    if wanted is None:
        return [0, 1, 2][: min(n_fields, 3)]
    out = []
    for c in wanted:
        if isinstance(c, str):
            if names is None or c not in names:
                raise InvalidParameterError(
                    f"column {c!r} is not in {str(path)!r}; its columns are {names!r}"
                )
            out.append(names.index(c))
        elif c >= n_fields:
            raise InvalidParameterError(
                f"column index {c} is out of range: {str(path)!r} has {n_fields} columns"
            )
        else:
            out.append(c)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def detect_header(first: list[str], second: list[str] | None, indices: list[int]) -> bool:
    """Whether the first line is a header: its value field is not a number.

    Without a value column, a first line with a non-integer id above a second line
    of integer ids; string ids without values cannot be told from a header, so
    such a file is assumed to have none (pass ``header=True``).

    Examples
    --------
    >>> detect_header(["user", "item", "rating"], ["u1", "i1", "4"], [0, 1, 2])
    True
    >>> detect_header(["u1", "i1", "4"], None, [0, 1, 2])
    False
    """
    if len(indices) == 3:
        return indices[2] < len(first) and not _is_number(first[indices[2]])
    if second is None or max(indices) >= min(len(first), len(second)):
        return False
    return not all(first[i].strip().isdigit() for i in indices) and all(
        second[i].strip().isdigit() for i in indices
    )
