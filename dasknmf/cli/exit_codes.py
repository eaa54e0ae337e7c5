"""The exit codes of the ``dasknmf`` command, and the errors reported as the user's.

argparse already exits with 2 for usage errors; errors in the user's input share it,
so scripts need to tell apart only "bad input", "stopped on request, to be resumed"
and "interrupted" (128 + SIGINT).
"""

from __future__ import annotations

from dasknmf.errors import DaskNMFError

__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_STOPPED", "EXIT_USAGE", "USER_ERRORS"]

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: A job stopped on request (SIGUSR1: a last checkpoint, then a stop), to be resumed:
#: ``EX_TEMPFAIL`` of sysexits.h ("try again later"), distinct from errors (1, 2) and
#: from signals (128 + n).
EXIT_STOPPED = 75

#: Errors that come from what the user asked for (a missing file, an existing store, a
#: bad parameter): reported in one line, without a traceback, with :data:`EXIT_USAGE`.
USER_ERRORS = (DaskNMFError, FileNotFoundError, PermissionError, ValueError)
