"""What a job will do, in a few lines: ``dasknmf validate`` prints it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dasknmf.jobs.config import JobConfig

__all__ = ["describe_job"]


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
