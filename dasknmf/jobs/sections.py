"""The checks of a job file that span several keys, section by section.

The rules of :mod:`dasknmf.jobs.rules` check each key's value alone; the ``check_*``
functions here run on the values they return and check what only several keys together
tell: that ``input.path`` and the input's other keys go together, that the solver
registry serves the model's loss, solver and mask, that the rank fits the input, that
the ``cluster`` keys belong to its type, that the output does not overwrite the input.
They resolve paths in the values in place; every problem is recorded on the
:class:`~dasknmf.jobs.validation.Checker`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dasknmf.errors import DaskNMFError
from dasknmf.ingest import get_importer, importer_for, ingest_function
from dasknmf.jobs.paths import (
    EXAMPLE_PREFIX,
    EXAMPLE_SHAPE,
    EXAMPLES,
    absolute,
    exists_locally,
    input_kind,
    is_url,
)
from dasknmf.jobs.rules import CLUSTER_KEYS
from dasknmf.jobs.validation import MISSING, Checker
from dasknmf.solvers import UnsupportedSolverError, beta_of, get_solver
from dasknmf.storage import open_store_meta

__all__ = [
    "MAX_N_COMPONENTS",
    "check_cluster",
    "check_evaluation",
    "check_input",
    "check_model",
    "check_output",
    "check_rank",
    "input_shape",
]

#: The largest ``model.n_components`` a job takes, whatever its input: W and H hold
#: ``(m + n) k >= 2 k²`` values (``k <= min(m, n)``), 8 TiB of float32 at ``k = 2**20``.
MAX_N_COMPONENTS = 2**20


def check_input(values: dict[str, Any], c: Checker, *, check_paths: bool) -> None:
    """Checks of ``input`` that depend on what ``input.path`` names; resolves paths
    and the example's default shape in ``values``."""
    path = values.get("path", MISSING)
    if path is MISSING:
        return
    kind = input_kind(path)
    if kind == "example":
        name = path[len(EXAMPLE_PREFIX) :]
        if name not in EXAMPLES:
            known = ", ".join(EXAMPLE_PREFIX + e for e in EXAMPLES)
            c.error("input.path", f"unknown example {path!r} in 'input.path'; known: {known}.")
        values.setdefault("rows", EXAMPLE_SHAPE[0])
        values.setdefault("cols", EXAMPLE_SHAPE[1])
    else:
        for name in ("rows", "cols"):
            if name in values:
                c.error(
                    f"input.{name}",
                    f"'input.{name}' applies only to example inputs "
                    f"(input.path: example:...); input.path is {path!r}.",
                )
    if kind == "file" and is_url(path):
        c.error(
            "input.path",
            f"matrix files are read from local paths only; got {path!r} "
            "(ingest it with `dasknmf ingest` and give the store's URL).",
        )
    elif kind != "example" and check_paths and not exists_locally(path):
        what = "matrix file" if kind == "file" else "store"
        c.error(
            "input.path",
            f"the input {what} {path!r} does not exist (resolved to {absolute(path)!r}).",
        )
    if kind == "store" and "chunks" in values:
        c.error(
            "input.chunks",
            "'input.chunks' applies to matrix files and examples; the "
            f"store {path!r} keeps its own tiles (re-ingest it to change "
            "them).",
        )
    options = values.get("storage_options")
    if options and options is not MISSING and not (kind == "store" and is_url(path)):
        c.error(
            "input.storage_options",
            "'input.storage_options' applies to store URLs only "
            f"(s3://..., gs://...); input.path is {path!r}.",
        )
    _check_holdout(values, path, kind, c, check_paths=check_paths)
    _check_ingest_options(values, path, kind, c)
    if kind != "example":
        values["path"] = absolute(path)


def _check_holdout(
    values: dict[str, Any], path: str, kind: str, c: Checker, *, check_paths: bool
) -> None:
    """A fraction splits a triplet file or ``example:ratings``; a path names a store
    of held-out entries (as ``dasknmf ingest --holdout`` writes)."""
    holdout = values.get("holdout", MISSING)
    if isinstance(holdout, float):
        splittable = path == EXAMPLE_PREFIX + "ratings" or (
            kind == "file" and get_importer("triplets").can_read(path)
        )
        if not splittable:
            c.error(
                "input.holdout",
                f"input.holdout {holdout!r} (a fraction) splits triplet files (.csv, .tsv, "
                f".txt, .parquet) and example:ratings only; input.path is {path!r}. For "
                "other inputs give the path of a held-out store.",
            )
    elif isinstance(holdout, str):
        if input_kind(holdout) != "store":
            c.error(
                "input.holdout",
                f"input.holdout {holdout!r} must be a store of held-out entries (its ids "
                "must match the input's: write both with `dasknmf ingest --holdout`).",
            )
        elif check_paths and not exists_locally(holdout):
            c.error(
                "input.holdout",
                f"the held-out store {holdout!r} does not exist (resolved to "
                f"{absolute(holdout)!r}).",
            )
        else:
            values["holdout"] = absolute(holdout)
    if "seed" in values and not isinstance(holdout, float):
        c.error(
            "input.seed",
            "'input.seed' seeds the split of input.holdout (a fraction); no fraction is given.",
        )


