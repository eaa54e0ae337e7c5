"""A job file read and validated: :func:`load_config` and :func:`parse_config` turn
YAML, or a mapping already parsed, into a :class:`~dasknmf.jobs.config.JobConfig`.

Values are read with ``yaml.safe_load``. ``--set key.path=value`` overrides are
applied to the parsed mapping before validation, their values parsed as YAML too.
Each key is checked by its rule (:mod:`dasknmf.jobs.rules`), then the checks spanning
several keys run (:mod:`dasknmf.jobs.sections`, :mod:`dasknmf.jobs.sweep_config`).
Every problem of a file is collected and reported at once
(:class:`~dasknmf.jobs.validation.JobConfigError`), each with its file and line (or
its ``--set``), key path, value and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from dasknmf.jobs import rules, sections
from dasknmf.jobs.config import (
    CONFIG_VERSION,
    SECTIONS,
    ClusterConfig,
    JobConfig,
    SweepConfig,
    TLSConfig,
)
from dasknmf.jobs.overrides import apply_overrides
from dasknmf.jobs.sweep_config import check_sweep
from dasknmf.jobs.validation import (
    MISSING,
    Checker,
    JobConfigError,
    JobConfigNotFoundError,
    Problem,
    scan_keys,
    show,
)

__all__ = ["load_config", "parse_config"]

REQUIRED_SECTIONS = ("input", "model", "output")


def load_config(
    path: str | os.PathLike[str], overrides: Sequence[str] = (), *, check_paths: bool = True
) -> JobConfig:
    """Read, override and validate a job file.

    Parameters
    ----------
    path : str or os.PathLike
        The YAML job file.
    overrides : sequence of str
        ``"key.path=value"`` items (``--set``), values parsed with ``yaml.safe_load``,
        applied in order before validation.
    check_paths : bool, default True
        Check that local input paths and TLS files exist.

    Returns
    -------
    JobConfig

    Raises
    ------
    JobConfigNotFoundError
        ``path`` does not exist.
    JobConfigError
        The file is not valid YAML or does not follow the schema; lists every problem.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> f = os.path.join(d, "job.yaml")
    >>> _ = open(f, "w").write("input: {path: 'example:term-document'}\\n"
    ...                        "model: {n_components: 4}\\noutput: {directory: out}\\n")
    >>> load_config(f, ["model.max_iter=30"]).model.max_iter
    30
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JobConfigNotFoundError(f"job file {source!r} does not exist") from None
    except IsADirectoryError:
        raise JobConfigNotFoundError(f"job file {source!r} is a directory, not a file") from None
    try:
        data = yaml.safe_load(text)
        lines, duplicates = scan_keys(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise JobConfigError(source, [Problem(where, "", f"not valid YAML: {problem}.")]) from None
    checker = Checker(source, {key: f"{source}:{line}" for key, line in lines.items()})
    for key, line in duplicates:
        message = f"duplicate key {key!r}: YAML would keep only the last one; give it once."
        checker.problems.append(Problem(f"{source}:{line}", key, message))
    return _parse(data, checker, overrides, check_paths=check_paths)


def parse_config(
    mapping: Mapping[str, Any] | None,
    source: str = "<config>",
    overrides: Sequence[str] = (),
    *,
    check_paths: bool = True,
) -> JobConfig:
    """Validate an already parsed job mapping (see :func:`load_config`).

    Examples
    --------
    >>> parse_config({"model": {"n_components": 0}}, "inline")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dasknmf.jobs.validation.JobConfigError: invalid job configuration inline (3 problems):
      inline: missing required section 'input' (keys: path, chunks, ...).
      inline: The 'model.n_components' parameter must be an int in [1, inf]; got 0.
      inline: missing required section 'output' (keys: directory, overwrite, save_w).
    """
    return _parse(mapping, Checker(source), overrides, check_paths=check_paths)


def _parse(data: Any, c: Checker, overrides: Sequence[str], *, check_paths: bool) -> JobConfig:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        names = ", ".join(SECTIONS)
        c.error("", f"a job file must be a mapping of sections ({names}); got {show(data)}.")
        c.raise_if_any()
    data = apply_overrides(rules.expand_shorthands(data), overrides, c)
    c.known_keys(data, ("version", *SECTIONS))
    version = c.integer(data, "version", low=1, default=CONFIG_VERSION)
    if version is not MISSING and version > CONFIG_VERSION:
        c.error(
            "version",
            f"job file version {version} is newer than this dasknmf reads "
            f"({CONFIG_VERSION}); upgrade dasknmf.",
        )
    values = {
        name: rules.read_section(data, c, name, required=name in REQUIRED_SECTIONS)
        for name in SECTIONS
    }
    if values["input"] is not None:
        sections.check_input(values["input"], c, check_paths=check_paths)
    if values["model"] is not None:
        sections.check_model(values["model"], c)
        if values["input"] is not None:
            sections.check_evaluation(values["input"], values["model"], c)
            sections.check_rank(values["input"], values["model"], c, check_paths=check_paths)
    if values["cluster"] is not None:
        sections.check_cluster(values["cluster"], c, check_paths=check_paths)
    if values["output"] is not None:
        sections.check_output(values["output"], values["input"], c)
    is_sweep = "sweep" in data or isinstance((values["model"] or {}).get("n_components"), tuple)
    if is_sweep and values["model"] is not None and values["sweep"] is not None:
        shape = None
        if check_paths and values["input"] is not None and "path" in values["input"]:
            shape = sections.input_shape(values["input"])
        check_sweep(values["input"] or {}, values["model"], values["sweep"], shape, c)
    c.raise_if_any()
    # No problem recorded: every value is checked and every required key present.
    cluster = dict(values["cluster"])
    if cluster.get("tls") is not None:
        cluster["tls"] = TLSConfig(**cluster["tls"])
    built = {
        name: cls(**values[name])
        for name, cls in SECTIONS.items()
        if name not in ("cluster", "sweep")
    }
    sweep = SweepConfig(**values["sweep"]) if is_sweep else None
    return JobConfig(
        **built,
        cluster=ClusterConfig(**cluster),
        sweep=sweep,
        version=version,
        source=c.source,
    )
