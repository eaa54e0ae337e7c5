"""MatrixMarket files into stores: coordinate files streamed with bounded memory
(bucketed by row block into spill files, so a file may be larger than memory), dense
(``array``) files read whole by ``scipy.io.mmread``."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Literal

import dask
import numpy as np
import scipy.io
import scipy.sparse as sp

from dasknmf.errors import InvalidInputError
from dasknmf.params import check_float_dtype, check_option
from dasknmf.storage import (
    MatrixInfo,
    StoreLocation,
    check_target,
    clip_chunks,
    default_chunks,
    stored_dtype,
    write_matrix,
)

from ..base import require_file
from ..in_memory import InMemoryImporter
from ..registry import register_importer
from ..spill import RowBlockSpill
from .files import check_streamable, iter_mtx_entries, read_mtx_header

__all__ = ["MtxImporter", "ingest_mtx"]

logger = logging.getLogger(__name__)


# How each MatrixMarket field is held before write_matrix's dtype rule applies.
_FIELD_DTYPES = {"real": np.float64, "integer": np.int64, "pattern": np.bool_}


class MtxImporter(InMemoryImporter):
    """MatrixMarket files: coordinate files streamed with bounded memory, dense
    (``array``) files read into memory.

    For coordinate files the default tile shape uses the header's entry count, and
    ``real`` values are stored as float64, ``integer`` and ``pattern`` ones as float32.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> scipy.io.mmwrite(os.path.join(d, "v.mtx"), sp.eye(3, format="coo"))
    >>> MtxImporter().ingest(os.path.join(d, "v.mtx"), os.path.join(d, "v.zarr")).nnz
    3
    """

    name = "mtx"
    description = "a MatrixMarket file"
    suffixes = (".mtx", ".mtx.gz", ".mtx.bz2")
    formats = ".mtx, .mtx.gz, .mtx.bz2 (MatrixMarket)"
    priority = 10

    def shape(self, path: str | os.PathLike[str]) -> tuple[int, int]:
        p = Path(path)
        require_file(p)
        rows, cols = read_mtx_header(p).shape
        return int(rows), int(cols)

    def load(self, path: Path) -> np.ndarray | sp.csr_matrix:
        matrix = scipy.io.mmread(path)
        return sp.csr_matrix(matrix) if sp.issparse(matrix) else np.asarray(matrix)

    def write(
        self,
        path: Path,
        dst: str | os.PathLike[str],
        *,
        keep_invalid: bool = False,
        **options: Any,
    ) -> None:
        """Stream a coordinate file into a store; read a dense one into memory first
        (where NaN marks a missing entry, as in any dense input). Either refuses a
        negative or infinite value, and a coordinate file a NaN, unless
        ``keep_invalid``."""
        # Only the header is read here: coordinate files are streamed, dense ones are not.
        require_file(path)
        if read_mtx_header(path).is_coordinate:
            _stream_coordinates(path, dst, check_values=not keep_invalid, **options)
        else:
            super().write(path, dst, keep_invalid=keep_invalid, **options)


def _stream_coordinates(
    src: Path,
    dst: str | os.PathLike[str],
    *,
    chunks: tuple[int, int] | None,
    format: Literal["sparse", "dense"] | None,
    dtype: Any,
    overwrite: bool,
    storage_options: dict[str, Any] | None,
    check_values: bool,
) -> None:
    """Write a MatrixMarket coordinate file with bounded memory.

    The body is streamed into per-row-block spill files, then written by
    :func:`~dasknmf.storage.write_matrix` from a lazy dask array over those files, so
    validation, tile-row order and the atomic write are the writer's own.
    """
    header = read_mtx_header(src)
    check_streamable(header, src)
    if 0 in header.shape:
        raise InvalidInputError(f"{str(src)!r} holds an empty matrix (shape {header.shape})")
    kind = check_option("format", format, (None, "sparse", "dense"))
    out_dtype = check_float_dtype("dtype", dtype) or stored_dtype(
        np.dtype(_FIELD_DTYPES[header.field])
    )
    if chunks is None:
        # A symmetric file lists one triangle: up to twice its entries are stored.
        nnz = header.nnz * (2 if header.symmetry == "symmetric" else 1)
        tile_shape = default_chunks(header.shape, nnz=nnz, itemsize=out_dtype.itemsize)
    else:
        tile_shape = clip_chunks(chunks, header.shape)
    # Refuse an existing destination before the long pass over the file;
    # write_matrix checks again when it writes.
    check_target(StoreLocation.from_user(dst, storage_options), overwrite=overwrite)
    with RowBlockSpill(header.shape, tile_shape[0]) as spill:
        start = time.perf_counter()
        for rows, cols, vals in iter_mtx_entries(src, check_values=check_values):
            spill.append(rows, cols, vals)
        logger.info(
            "bucketed %d entries of %s into %d row blocks in %.1f s",
            spill.n_entries,
            src,
            spill.n_blocks,
            time.perf_counter() - start,
        )
        # The spill files are local to this process: an active distributed client
        # must not receive the tasks that read them.
        with dask.config.set(scheduler="synchronous"):
            write_matrix(
                spill.to_dask(tile_shape, out_dtype),
                dst,
                chunks=tile_shape,
                format=kind,
                dtype=out_dtype,
                overwrite=overwrite,
                storage_options=storage_options,
            )


def ingest_mtx(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    chunks: tuple[int, int] | None = None,
    format: Literal["sparse", "dense"] | None = None,
    dtype: Any = None,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
    keep_invalid: bool = False,
) -> MatrixInfo:
    r"""Import a MatrixMarket file into a store; return the store's :class:`MatrixInfo`.

    Parameters are those of :func:`~dasknmf.ingest.ingest`, and:

    keep_invalid : bool, default False
        Store negative, NaN and infinite values instead of refusing the file (NMF
        refuses them at fit time: clean the store first). A dense (``array``) file
        is read as any dense input, NaN marking a missing entry: its NaN are kept.

    Raises
    ------
    InvalidInputError
        Without ``keep_invalid``: a negative, NaN or infinite value in a coordinate
        file, naming its line, its entry and how many its block of lines holds; a
        negative or infinite value in a dense file, naming its row and column and
        how many the file holds. Nothing is written.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "v.mtx"), "w") as f:
    ...     _ = f.write("%%MatrixMarket matrix coordinate real general\n2 2 2\n1 1 1.5\n2 2 -1\n")
    >>> try:
    ...     ingest_mtx(os.path.join(d, "v.mtx"), os.path.join(d, "v.zarr"))
    ... except InvalidInputError as exc:
    ...     print(str(exc).split(": the")[0].endswith("line 4, entry 2"))
    True
    >>> ingest_mtx(os.path.join(d, "v.mtx"), os.path.join(d, "v.zarr"), keep_invalid=True).nnz
    2
    """
    return MtxImporter().ingest(
        src,
        dst,
        chunks=chunks,
        format=format,
        dtype=dtype,
        overwrite=overwrite,
        storage_options=storage_options,
        keep_invalid=keep_invalid,
    )


MtxImporter.function = staticmethod(ingest_mtx)
register_importer(MtxImporter())