#: Ingest arguments that are job keys of their own (or the job's to decide).
_JOB_OWNED = {
    "chunks": "input.chunks",
    "holdout": "input.holdout",
    "seed": "input.seed",
    "holdout_dst": "input.holdout",
    "corpus": "input.corpus",
    "overwrite": None,
    "storage_options": None,
}


def _check_ingest_options(values: dict[str, Any], path: str, kind: str, c: Checker) -> None:
    """``input.corpus`` and ``input.options`` apply to files to ingest; options must be
    keyword arguments of the ingest function for that kind of file."""
    corpus, options = values.get("corpus", False), values.get("options") or {}
    if kind != "file":
        for name, given in (("corpus", corpus), ("options", options)):
            if given and given is not MISSING:
                c.error(
                    f"input.{name}",
                    f"'input.{name}' applies to files to ingest; input.path {path!r} is "
                    f"{'a built-in example' if kind == 'example' else 'a store'}.",
                )
        return
    if options is MISSING or corpus is MISSING:
        return
    try:
        function = ingest_function(path, corpus=bool(corpus))
    except DaskNMFError as exc:
        c.error("input.path", str(exc))
        return
    accepted = sorted(
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name not in _JOB_OWNED
    )
    for name in options:
        if name in _JOB_OWNED:
            instead = _JOB_OWNED[name]
            c.error(
                f"input.options.{name}",
                f"'input.options.{name}' is set by the job"
                + (f": use {instead!r}." if instead else "."),
            )
        elif name not in accepted:
            c.error(
                f"input.options.{name}",
                f"unknown option {name!r} for {function.__name__} ({path!r}); accepted: "
                f"{', '.join(accepted)}.",
            )
            c.suggest(name, accepted)


def check_evaluation(inp: Mapping[str, Any], model: Mapping[str, Any], c: Checker) -> None:
    """Held-out entries are scored by RMSE, which missing-entry models provide."""
    if inp.get("holdout", MISSING) is not MISSING and model.get("missing") != "ignore":
        c.error(
            "input.holdout",
            "input.holdout needs model.missing: ignore (held-out entries are scored as "
            "predictions of unobserved entries); model.missing is "
            f"{model.get('missing')!r}.",
        )


def input_shape(values: Mapping[str, Any]) -> tuple[int, int] | None:
    """The input's ``(m, n)`` as far as metadata tells, reading no data: the example's
    shape, a store's metadata record (local or URL, with ``input.storage_options``:
    no tile is read), or a matrix file's header or attributes
    (:meth:`dasknmf.ingest.base.Importer.shape`: MatrixMarket, ``.npz``, ``.npy``,
    AnnData); ``None`` when only the data would tell (triplet ids, corpora). Call it
    on the values :func:`check_input` resolved, once they are valid."""
    path = values["path"]
    kind = input_kind(path)
    if kind == "example":
        shape = values.get("rows"), values.get("cols")
        return shape if all(isinstance(d, int) for d in shape) else None  # else reported
    try:
        if kind == "store":
            return open_store_meta(path, values.get("storage_options") or None)[2].shape
        return importer_for(path, corpus=values.get("corpus", False)).shape(path)
    except (DaskNMFError, OSError, ValueError, ImportError):
        # Reading the input reports what is wrong with it, with its own words (an
        # unknown URL protocol or its missing fsspec backend included).
        return None


def check_rank(
    inp: Mapping[str, Any], model: Mapping[str, Any], c: Checker, *, check_paths: bool = True
) -> None:
    """``model.n_components`` is at most ``min(m, n)`` when the input's metadata tells
    its shape (looked up only with ``check_paths``), and at most
    :data:`MAX_N_COMPONENTS` whatever the input."""
    k = model.get("n_components", MISSING)
    if k is MISSING:
        return
    k = max(k) if isinstance(k, tuple) else k  # a sweep's largest rank
    path = inp.get("path", MISSING)
    shape = input_shape(inp) if check_paths and path is not MISSING else None
    if shape is not None and k > min(shape):
        c.error(
            "model.n_components",
            f"The 'model.n_components' parameter must be an int in [1, min(m, n)] = "
            f"[1, {min(shape)}] for the input {path!r} of shape {tuple(shape)}; "
            f"got {k}. Choose a rank below both dimensions.",
        )
    elif k > MAX_N_COMPONENTS:
        unknown = (
            f" (the shape of {path!r} is known only once it is read)"
            if check_paths and path is not MISSING
            else ""
        )
        c.error(
            "model.n_components",
            f"The 'model.n_components' parameter must be an int in [1, "
            f"{MAX_N_COMPONENTS}] (2**20) and in [1, min(m, n)] for an m x n input"
            f"{unknown}; got {k}. W and H hold at least 2 k² values: 8 TiB of float32 "
            "at k = 2**20.",
        )


