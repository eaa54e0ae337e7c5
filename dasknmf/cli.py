"""The ``dasknmf`` command line: ``demo``, ``ingest`` and ``info``.

The CLI only parses arguments, calls the library and prints; every algorithmic and
storage decision lives in the library, so the command line and the Python API behave
the same way.

Examples
--------
.. code-block:: console

    $ dasknmf demo --rows 20000 --cols 5000 --k 10
    $ dasknmf ingest counts.mtx counts.zarr --chunks 10000 5000
    $ dasknmf ingest cells.h5ad cells.zarr --layer counts
    $ dasknmf ingest abstracts.txt abstracts.zarr --corpus --stop-words english --min-df 5
    $ dasknmf info counts.zarr
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from dasknmf import NMF, PrintProgress, __version__
from dasknmf.datasets import term_document
from dasknmf.devices import DEVICES
from dasknmf.errors import DaskNMFError, InvalidParameterError, StoreExistsError
from dasknmf.jobs.cli import add_job_commands
from dasknmf.storage import (
    AnnDataIngest,
    CorpusIngest,
    MatrixInfo,
    TripletIngest,
    ingest,
    ingest_anndata,
    ingest_corpus,
    ingest_triplets,
    matrix_info,
    write_matrix,
)
from dasknmf.storage.importers import input_kind

__all__ = ["build_parser", "main"]

PROG = "dasknmf"

#: Exit codes: argparse already uses 2 for usage errors; user-input errors share it so
#: scripts need to tell apart only "bad input" from "interrupted" (128 + SIGINT).
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Errors that come from what the user asked for (a missing file, an existing store, a
#: bad parameter): reported in one line, without a traceback.
USER_ERRORS = (DaskNMFError, FileNotFoundError, PermissionError, ValueError)

N_TOP_TERMS = 5
N_SHOWN_COMPONENTS = 3


# -- argument types --------------------------------------------------------------------


def _bounded_int(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in "invalid int value" messages
    return parse


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < 1:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _document_frequency(text: str) -> int | float:
    # scikit-learn's convention: an integer is a number of documents, a number with a
    # decimal point or an exponent a proportion of them.
    if text.strip().lstrip("+-").isdigit():
        count = int(text)
        if count < 1:
            raise argparse.ArgumentTypeError(f"a number of documents must be >= 1, got {count}")
        return count
    try:
        proportion = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= proportion <= 1:  # also rejects NaN
        raise argparse.ArgumentTypeError(
            f"a proportion must be in [0, 1], got {text} (an integer counts documents)"
        )
    return proportion


_positive_int = _bounded_int(1)
_non_negative_int = _bounded_int(0)


# -- parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``dasknmf`` command.

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> build_parser().parse_args(["info", "v.zarr"]).path
    'v.zarr'
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Distributed, out-of-core non-negative matrix factorisation.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="show the full traceback of errors instead of a one-line message",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="factorise a built-in synthetic term-document matrix",
        description=(
            "Generate a synthetic documents x terms count matrix, write it to a zarr "
            "store, factorise it from the store and print progress and a summary."
        ),
    )
    demo.add_argument("--rows", type=_positive_int, default=20_000, help="documents (20000)")
    demo.add_argument("--cols", type=_positive_int, default=5_000, help="terms (5000)")
    demo.add_argument("--k", type=_positive_int, default=10, help="rank (10)")
    demo.add_argument(
        "--max-iter", type=_non_negative_int, default=100, help="most iterations (100)"
    )
    demo.add_argument(
        "--tol", type=_non_negative_float, default=1e-4, help="stopping tolerance (1e-4)"
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of data and init (0)")
    demo.add_argument(
        "--chunks",
        nargs=2,
        type=_positive_int,
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

    ing = commands.add_parser(
        "ingest",
        help="import a matrix, triplet, AnnData or text file into a store",
        description=(
            "Import a MatrixMarket (.mtx, .mtx.gz, .mtx.bz2), .npz or .npy file into a "
            "tiled zarr store and describe the result; or a triplet file (one row id, "
            "column id and value per line: .csv, .tsv, .txt, optionally .gz/.bz2, or "
            ".parquet), optionally holding out a random part of its entries in a "
            "second store; or the X matrix (or a layer) of an AnnData file (.h5ad, or "
            "an AnnData .zarr directory), keeping obs_names and var_names as ids; or a "
            "text corpus (a directory of .txt documents, or with --corpus a file of one "
            "document per line) as a documents x terms count matrix tokenised by "
            "scikit-learn's CountVectorizer, keeping the vocabulary as column ids. "
            "Everything but .npz and dense .mtx is streamed with bounded memory."
        ),
    )
    ing.add_argument(
        "src",
        metavar="SRC",
        help="file (or AnnData .zarr / corpus directory) to import",
    )
    ing.add_argument("dst", metavar="DST", help="store to create (directory or fsspec URL)")
    ing.add_argument(
        "--chunks",
        nargs=2,
        type=_positive_int,
        metavar=("ROWS", "COLS"),
        help="tile shape (default: chosen from the shape and density)",
    )
    ing.add_argument(
        "--format",
        choices=("sparse", "dense"),
        help="storage format (default: sparse for sparse files, dense otherwise)",
    )
    ing.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        help="stored dtype (default: keep float dtypes, float32 for integers)",
    )
    ing.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing dasknmf store at DST (and at the hold-out store)",
    )
    triplets = ing.add_argument_group("triplet files (.csv, .tsv, .txt, .parquet)")
    triplets.add_argument(
        "--holdout",
        type=_fraction,
        metavar="FRACTION",
        help="put each entry, with this probability, in a hold-out store instead of DST "
        "(decided by a hash of its ids and --seed; default 0: no hold-out store)",
    )
    triplets.add_argument(
        "--holdout-output",
        metavar="PATH",
        help="the hold-out store (default: DST's name ending in .holdout.zarr, beside it)",
    )
    triplets.add_argument(
        "--seed", type=_non_negative_int, help="seed of the hold-out split (default 0)"
    )
    triplets.add_argument(
        "--delimiter",
        metavar="CHAR",
        help=r"field delimiter, one character ('\t' for tab); default: ',' for .csv, tab "
        "for .tsv, runs of whitespace for .txt",
    )
    header = triplets.add_mutually_exclusive_group()
    header.add_argument(
        "--header",
        dest="header",
        action="store_const",
        const=True,
        help="the first line names the columns (default: detected)",
    )
    header.add_argument(
        "--no-header",
        dest="header",
        action="store_const",
        const=False,
        help="the first line is an entry",
    )
    triplets.add_argument(
        "--columns",
        nargs="+",
        metavar="COLUMN",
        help="ROW COL [VALUE]: the columns holding the row id, column id and value, by "
        "header name or 0-based index (default: the first three; without VALUE every "
        "value is 1)",
    )
    _add_anndata_and_corpus_flags(ing)
    ing.set_defaults(handler=_cmd_ingest)

    info = commands.add_parser(
        "info",
        help="describe a store",
        description="Describe a matrix store from its metadata (no tile is read).",
    )
    info.add_argument("path", metavar="PATH", help="store directory or fsspec URL")
    info.set_defaults(handler=_cmd_info)

    add_job_commands(commands)  # run, validate: YAML job files (dasknmf.jobs)
    return parser


def _add_anndata_and_corpus_flags(ing: argparse.ArgumentParser) -> None:
    anndata = ing.add_argument_group("AnnData files (.h5ad, AnnData .zarr directories)")
    anndata.add_argument("--layer", metavar="NAME", help="import layers/NAME instead of X")
    corpus = ing.add_argument_group(
        "text corpora (a directory of .txt files, one document each; or --corpus)",
        "Tokenised by scikit-learn's CountVectorizer; these are its options, with its defaults.",
    )
    corpus.add_argument(
        "--corpus",
        action="store_true",
        help="SRC is a text file of one document per line (a .txt file is otherwise read "
        "as triplets; .gz/.bz2 names are decompressed)",
    )
    lowercase = corpus.add_mutually_exclusive_group()
    lowercase.add_argument(
        "--lowercase",
        dest="lowercase",
        action="store_const",
        const=True,
        help="lowercase the text before tokenising (the default)",
    )
    lowercase.add_argument(
        "--no-lowercase",
        dest="lowercase",
        action="store_const",
        const=False,
        help="keep the case",
    )
    corpus.add_argument(
        "--stop-words", choices=("english",), help="drop scikit-learn's English stop words"
    )
    corpus.add_argument(
        "--ngram-range",
        nargs=2,
        type=_positive_int,
        metavar=("MIN", "MAX"),
        help="count n-grams of MIN to MAX tokens (default: 1 1)",
    )
    for flag, what, default in (
        ("--min-df", "fewer", "1"),
        ("--max-df", "more", "1.0: none dropped"),
    ):
        corpus.add_argument(
            flag,
            type=_document_frequency,
            metavar="DF",
            help=f"drop terms in {what} documents than DF: an integer counts documents, a "
            f"number with a decimal point is a proportion of them (default {default})",
        )
    corpus.add_argument(
        "--max-features",
        type=_positive_int,
        metavar="N",
        help="keep the N terms of largest total count (default: all)",
    )
    corpus.add_argument(
        "--token-pattern",
        metavar="REGEX",
        help="regular expression of a token (default: (?u)\\b\\w\\w+\\b, words of 2+ characters)",
    )
    corpus.add_argument(
        "--analyzer",
        choices=("word", "char", "char_wb"),
        help="n-grams of words (the default) or of characters",
    )
    corpus.add_argument(
        "--strip-accents",
        choices=("ascii", "unicode"),
        help="remove accents before tokenising (default: keep them)",
    )


# -- commands --------------------------------------------------------------------------


def _cmd_info(args: argparse.Namespace) -> int:
    print(matrix_info(args.path))
    return EXIT_OK


# Flags that apply to one kind of input only (input_kind's names), by that kind.
_KIND_NAMES = {
    "triplets": "triplet files (.csv, .tsv, .txt, .parquet)",
    "anndata": "AnnData files (.h5ad, AnnData .zarr)",
    "corpus": "text corpora (a directory of .txt files, or --corpus)",
}


def _kind_flags(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    return {
        "triplets": {
            "--holdout": args.holdout,
            "--holdout-output": args.holdout_output,
            "--seed": args.seed,
            "--delimiter": args.delimiter,
            "--header/--no-header": args.header,
            "--columns": args.columns,
        },
        "anndata": {"--layer": args.layer},
        "corpus": {
            "--lowercase/--no-lowercase": args.lowercase,
            "--stop-words": args.stop_words,
            "--ngram-range": args.ngram_range,
            "--min-df": args.min_df,
            "--max-df": args.max_df,
            "--max-features": args.max_features,
            "--token-pattern": args.token_pattern,
            "--analyzer": args.analyzer,
            "--strip-accents": args.strip_accents,
        },
    }


def _cmd_ingest(args: argparse.Namespace) -> int:
    kind = input_kind(args.src, corpus=args.corpus)
    for flags_kind, flags in _kind_flags(args).items():
        given = [flag for flag, value in flags.items() if value is not None]
        if given and kind != flags_kind:
            raise InvalidParameterError(
                f"{', '.join(given)}: only for {_KIND_NAMES[flags_kind]}; {args.src!r} is not one"
            )
    chunks = tuple(args.chunks) if args.chunks else None
    try:
        if kind == "triplets":
            print(_ingest_triplets(args, chunks))
        elif kind == "corpus":
            print(_ingest_corpus(args, chunks))
        elif kind == "anndata":
            print(_ingest_anndata(args, chunks))
        else:
            print(
                ingest(
                    args.src,
                    args.dst,
                    chunks=chunks,
                    format=args.format,
                    dtype=args.dtype,
                    overwrite=args.overwrite,
                )
            )
    except StoreExistsError as exc:
        # The library's message speaks of the Python keyword; name the CLI flag too.
        raise StoreExistsError(f"{exc} (on the command line: --overwrite)") from exc
    return EXIT_OK


def _ingest_anndata(args: argparse.Namespace, chunks: tuple[int, ...] | None) -> AnnDataIngest:
    return ingest_anndata(
        args.src,
        args.dst,
        layer=args.layer,
        chunks=chunks,
        format=args.format,
        dtype=args.dtype,
        overwrite=args.overwrite,
    )


def _ingest_corpus(args: argparse.Namespace, chunks: tuple[int, ...] | None) -> CorpusIngest:
    if args.format == "dense":
        raise InvalidParameterError("--format dense does not apply to text corpora (sparse)")
    options = {
        "lowercase": args.lowercase,
        "stop_words": args.stop_words,
        "ngram_range": tuple(args.ngram_range) if args.ngram_range else None,
        "min_df": args.min_df,
        "max_df": args.max_df,
        "max_features": args.max_features,
        "token_pattern": args.token_pattern,
        "analyzer": args.analyzer,
        "strip_accents": args.strip_accents,
    }
    given = {name: value for name, value in options.items() if value is not None}
    return ingest_corpus(
        args.src,
        args.dst,
        chunks=chunks,
        dtype=args.dtype,
        overwrite=args.overwrite,
        **given,  # type: ignore[arg-type]
    )


def _ingest_triplets(args: argparse.Namespace, chunks: tuple[int, ...] | None) -> TripletIngest:
    if args.format == "dense":
        raise InvalidParameterError("--format dense does not apply to triplet files (sparse)")
    if args.holdout_output and not args.holdout:
        raise InvalidParameterError("--holdout-output needs --holdout FRACTION (above 0)")
    # A tab typed as '\t' reaches us as a backslash and a t.
    delimiter = "\t" if args.delimiter == "\\t" else args.delimiter
    columns = [int(c) if c.isdigit() else c for c in args.columns] if args.columns else None
    return ingest_triplets(
        args.src,
        args.dst,
        holdout=args.holdout or 0.0,
        holdout_dst=args.holdout_output,
        seed=args.seed or 0,
        delimiter=delimiter,
        header="auto" if args.header is None else args.header,
        columns=columns,
        chunks=chunks,
        dtype=args.dtype,
        overwrite=args.overwrite,
    )


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

    model = NMF(
        n_components=args.k,
        max_iter=args.max_iter,
        tol=args.tol,
        random_state=args.seed,
        callbacks=[PrintProgress(out)],
        device=args.device,
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # The summary says whether the tolerance was reached; no warning needed.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(store)
    wall = time.perf_counter() - t0

    # ‖V‖_F from the in-memory matrix, in float64 so float32 data does not round it.
    norm_v = float(np.sqrt(np.sum(np.square(V.data, dtype=np.float64))))
    relative = model.reconstruction_err_ / norm_v if norm_v else 0.0
    stopped = "tolerance reached" if model.n_iter_ < args.max_iter else "max-iter reached"
    lines = [
        "",
        # Labelled so that only progress lines start with "iter" (easy to grep).
        f"stopped after        : {model.n_iter_} iterations ({stopped})",
        f"reconstruction error : {model.reconstruction_err_:.6e}  (‖V − WH‖_F)",
        # Not the "rel" column of the progress lines, which is relative to the error of
        # the initial factors; this is the share of V that the factorisation misses.
        f"relative error       : {relative:.4f}  (‖V − WH‖_F / ‖V‖_F)",
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


# -- entry point -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dasknmf`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when not given.

    Returns
    -------
    int
        0 on success, 2 for usage errors and errors in the user's input (printed as
        ``dasknmf: error: ...`` on standard error), 130 when interrupted.

    Examples
    --------
    >>> main(["info", "/no/such/store"])  # doctest: +SKIP
    dasknmf: error: no matrix store at '/no/such/store': the path does not exist
    2
    """
    parser = build_parser()
    # argparse exits (code 2) on usage errors, and 0 for --help / --version.
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as exc:
        if args.traceback:
            raise
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
