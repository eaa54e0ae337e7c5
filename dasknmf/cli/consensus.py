"""``dasknmf consensus OUTDIR --k K``: another rank's consensus from a finished sweep job.

Examples
--------
.. code-block:: console

    $ dasknmf run configs/sweep.yaml          # writes runs/sweep/, best k's consensus
    $ dasknmf consensus runs/sweep --k 6      # writes runs/sweep/consensus_k6/
"""

from __future__ import annotations

import argparse

from dasknmf.cli.arguments import non_negative_float, positive_int
from dasknmf.cli.exit_codes import EXIT_OK

__all__ = ["add_consensus_command"]


def add_consensus_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``consensus`` to the ``dasknmf`` parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="dasknmf")
    >>> add_consensus_command(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["consensus", "runs/sweep", "--k", "6"]).k
    6
    """
    parser = subparsers.add_parser(
        "consensus",
        help="write another rank's consensus W, H from a finished sweep job",
        description=(
            "Cluster the replicates of rank K saved by a finished sweep job (cNMF's "
            "consensus), refit W to the job's input with the consensus H fixed, and write "
            "OUTPUT_DIR/consensus_kK/ (H.zarr, W.zarr, summary.json) atomically, without "
            "fitting the sweep again or touching its other outputs."
        ),
    )
    parser.add_argument("directory", metavar="OUTPUT_DIR", help="the sweep job's output.directory")
    parser.add_argument("--k", type=positive_int, required=True, help="one of the ranks swept")
    parser.add_argument(
        "--density-threshold",
        type=non_negative_float,
        metavar="D",
        help="cNMF's outlier filter (default: the job's sweep.density_threshold)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing consensus_kK"
    )
    parser.set_defaults(handler=_cmd_consensus)


def _cmd_consensus(args: argparse.Namespace) -> int:
    from dasknmf.jobs.consensus import write_consensus

    result = write_consensus(
        args.directory,
        args.k,
        density_threshold=args.density_threshold,
        overwrite=args.overwrite,
    )
    print(f"consensus: k = {result.k}, error {result.error:.6e}")
    print(f"outputs: {result.directory} ({', '.join(result.outputs)})")
    return EXIT_OK
