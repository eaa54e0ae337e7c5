"""The ``dasknmf`` command line, the top layer: nothing else in dasknmf imports it.

The CLI only parses arguments, calls the library and prints; every algorithmic and
storage decision lives in the library, so the command line and the Python API behave
the same way.

- :mod:`~dasknmf.cli.program`: the parser and :func:`main`, which turns errors in the
  user's input into one line and an exit code (:mod:`~dasknmf.cli.exit_codes`);
- one module per subcommand, each adding itself to the parser: :mod:`~dasknmf.cli.demo`,
  :mod:`~dasknmf.cli.ingest`, :mod:`~dasknmf.cli.info`, and :mod:`~dasknmf.cli.jobs`
  (``run``, ``resume``, ``submit``, ``validate``: YAML job files);
- :mod:`~dasknmf.cli.arguments`: argparse types that check numbers as they are parsed.

Examples
--------
.. code-block:: console

    $ dasknmf demo --rows 20000 --cols 5000 --k 10
    $ dasknmf ingest counts.mtx counts.zarr --chunks 10000 5000
    $ dasknmf info counts.zarr
    $ dasknmf run configs/example.yaml
"""

from __future__ import annotations

from dasknmf.cli.exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_STOPPED, EXIT_USAGE
from dasknmf.cli.program import build_parser, main

__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_STOPPED", "EXIT_USAGE", "build_parser", "main"]
