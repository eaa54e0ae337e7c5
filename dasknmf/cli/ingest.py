"""``dasknmf ingest``: import a matrix, triplet, AnnData or text file into a store.

Examples
--------
.. code-block:: console

    $ dasknmf ingest counts.mtx counts.zarr --chunks 10000 5000
    $ dasknmf ingest cells.h5ad cells.zarr --layer counts
    $ dasknmf ingest abstracts.txt abstracts.zarr --corpus --stop-words english --min-df 5
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from dasknmf.cli.arguments import document_frequency, fraction, non_negative_int, positive_int
from dasknmf.cli.exit_codes import EXIT_OK
from dasknmf.errors import InvalidParameterError, StoreExistsError

if TYPE_CHECKING:
    from dasknmf.ingest import AnnDataIngest, CorpusIngest, TripletIngest
    from dasknmf.storage import MatrixInfo

# The importers are imported by the functions that run them, not at the top: `dasknmf
# --help` need not load them.

__all__ = ["add_ingest_command"]


def add_ingest_command(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ingest`` subcommand to the ``dasknmf`` parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="dasknmf")
    >>> add_ingest_command(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["ingest", "a.mtx", "a.zarr", "--chunks", "10", "5"]).chunks
    [10, 5]
    """
    ing = subparsers.add_parser(
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
            "Everything but .npz and dense .mtx is streamed with bounded memory. A "
            "negative, NaN or infinite value is refused (exit 2, nothing written), naming "
            "the file and where the first one is, unless --keep-invalid; the NaN of a "
            "dense matrix mark missing entries and are kept."
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
        type=positive_int,
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
    ing.add_argument(
        "--keep-invalid",
        action="store_true",
        help="store negative, NaN and infinite values instead of refusing the file "
        "(fit refuses them: clean the store first)",
    )
    _add_triplet_flags(ing)
    _add_anndata_flags(ing)
    _add_corpus_flags(ing)
    ing.set_defaults(handler=_cmd_ingest)


def _add_triplet_flags(ing: argparse.ArgumentParser) -> None:
    triplets = ing.add_argument_group("triplet files (.csv, .tsv, .txt, .parquet)")
    triplets.add_argument(
        "--holdout",
        type=fraction,
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
        "--seed", type=non_negative_int, help="seed of the hold-out split (default 0)"
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


def _add_anndata_flags(ing: argparse.ArgumentParser) -> None:
    anndata = ing.add_argument_group("AnnData files (.h5ad, AnnData .zarr directories)")
    anndata.add_argument("--layer", metavar="NAME", help="import layers/NAME instead of X")


def _add_corpus_flags(ing: argparse.ArgumentParser) -> None:
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
        type=positive_int,
        metavar=("MIN", "MAX"),
        help="count n-grams of MIN to MAX tokens (default: 1 1)",
    )
    for flag, what, default in (
        ("--min-df", "fewer", "1"),
        ("--max-df", "more", "1.0: none dropped"),
    ):
        corpus.add_argument(
            flag,
            type=document_frequency,
            metavar="DF",
            help=f"drop terms in {what} documents than DF: an integer counts documents, a "
            f"number with a decimal point is a proportion of them (default {default})",
        )
    corpus.add_argument(
        "--max-features",
        type=positive_int,
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
    from dasknmf.ingest import input_kind

    kind = input_kind(args.src, corpus=args.corpus)
    for flags_kind, flags in _kind_flags(args).items():
        given = [flag for flag, value in flags.items() if value is not None]
        if given and kind != flags_kind:
            raise InvalidParameterError(
                f"{', '.join(given)}: only for {_KIND_NAMES[flags_kind]}; {args.src!r} is not one"
            )
    chunks = tuple(args.chunks) if args.chunks else None
    run = _INGESTERS.get(kind, _ingest_matrix)
    try:
        print(run(args, chunks))
    except StoreExistsError as exc:
        # The library's message speaks of the Python keyword; name the CLI flag too.
        raise StoreExistsError(f"{exc} (on the command line: --overwrite)") from exc
    return EXIT_OK


def _ingest_matrix(args: argparse.Namespace, chunks: tuple[int, ...] | None) -> MatrixInfo:
    from dasknmf.ingest import ingest

    return ingest(
        args.src,
        args.dst,
        chunks=chunks,
        format=args.format,
        dtype=args.dtype,
        overwrite=args.overwrite,
        keep_invalid=args.keep_invalid,
    )


def _ingest_anndata(args: argparse.Namespace, chunks: tuple[int, ...] | None) -> AnnDataIngest:
    from dasknmf.ingest import ingest_anndata

    return ingest_anndata(
        args.src,
        args.dst,
        layer=args.layer,
        chunks=chunks,
        format=args.format,
        dtype=args.dtype,
        overwrite=args.overwrite,
        keep_invalid=args.keep_invalid,
    )


def _ingest_corpus(args: argparse.Namespace, chunks: tuple[int, ...] | None) -> CorpusIngest:
    from dasknmf.ingest import ingest_corpus

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
        keep_invalid=args.keep_invalid,
        **given,  # type: ignore[arg-type]
    )


def _ingest_triplets(args: argparse.Namespace, chunks: tuple[int, ...] | None) -> TripletIngest:
    from dasknmf.ingest import ingest_triplets

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
        keep_invalid=args.keep_invalid,
    )


#: How the flags of each kind of input (the importer registry's names) become a call
#: of its ingest function; any other kind is a matrix file for :func:`ingest`.
_INGESTERS = {
    "triplets": _ingest_triplets,
    "corpus": _ingest_corpus,
    "anndata": _ingest_anndata,
}
