"""``dasknmf run``, ``resume``, ``submit`` and ``validate``: YAML job files.

The commands parse arguments, call :mod:`dasknmf.jobs` and print
(:func:`~dasknmf.cli.describe.describe_job`,
:class:`~dasknmf.cli.progress.ProgressPrinter`). Registered on the ``dasknmf`` parser by
:func:`add_job_commands`; errors are raised,
and :func:`dasknmf.cli.main` prints them as ``dasknmf: error: ...`` with exit code 2
(an invalid job file: every problem, one per line, and nothing written).

Examples
--------
.. code-block:: console

    $ dasknmf validate configs/example.yaml
    $ dasknmf run configs/example.yaml --set model.max_iter=50 --overwrite
    $ dasknmf submit job.yaml --scheduler-file /shared/dask/scheduler.json
    $ dasknmf resume runs/example      # after a job with checkpoint.every > 0 stopped
    $ dasknmf resume runs/example --scheduler-file /shared/dask/new-scheduler.json

``run``, ``submit`` and ``resume`` stop cleanly on SIGUSR1 (:data:`STOP_SIGNAL`): a
checkpoint at the end of the iteration under way, then exit 75
(:data:`~dasknmf.cli.exit_codes.EXIT_STOPPED`), to be resumed; ``deploy/README.md``
shows it with ``sbatch --signal``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dasknmf.cli.exit_codes import EXIT_OK, EXIT_STOPPED

if TYPE_CHECKING:
    from dasknmf.cli.progress import ProgressPrinter
    from dasknmf.jobs.checkpoint_writer import JobStopped

# The job library is imported by the commands that use it, not at the top: `dasknmf
# --help` need not load dask, zarr and scikit-learn.

__all__ = ["add_job_commands"]


#: --quiet's help, shared by run and resume (submit says "as for run").
QUIET_HELP = "no progress lines: print the result, where the outputs are, and errors"
#: --no-memory-check's help, shared by run and resume.
NO_MEMORY_CHECK_HELP = (
    "do not compare the workers' memory limits with what one task of the fit needs "
    "before it starts (the check refuses a job it finds too big, exit 2): for workers "
    "known to cope, e.g. with spilling"
)

#: The signal asking a running job (run, submit, resume) for a checkpoint at the end
#: of the iteration under way, then a stop: ``sbatch --signal=B:USR1@SECONDS``.
STOP_SIGNAL = getattr(signal, "SIGUSR1", None)  # None where the OS has no SIGUSR1


def add_job_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run``, ``resume``, ``submit`` and ``validate`` to the ``dasknmf`` parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="dasknmf")
    >>> add_job_commands(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["run", "job.yaml", "--set", "model.max_iter=5"]).overrides
    ['model.max_iter=5']
    """
    run = subparsers.add_parser(
        "run",
        help="run a YAML job: fit NMF on a cluster and write the results",
        description=(
            "Validate the job file, set up the scheduler it names, fit NMF on its input "
            "and write W, H, summary.json and plots to its output directory, atomically. "
            "Keys are documented in configs/README.md."
        ),
    )
    _add_config_arguments(run)
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output of a previous job (same as --set output.overwrite=true)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue an earlier run of this same job from its checkpoints if it left "
        "any (else start): the same command again goes on where a killed run stopped",
    )
    run.add_argument("--no-memory-check", action="store_true", help=NO_MEMORY_CHECK_HELP)
    run.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    run.set_defaults(handler=_cmd_run)

    resume = subparsers.add_parser(
        "resume",
        help="continue a job that stopped, from its latest checkpoint",
        description=(
            "Continue the job whose output directory is OUTPUT_DIR from the latest "
            "checkpoint in its work area (written every checkpoint.every iterations): "
            "the job as it was configured, on its input, with the same results as a run "
            "that was never interrupted."
        ),
    )
    resume.add_argument("directory", metavar="OUTPUT_DIR", help="the job's output.directory")
    resume.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change the recorded job's cluster, checkpoint or report section (e.g. --set "
        "'cluster={type: local, n_workers: 4}'; cluster.type replaces the section); the "
        "input, model and output cannot change; may be repeated",
    )
    target = resume.add_mutually_exclusive_group()
    target.add_argument(
        "--scheduler-file",
        metavar="FILE",
        help="run on this scheduler (a new allocation's) instead of the recorded cluster",
    )
    target.add_argument("--address", metavar="ADDRESS", help="as --scheduler-file")
    _add_tls_arguments(resume)
    resume.add_argument("--no-memory-check", action="store_true", help=NO_MEMORY_CHECK_HELP)
    resume.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    resume.set_defaults(handler=_cmd_resume)

    submit = subparsers.add_parser(
        "submit",
        help="run a YAML job on a running dask cluster",
        description=(
            "Run a job file on an existing dask scheduler: 'run' with the file's cluster "
            "section replaced by type 'existing' and the scheduler given here (any "
            "--set cluster... is replaced too). The input must be readable by every worker."
        ),
    )
    _add_config_arguments(submit)
    target = submit.add_mutually_exclusive_group(required=True)
    target.add_argument("--scheduler-file", metavar="FILE", help="the scheduler's JSON file")
    target.add_argument("--address", metavar="ADDRESS", help="e.g. tcp://host:8786")
    _add_tls_arguments(submit)
    submit.add_argument("--overwrite", action="store_true", help="as for run")
    submit.add_argument("--resume", action="store_true", help="as for run")
    submit.add_argument("--no-memory-check", action="store_true", help="as for run")
    submit.add_argument("--quiet", action="store_true", help="as for run")
    submit.set_defaults(handler=_cmd_submit)

    validate = subparsers.add_parser(
        "validate",
        help="check a YAML job file without running it",
        description=(
            "Check a job file (and --set overrides) against the schema: print the resolved "
            "job, or every problem with its file, line and key. Nothing is written."
        ),
    )
    _add_config_arguments(validate)
    validate.set_defaults(handler=_cmd_validate)


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="YAML job file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the file, value in YAML (e.g. --set model.max_iter=50 "
        "--set cluster.type=threads); may be repeated",
    )


