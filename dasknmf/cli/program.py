"""The ``dasknmf`` program: its parser, one subcommand per module, and its entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dasknmf import __version__
from dasknmf.cli.consensus import add_consensus_command
from dasknmf.cli.demo import add_demo_command
from dasknmf.cli.exit_codes import EXIT_INTERRUPTED, EXIT_USAGE, USER_ERRORS
from dasknmf.cli.info import add_info_command
from dasknmf.cli.ingest import add_ingest_command
from dasknmf.cli.jobs import add_job_commands

__all__ = ["PROG", "build_parser", "main"]

PROG = "dasknmf"


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
    add_demo_command(commands)
    add_ingest_command(commands)
    add_info_command(commands)
    add_job_commands(commands)  # run, resume, submit, validate: YAML job files
    add_consensus_command(commands)  # another rank's consensus of a sweep job
    return parser


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
        ``dasknmf: error: ...`` on standard error), 75 for a job stopped on request
        (SIGUSR1) to be resumed, 130 when interrupted.

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
