#!/usr/bin/env python3
"""Wait until a dask scheduler is up and the given workers are connected to it.

Used by ``start-cluster.sh`` and ``deploy/slurm/dasknmf.sbatch``; needs only
``distributed``. While waiting it watches the processes given with ``--pid``: if one
of them exits, waiting stops at once (exit 3) instead of running into the timeout.

Exit status: 0 ready (the scheduler's address is printed on standard output, and with
``--dashboard`` a second line: the dashboard's link, or ``none: `` and why);
1 timed out; 2 bad arguments; 3 a watched process exited.

Examples
--------
.. code-block:: console

    $ python wait_for_workers.py --scheduler-file run/scheduler.json --n-workers 2
    tcp://127.0.0.1:8786
    $ python wait_for_workers.py --address tls://10.0.0.5:8786 --names host1-0,host1-1 \\
    ...     --tls-ca-file ca.pem --tls-cert worker.pem --tls-key worker-key.pem --timeout 120
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

POLL_S = 0.25


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    deadline = time.monotonic() + args.timeout
    names = {n for n in (args.names or "").split(",") if n}

    address = args.address
    if address is None:
        _say(f"waiting for the scheduler file {args.scheduler_file}")
        while (address := _read_address(args.scheduler_file)) is None:
            if (code := _check(args.pid, deadline, "the scheduler file to appear")) is not None:
                return code
            time.sleep(POLL_S)

    from distributed import Client
    from distributed.security import Security

    security = None
    if args.tls_ca_file:
        security = Security(
            tls_ca_file=args.tls_ca_file,
            tls_client_cert=args.tls_cert,
            tls_client_key=args.tls_key,
            require_encryption=True,
        )
    want = f"workers {sorted(names)}" if names else f"{args.n_workers} workers"
    _say(f"scheduler at {address}; waiting for {want}")
    client = None
    try:
        while client is None:
            try:
                client = Client(
                    address,
                    security=security,
                    timeout=max(1.0, min(10.0, deadline - time.monotonic())),
                    set_as_default=False,
                )
            except OSError as exc:  # not listening yet, or a TLS handshake problem
                if (code := _check(args.pid, deadline, f"the scheduler ({exc})")) is not None:
                    return code
                time.sleep(POLL_S)
        while True:
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
            connected = {str(w.get("name")) for w in workers}
            missing = names - connected
            if not missing and len(connected) >= args.n_workers:
                print(address, flush=True)
                if args.dashboard:
                    print(_dashboard(client), flush=True)
                return 0
            what = f"workers {sorted(missing)}" if missing else f"{args.n_workers} workers"
            waiting_for = f"{what} ({len(connected)} connected)"
            if (code := _check(args.pid, deadline, waiting_for)) is not None:
                return code
            time.sleep(POLL_S)
    finally:
        if client is not None:
            client.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--scheduler-file", help="the scheduler's JSON file (may not exist yet)")
    where.add_argument("--address", help="the scheduler's address, e.g. tcp://host:8786")
    parser.add_argument("--n-workers", type=int, default=0, help="least workers connected")
    parser.add_argument("--names", help="comma-separated worker names that must be connected")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds (default: 60)")
    parser.add_argument(
        "--pid", type=int, action="append", default=[], help="a process to watch (repeatable)"
    )
    parser.add_argument("--tls-ca-file", help="CA certificate, for a tls:// scheduler")
    parser.add_argument("--tls-cert", help="certificate presented to the scheduler")
    parser.add_argument("--tls-key", help="its key, when not in --tls-cert")
    parser.add_argument(
        "--dashboard",
        action="store_true",
        help="print the dashboard's link as a second line (or 'none: ' and why)",
    )
    return parser


def _dashboard(client) -> str:
    """The dashboard's link, only if the page is the dashboard (not bokeh's absence)."""
    if "dashboard" not in client.scheduler_info(n_workers=0).get("services", {}):
        return "none: the scheduler was started without one (--dashboard-address none)"
    packages = client.get_versions(packages=["bokeh"])["scheduler"]["packages"]
    if packages.get("bokeh") is None:
        return (
            "none: bokeh is not installed where the scheduler runs "
            "(pip install 'dasknmf[dashboard]', then start the cluster again)"
        )
    return client.dashboard_link


def _read_address(path: str) -> str | None:
    try:
        with open(path) as f:
            return json.load(f)["address"]
    except (OSError, ValueError, KeyError):  # absent, or being written
        return None


def _check(pids: Sequence[int], deadline: float, waiting_for: str) -> int | None:
    """1 if the deadline passed, 3 if a watched process exited, else None."""
    for pid in pids:
        if not _alive(pid):
            _say(f"error: process {pid} exited while waiting for {waiting_for}")
            return 3
    if time.monotonic() > deadline:
        _say(f"error: timed out waiting for {waiting_for}")
        return 1
    return None


def _alive(pid: int) -> bool:
    import psutil  # a dependency of distributed

    try:
        # A child that exited but was not reaped yet is a zombie: dead all the same.
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _say(message: str) -> None:
    print(f"wait_for_workers: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
