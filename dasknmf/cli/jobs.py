"""``dasknmf run``, ``resume``, ``submit`` and ``validate``: YAML job files.

The commands parse arguments, call :mod:`dasknmf.jobs` and print (:func:`describe_job`,
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
    from dasknmf.jobs.config import JobConfig

# The job library is imported by the commands that use it, not at the top: `dasknmf
# --help` need not load dask, zarr and scikit-learn.

__all__ = ["add_job_commands", "describe_job"]


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


def describe_job(config: JobConfig) -> str:
    """A few lines saying what a job will do (printed by ``validate``).

    Examples
    --------
    >>> from dasknmf.jobs.loading import parse_config
    >>> job = parse_config({"input": {"path": "example:term-document"},
    ...                     "model": {"n_components": 4}, "output": {"directory": "/tmp/o"}})
    >>> print(describe_job(job))  # doctest: +ELLIPSIS
      input      : example:term-document (5,000 x 2,000, built in memory)
      model      : n_components=4, solver=auto, loss=frobenius, init=default, ...
      stopping   : stops at a check (every 10 iterations) where the error fell by ...
      cluster    : threads in this process (one per core)
      output     : /tmp/o (...)
      checkpoint : off
      report     : convergence plot, top 10 features (if the input has column ids)
    """
    inp, model, out = config.input, config.model, config.output
    if inp.kind == "example":
        source = f"{inp.path} ({inp.rows:,} x {inp.cols:,}, built in memory)"
    elif inp.kind == "file":
        source = f"{inp.path} (matrix file, ingested into a store before the fit)"
    else:
        source = f"{inp.path} (store)"
    params = [
        f"n_components={model.n_components}",
        f"solver={model.solver}",
        f"loss={model.loss}",
        f"init={model.init or 'default'}",
        f"max_iter={model.max_iter}",
        f"tol={model.tol:g}",
        f"random_state={model.random_state}",
        f"persist={model.persist}",
    ]
    if model.alpha_W or model.alpha_H != "same":
        params += [f"alpha_W={model.alpha_W:g}", f"alpha_H={model.alpha_H}"]
        params += [f"l1_ratio={model.l1_ratio:g}"]
    if model.missing is not None:
        params.append(f"missing={model.missing}")
    if config.sweep is not None:
        params[0] = f"n_components={list(config.ranks)}"
    plot = "k-selection plot" if config.sweep is not None else "convergence plot"
    report = [plot] if config.report.plot else []
    if config.report.top_features:
        report.append(f"top {config.report.top_features} features (if the input has column ids)")
    every = config.checkpoint.every
    checkpoint = f"every {every} iterations, kept if the job stops" if every else "off"
    rows = [
        ("input", source),
        ("model", ", ".join(params)),
        ("stopping", _describe_stopping(config)),
        ("cluster", _describe_cluster(config)),
        ("output", f"{out.directory} ({_output_state(config)})"),
        ("checkpoint", checkpoint),
        ("report", ", ".join(report) or "none"),
    ]
    if config.sweep is not None:
        rows.insert(2, ("sweep", _describe_sweep(config)))
    return "\n".join(f"  {name:<10} : {text}" for name, text in rows)


def _describe_stopping(config: JobConfig) -> str:
    from dasknmf.stopping import describe_rule
    from dasknmf.validation import PATIENCE

    m = config.model
    patience = PATIENCE if m.validation is not None else None
    text = describe_rule(m.max_iter, m.tol, m.check_every, patience=patience)
    return f"each replicate {text}" if config.sweep is not None else text


def _describe_sweep(config: JobConfig) -> str:
    s = config.sweep
    assert s is not None
    held = (
        f"holdout {s.holdout:g} (held-out error by bi-cross-validation)"
        if s.holdout
        else "holdout 0 (k chosen by stability)"
    )
    chosen = f"k = {s.consensus_k}" if s.consensus_k else "the suggested k"
    return (
        f"k in {list(config.ranks)} x {s.replicates} replicates, {held}; writes "
        f"k_selection.csv/.png, every k's replicated H and the consensus of {chosen}"
    )


def _describe_cluster(config: JobConfig) -> str:
    c = config.cluster
    if c.type == "threads":
        threads = f"{c.threads} threads" if c.threads else "one per core"
        return f"threads in this process ({threads})"
    if c.type == "local":
        workers = c.n_workers or "default"
        threads = c.threads_per_worker or "default"
        kind = "processes" if c.processes else "threads"
        return (
            f"local cluster: {workers} workers ({kind}) x {threads} threads, "
            f"memory_limit {c.memory_limit}, dashboard {'on' if c.dashboard else 'off'}"
        )
    where = c.address or f"scheduler file {c.scheduler_file}"
    return f"existing cluster at {where}" + (" over TLS" if c.tls else "")


def _output_state(config: JobConfig) -> str:
    from dasknmf.jobs.outputs import OutputExistsError, check_output_target

    try:
        replacing = check_output_target(config.output.directory, overwrite=True)
    except OutputExistsError:
        return "exists and is not a job output: run will refuse it"
    if not replacing:
        return "new"
    if config.output.overwrite:
        return "holds a previous output: it will be replaced"
    return "holds a previous output: run refuses it without --overwrite"
