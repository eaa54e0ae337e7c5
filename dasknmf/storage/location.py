"""Where a store lives: a local directory or an fsspec URL, how to open it, and what a
local directory holds (a dasknmf store, another zarr group, or neither)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import zarr
import zarr.errors

from dasknmf.errors import InvalidParameterError, NotAStoreError, StoreNotFoundError

from .layout import MARKER_KEY

__all__ = ["StoreLocation", "is_store_directory", "is_zarr_directory"]


@dataclass(frozen=True)
class StoreLocation:
    """A store path plus the options needed to reach it.

    Local paths (no ``"://"``) are kept as absolute paths so that worker processes
    started elsewhere resolve them the same way; anything with ``"://"`` (including
    ``file://``) is an fsspec URL handed to zarr with ``storage_options``.

    Examples
    --------
    >>> StoreLocation.from_user("memory://x").is_local
    False
    """

    path: str
    storage_options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_user(
        cls, path: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
    ) -> StoreLocation:
        """Normalise a user-given path and options."""
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidParameterError(
                f"path must be a str or os.PathLike, got {type(path).__name__}"
            )
        text = os.fspath(path)
        if not isinstance(text, str) or not text:
            raise InvalidParameterError(f"path must be a non-empty string, got {path!r}")
        if storage_options is not None and not isinstance(storage_options, dict):
            raise InvalidParameterError(
                f"storage_options must be a dict or None, got {type(storage_options).__name__}"
            )
        options = dict(storage_options or {})
        if "://" not in text:
            if options:
                raise InvalidParameterError(
                    f"storage_options={options!r} only apply to fsspec URLs "
                    f"(e.g. 's3://bucket/key'), not to the local path {text!r}"
                )
            text = str(Path(text).expanduser().absolute())
        return cls(text, options)

    @property
    def is_local(self) -> bool:
        """Whether the store is a plain local directory (atomic renames possible)."""
        return "://" not in self.path

    def filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        """The fsspec filesystem and the path of the store root on it."""
        return fsspec.core.url_to_fs(self.path, **self.storage_options)

    def exists(self) -> bool:
        """Whether anything (file, directory, object prefix) exists at the path."""
        if self.is_local:
            return os.path.lexists(self.path)
        fs, root = self.filesystem()
        return fs.exists(root)

    def is_empty_dir(self) -> bool:
        """Whether the path is an existing, empty local directory."""
        return self.is_local and os.path.isdir(self.path) and not os.listdir(self.path)

    def open_group(self, mode: str = "r") -> zarr.Group:
        """Open the zarr group at the path."""
        if self.is_local:
            return zarr.open_group(self.path, mode=mode, zarr_format=3)
        return zarr.open_group(
            self.path, mode=mode, zarr_format=3, storage_options=self.storage_options
        )

    def open_existing(self) -> zarr.Group:
        """Open the group of an existing store read-only.

        Raises
        ------
        StoreNotFoundError
            Nothing exists at the path.
        NotAStoreError
            Something exists but is not a zarr v3 group.
        """
        if not self.exists():
            raise StoreNotFoundError(f"no matrix store at {self.path!r}: the path does not exist")
        try:
            group = self.open_group("r")
        except (FileNotFoundError, zarr.errors.ContainsArrayError, KeyError, ValueError) as exc:
            raise NotAStoreError(
                f"{self.path!r} exists but is not a dasknmf matrix store "
                f"(no zarr v3 group there: {exc})"
            ) from exc
        return group

    def holds_marker(self) -> bool:
        """Whether the path holds a group carrying a dasknmf marker (complete or not)."""
        try:
            rec = self.open_existing().attrs.get(MARKER_KEY)
        except (StoreNotFoundError, NotAStoreError):
            return False
        return isinstance(rec, dict) and "format" in rec

    def remove(self) -> None:
        """Delete the store recursively (fsspec URLs only; local paths use renames)."""
        fs, root = self.filesystem()
        if fs.exists(root):
            fs.rm(root, recursive=True)

    def bytes_on_disk(self) -> int:
        """Sum of the sizes of every object stored under the path."""
        if self.is_local:
            total = 0
            for dirpath, _dirs, files in os.walk(self.path):
                for name in files:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
            return total
        fs, root = self.filesystem()
        return int(sum(info.get("size") or 0 for info in fs.find(root, detail=True).values()))


def is_store_directory(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a local directory holding a dasknmf store (a zarr v3 group
    whose attributes carry the dasknmf record); reads one small JSON file.

    Examples
    --------
    >>> import tempfile
    >>> is_store_directory(tempfile.mkdtemp())
    False
    """
    meta = Path(path) / "zarr.json"
    try:
        attributes = json.loads(meta.read_text(encoding="utf-8")).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(attributes, dict) and MARKER_KEY in attributes


def is_zarr_directory(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a local directory holding a zarr group or array (v2 or v3),
    a dasknmf store or any other.

    Examples
    --------
    >>> import tempfile
    >>> is_zarr_directory(tempfile.mkdtemp())
    False
    """
    p = Path(path)
    return p.is_dir() and any((p / name).is_file() for name in ("zarr.json", ".zgroup"))
