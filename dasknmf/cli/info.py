"""``dasknmf info``: describe a store from its metadata.

Examples
--------
.. code-block:: console

    $ dasknmf info counts.zarr
"""

from __future__ import annotations

import argparse

from dasknmf.cli.exit_codes import EXIT_OK

__all__ = ["add_info_command"]


def add_info_command(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``info`` subcommand to the ``dasknmf`` parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="dasknmf")
    >>> add_info_command(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["info", "v.zarr"]).path
    'v.zarr'
    """
    info = subparsers.add_parser(
        "info",
        help="describe a store",
        description="Describe a matrix store from its metadata (no tile is read).",
    )
    info.add_argument("path", metavar="PATH", help="store directory or fsspec URL")
    info.set_defaults(handler=_cmd_info)


def _cmd_info(args: argparse.Namespace) -> int:
    from dasknmf.storage import matrix_info  # here: `dasknmf --help` need not load zarr

    print(matrix_info(args.path))
    return EXIT_OK
