"""Crash-safe creation and replacement of stores.

Local directories are written under a hidden temporary sibling and renamed into
place, so the path shows the old store or the new one, never a mixture. fsspec URLs
(object stores have no atomic rename) are written in place; the ``complete`` flag is
written last, so a reader rejects a store whose write was cut short.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dasknmf.errors import NotAStoreError, StoreExistsError

from .location import StoreLocation

__all__ = ["atomic_store", "check_target"]

logger = logging.getLogger(__name__)

TMP_TAG = ".dasknmf-tmp-"
OLD_TAG = ".dasknmf-old-"


def check_target(loc: StoreLocation, *, overwrite: bool) -> bool:
    """Check that a store may be written at ``loc``; return whether one is replaced.

    An existing dasknmf store (complete or not) is replaced only with ``overwrite``;
    an empty local directory is simply taken over; anything else is refused even with
    ``overwrite``, so an unrelated directory of the user's is never deleted.

    Examples
    --------
    >>> check_target(StoreLocation.from_user("memory://nothing-here"), overwrite=False)
    False
    """
    if not loc.exists() or loc.is_empty_dir():
        return False
    if loc.holds_marker():
        if not overwrite:
            raise StoreExistsError(
                f"a dasknmf store already exists at {loc.path!r}; "
                "pass overwrite=True to replace it"
            )
        return True
    if not overwrite:
        raise StoreExistsError(f"{loc.path!r} already exists; choose a path that does not exist")
    raise NotAStoreError(
        f"refusing to overwrite {loc.path!r}: it exists but is not a dasknmf matrix store; "
        "remove it yourself if you really mean to replace it"
    )


@contextmanager
def atomic_store(loc: StoreLocation, *, overwrite: bool) -> Iterator[StoreLocation]:
    """Context manager yielding the location to write a new store into.

    On normal exit the new store is at ``loc``; on any exception (including
    ``KeyboardInterrupt``) the previous content of ``loc`` is untouched for local paths
    and the temporary directory is removed.

    Examples
    --------
    >>> import zarr
    >>> loc = StoreLocation.from_user("memory://atomic-doc")
    >>> with atomic_store(loc, overwrite=False) as target:
    ...     _ = target.open_group("w")
    """
    replacing = check_target(loc, overwrite=overwrite)
    if not loc.is_local:
        yield from _write_in_place(loc, replacing)
        return
    dst = Path(loc.path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}{TMP_TAG}{uuid.uuid4().hex}"
    try:
        yield StoreLocation(str(tmp))
        _move_into_place(tmp, dst, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_in_place(loc: StoreLocation, replacing: bool) -> Iterator[StoreLocation]:
    if replacing:
        logger.info("removing the existing store at %s before rewriting it", loc.path)
        loc.remove()
    try:
        yield loc
    except BaseException:
        # Best effort: without it an incomplete store stays, which readers reject.
        try:
            loc.remove()
        except Exception:
            logger.warning("could not remove the partial store at %s", loc.path, exc_info=True)
        raise


def _move_into_place(tmp: Path, dst: Path, *, overwrite: bool) -> None:
    # Re-check: the target may have appeared while we were writing.
    replacing = check_target(StoreLocation(str(dst)), overwrite=overwrite)
    if not replacing:
        if dst.is_dir():
            dst.rmdir()  # empty directory: nothing to lose
        os.rename(tmp, dst)
        return
    if _exchange(tmp, dst):
        # tmp now holds the old store.
        shutil.rmtree(tmp, ignore_errors=True)
        return
    # No atomic exchange on this OS / filesystem: two renames. Between them the path
    # is briefly absent, but the old store survives under a hidden sibling name.
    old = dst.parent / f".{dst.name}{OLD_TAG}{uuid.uuid4().hex}"
    os.rename(dst, old)
    try:
        os.rename(tmp, dst)
    except BaseException:
        os.rename(old, dst)
        raise
    shutil.rmtree(old, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux ``renameat2(RENAME_EXCHANGE)``.

    Returns False where unsupported (other OS, old kernel or libc, file systems such
    as some network mounts), so the caller falls back to two renames.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))