def _add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-ca-file", metavar="FILE", help="CA certificate (TLS)")
    parser.add_argument("--tls-cert", metavar="FILE", help="client certificate (TLS)")
    parser.add_argument("--tls-key", metavar="FILE", help="client key, if not in --tls-cert")


def _cmd_validate(args: argparse.Namespace) -> int:
    from dasknmf.cli.describe import describe_job
    from dasknmf.jobs.loading import load_config

    config = load_config(args.config, args.overrides)
    print(f"OK: {args.config}")
    print(describe_job(config))
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    with _stop_on_signal() as stop:  # first: the imports below take seconds
        from dasknmf.jobs.checkpoint_writer import JobStopped
        from dasknmf.jobs.loading import load_config
        from dasknmf.jobs.runner import run_job

        overrides = [*args.overrides, *(["output.overwrite=true"] if args.overwrite else [])]
        config = load_config(args.config, overrides)
        try:
            with _progress(args) as progress:
                result = run_job(
                    config,
                    progress=progress,
                    resume=args.resume,
                    stop=stop,
                    check_memory=not args.no_memory_check,
                )
        except JobStopped as exc:
            return _stopped(exc, config.output.directory)
    if args.quiet:
        _print_result(result.lines, result.directory)
    return EXIT_OK


def _cmd_resume(args: argparse.Namespace) -> int:
    with _stop_on_signal() as stop:
        from dasknmf.jobs.checkpoint_writer import JobStopped
        from dasknmf.jobs.runner import resume_job

        overrides = [*args.overrides, *submit_overrides(args)]
        try:
            with _progress(args) as progress:
                result = resume_job(
                    args.directory,
                    overrides=overrides,
                    progress=progress,
                    stop=stop,
                    check_memory=not args.no_memory_check,
                )
        except JobStopped as exc:
            return _stopped(exc, args.directory)
    if args.quiet:
        _print_result(result.lines, result.directory)
    return EXIT_OK


@contextmanager
def _progress(args: argparse.Namespace) -> Iterator[ProgressPrinter | None]:
    """The job's progress printer (none with ``--quiet``), closed when the job ends."""
    if args.quiet:
        yield None
        return
    from dasknmf.cli.progress import ProgressPrinter

    with ProgressPrinter() as printer:
        yield printer


@contextmanager
def _stop_on_signal() -> Iterator[threading.Event]:
    """An event that :data:`STOP_SIGNAL` sets while the block runs (the job's
    checkpoint writer reads it between iterations); the previous handler is restored
    after. Without the handler the signal would kill the process, checkpoint-less."""
    stop = threading.Event()
    if STOP_SIGNAL is None or threading.current_thread() is not threading.main_thread():
        yield stop  # handlers can be set in the main thread only (main() run in a thread)
        return
    previous = signal.signal(STOP_SIGNAL, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(STOP_SIGNAL, previous)


def _stopped(exc: JobStopped, directory: str) -> int:
    """Say that the job stopped to be resumed, and how; :data:`EXIT_STOPPED`."""
    print(
        f"dasknmf: {exc}, to be resumed: `dasknmf resume {directory}` continues it (or "
        "the same run or submit command with --resume)",
        file=sys.stderr,
    )
    return EXIT_STOPPED


def _print_result(lines: tuple[str, ...], directory: str) -> None:
    """What ``--quiet`` keeps: the result (progress and steps are what it drops)."""
    for line in lines:
        print(line)
    print(f"outputs: {directory}")


def _cmd_submit(args: argparse.Namespace) -> int:
    args.overrides = [*args.overrides, *submit_overrides(args)]
    return _cmd_run(args)


def submit_overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` items by which ``submit`` is ``run`` on the cluster it names (and
    ``resume`` continues a job on it).

    They come after the user's own, so the file's ``cluster`` section and any
    ``--set cluster...`` are replaced when a scheduler is named; TLS options alone
    (``resume`` with the recorded scheduler) change only ``cluster.tls``. Paths and
    addresses are JSON strings, which YAML reads back verbatim.

    Examples
    --------
    >>> ns = argparse.Namespace(scheduler_file="s.json", address=None,
    ...                         tls_ca_file="ca.pem", tls_cert="c.pem", tls_key=None)
    >>> for item in submit_overrides(ns):
    ...     print(item)
    cluster={type: existing}
    cluster.scheduler_file="s.json"
    cluster.tls.ca_file="ca.pem"
    cluster.tls.cert="c.pem"
    """
    named = args.scheduler_file is not None or args.address is not None
    items = ["cluster={type: existing}"] if named else []
    for option, key in _SUBMIT_KEYS.items():
        value = getattr(args, option)
        if value is not None:
            items.append(f"cluster.{key}={json.dumps(value)}")
    return items


#: ``submit``'s options and the ``cluster`` keys they set.
_SUBMIT_KEYS = {
    "scheduler_file": "scheduler_file",
    "address": "address",
    "tls_ca_file": "tls.ca_file",
    "tls_cert": "tls.cert",
    "tls_key": "tls.key",
}