def check_model(values: dict[str, Any], c: Checker) -> None:
    """The solver registry must serve the loss, the solver and the mask together (a
    loss other than Frobenius, and missing entries, need MU today)."""
    if isinstance(values.get("factor_store"), str):
        values["factor_store"] = absolute(values["factor_store"])
    loss, solver = values.get("loss", "frobenius"), values.get("solver", "mu")
    if MISSING in (loss, solver):
        return  # already reported
    masked = values.get("missing") == "ignore"
    try:
        get_solver(beta_of(loss), solver, masked)
    except UnsupportedSolverError as exc:
        needs = " or ".join(f"model.solver {s!r}" for s in exc.available)
        what = f"model.loss {loss!r}" if exc.parameter == "beta_loss" else "model.missing 'ignore'"
        c.error("model.solver", f"{what} needs {needs}; got model.solver {solver!r}.")
        return
    validation, alpha_weighted = values.get("validation"), values.get("alpha_weighted")
    if validation not in (None, MISSING) and not masked:
        c.error(
            "model.validation",
            f"model.validation {validation!r} holds out observed entries to stop on: it "
            "needs model.missing 'ignore'.",
        )
    if alpha_weighted not in (None, MISSING, 0) and masked:
        cls = get_solver(beta_of(loss), values.get("solver", "auto"), masked)
        if not getattr(cls, "weighted_lambda", False):
            c.error(
                "model.alpha_weighted",
                f"model.alpha_weighted {alpha_weighted!r} needs model.solver 'als' (or "
                f"'auto') with model.missing 'ignore'; got model.solver {solver!r}. Use "
                "model.alpha_W with it instead.",
            )


def check_cluster(values: dict[str, Any], c: Checker, *, check_paths: bool) -> None:
    """Keys of ``cluster`` must belong to its ``type``; ``existing`` needs exactly one of
    ``address``/``scheduler_file``; TLS files must exist. Resolves local paths."""
    kind = values.get("type", "threads")
    if kind is MISSING:
        return
    for name in values:
        owners = [t for t, keys in CLUSTER_KEYS.items() if name in keys]
        if owners and kind not in owners:
            c.error(
                f"cluster.{name}",
                f"'cluster.{name}' applies to cluster.type {' or '.join(map(repr, owners))}, "
                f"not {kind!r}; the keys of {kind!r} are: "
                f"{', '.join(('type', *CLUSTER_KEYS[kind]))}.",
            )
    if kind != "existing":
        return
    address, scheduler_file = values.get("address"), values.get("scheduler_file")
    if address is not None and scheduler_file is not None:
        c.error(
            "cluster.address",
            "give either 'cluster.address' or 'cluster.scheduler_file', "
            f"not both; got cluster.address={address!r} and "
            f"cluster.scheduler_file={scheduler_file!r}.",
        )
    elif address is None and scheduler_file is None:
        c.error(
            "cluster.type",
            "cluster.type 'existing' needs 'cluster.address' (e.g. "
            "tcp://host:8786) or 'cluster.scheduler_file'; got neither.",
        )
    if isinstance(scheduler_file, str):
        values["scheduler_file"] = absolute(scheduler_file)
    tls = values.get("tls")
    if not isinstance(tls, dict):
        return
    if isinstance(address, str) and not address.startswith("tls://"):
        c.error(
            "cluster.address",
            f"cluster.address {address!r} must start with tls:// when cluster.tls is given.",
        )
    for name, path in tls.items():
        tls[name] = absolute(path)
        if check_paths and not os.path.isfile(tls[name]):
            c.error(
                f"cluster.tls.{name}", f"the file {path!r} of 'cluster.tls.{name}' does not exist."
            )


def check_output(values: dict[str, Any], inp: Mapping[str, Any] | None, c: Checker) -> None:
    """Resolves ``output.directory``: a local path that neither is nor contains the
    input."""
    directory = values.get("directory", MISSING)
    if directory is MISSING:
        return
    if is_url(directory):
        c.error(
            "output.directory",
            f"output.directory must be a local path (a shared file system for a cluster); "
            f"got the URL {directory!r}: results are put in place by an atomic rename, "
            "which object stores do not have.",
        )
        return
    values["directory"] = target = absolute(directory)
    path = (inp or {}).get("path", MISSING)
    if path is MISSING or input_kind(path) == "example" or is_url(path):
        return
    if Path(path) == Path(target) or Path(target) in Path(path).parents:
        c.error(
            "output.directory",
            f"output.directory {directory!r} would contain or replace "
            f"the input {path!r}; choose another directory.",
        )
