"""``python -m dasknmf``: the same as the ``dasknmf`` command."""

from __future__ import annotations

import sys

from dasknmf.cli import main

if __name__ == "__main__":
    sys.exit(main())
