"""``dasknmf demo``: factorise a synthetic term-document matrix, from a store.

Examples
--------
.. code-block:: console

    $ dasknmf demo --rows 20000 --cols 5000 --k 10
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from dasknmf.cli.arguments import non_negative_float, non_negative_int, positive_int
from dasknmf.cli.exit_codes import EXIT_OK
from dasknmf.devices import DEVICES
from dasknmf.errors import StoreExistsError

if TYPE_CHECKING:
    from dasknmf.storage import MatrixInfo

__all__ = ["add_demo_command"]

N_TOP_TERMS = 5
N_SHOWN_COMPONENTS = 3


def add_demo_command(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand to the ``dasknmf`` parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="dasknmf")
    >>> add_demo_command(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["demo", "--k", "4"]).k
    4
    """
    demo = subparsers.add_parser(
        "demo",
        help="factorise a built-in synthetic term-document matrix",
        description=(
            "Generate a synthetic documents x terms count matrix, write it to a zarr "
            "store, factorise it from the store and print progress and a summary."
        ),
    )
    demo.add_argument("--rows", type=positive_int, default=20_000, help="documents (20000)")
    demo.add_argument("--cols", type=positive_int, default=5_000, help="terms (5000)")
    demo.add_argument("--k", type=positive_int, default=10, help="rank (10)")
    demo.add_argument(
        "--max-iter", type=non_negative_int, default=100, help="most iterations (100)"
    )
    demo.add_argument(
        "--tol", type=non_negative_float, default=1e-4, help="stopping tolerance (1e-4)"
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of data and init (0)")
    demo.add_argument(
        "--chunks",
        nargs=2,
        type=positive_int,
        metavar=("ROWS", "COLS"),
        help="tile shape of the store (default: four row blocks of full width, so the "
        "fit runs tile by tile on dask even though the demo matrix is small)",
    )
    demo.add_argument(
        "--store",
        metavar="PATH",
        help="write the store here (must not exist) instead of a temporary directory",
    )
    demo.add_argument(
        "--keep", action="store_true", help="keep the temporary store and print where it is"
    )
    demo.add_argument(
        "--device",
        choices=DEVICES,
        default="cpu",
        help="where the iterations run (cpu); cuda needs CuPy and a GPU: pip install "
        "'dasknmf[gpu]'",
    )
    demo.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    # A temporary directory is created only when no --store is given; the user's own
    # --store path is never deleted.
    tmpdir = None if args.store else Path(tempfile.mkdtemp(prefix="dasknmf-demo-"))
    store = args.store if args.store else str(tmpdir / "term_document.zarr")
    try:
        _run_demo(args, store)
    finally:
        if tmpdir is not None:
            if args.keep:
                print(f"store kept at {store}")
            else:
                shutil.rmtree(tmpdir, ignore_errors=True)
    return EXIT_OK


def _run_demo(args: argparse.Namespace, store: str) -> None:
    # Imported here, not at the top: `dasknmf --help` need not load dask and sklearn.
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    from dasknmf import NMF, PrintProgress
    from dasknmf.callbacks import StopRecorder
    from dasknmf.datasets import term_document
    from dasknmf.storage import matrix_info, write_matrix

    out = sys.stdout
    t0 = time.perf_counter()
    V = term_document(args.rows, args.cols, seed=args.seed)
    try:
        chunks = tuple(args.chunks) if args.chunks else (-(-args.rows // 4), args.cols)
        write_matrix(V, store, chunks=chunks)
    except StoreExistsError as exc:
        # The library's advice (overwrite=True) has no demo flag: the demo never
        # replaces anything, so say that instead.
        raise StoreExistsError(
            f"--store {store!r} already exists; the demo never overwrites, choose a new path"
        ) from exc
    info = matrix_info(store)
    print(_demo_header(info, time.perf_counter() - t0), file=out)
    print(file=out)

    record = StopRecorder()
    model = NMF(
        n_components=args.k,
        max_iter=args.max_iter,
        tol=args.tol,
        random_state=args.seed,
        callbacks=[PrintProgress(out), record],
        device=args.device,
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # The summary says whether the tolerance was reached; no warning needed.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(store)
    wall = time.perf_counter() - t0

    lines = [
        "",
        # Only progress lines start with "iter" (easy to grep).
        record.reason(model).describe("set --tol 0"),
        f"initial error        : {_number(record.error_at_init, '.6e')}  (‖V − W₀H₀‖_F)",
        f"reconstruction error : {model.reconstruction_err_:.6e}  (‖V − WH‖_F)",
        # The "relative" column of the progress lines: the share of V the factors miss.
        f"relative error       : {_number(model.relative_error_, '.4f')}  (‖V − WH‖_F / ‖V‖_F)",
        f"wall time            : {wall:.2f} s (initialisation included)",
        f"V persisted          : {'yes (in memory)' if model.persisted_ else 'no (out of core)'}"
        + (" on the GPU" if args.device == "cuda" else ""),
        "",
        f"top {N_TOP_TERMS} terms (column indices) of the first components:",
    ]
    H = model.components_
    for c in range(min(N_SHOWN_COMPONENTS, H.shape[0])):
        top = np.argsort(H[c])[::-1][:N_TOP_TERMS]
        lines.append(f"  component {c}: " + " ".join(str(int(t)) for t in top))
    print("\n".join(lines), file=out)


def _number(value: float | None, spec: str) -> str:
    """``value`` formatted, or ``-`` when there is none (``--max-iter 0``: no iteration
    told the initial error)."""
    return "-" if value is None else format(value, spec)


def _demo_header(info: MatrixInfo, seconds: float) -> str:
    m, n = info.shape
    return "\n".join(
        [
            f"term-document matrix : {m:,} x {n:,} {info.dtype}, {info.nnz:,} non-zeros "
            f"(density {info.density:.3%})",
            f"store                : {info.path} ({info.format}, "
            f"{info.n_tiles[0]} x {info.n_tiles[1]} tiles of "
            f"{info.tile_shape[0]:,} x {info.tile_shape[1]:,}; written in {seconds:.1f} s)",
        ]
    )
