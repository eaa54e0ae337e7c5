"""The rules of each section of a job file, and the checks that span several keys.

Each ``read_*`` function returns the *checked values present* in its section (absent
keys are left out, so the defaults stay in one place: the dataclasses of
:mod:`dasknmf.jobs.config`), or ``None`` when the section cannot be used; every
problem is recorded on the :class:`~dasknmf.jobs.validation.Checker`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from dasknmf.devices import DEVICES
from dasknmf.errors import DaskNMFError
from dasknmf.ingest import get_importer, importer_for, ingest_function
from dasknmf.ingest.registry import file_suffixes
from dasknmf.jobs.sweep_config import n_components
from dasknmf.jobs.validation import MISSING, Checker, show, yaml11_float
from dasknmf.solvers import (
    LOSS_BETAS,
    UnsupportedSolverError,
    beta_of,
    get_solver,
    solver_names,
)
from dasknmf.storage import is_store_directory, open_store_meta

__all__ = [
    "CLUSTER_KEYS",
    "CLUSTER_TYPES",
    "EXAMPLES",
    "EXAMPLE_PREFIX",
    "EXAMPLE_SHAPE",
    "INITS",
    "LOSSES",
    "MATRIX_FILE_SUFFIXES",
    "MAX_N_COMPONENTS",
    "RULES",
    "SOLVERS",
    "input_kind",
    "read_section",
]

#: ``input.path`` values naming a built-in matrix instead of a file or store.
EXAMPLE_PREFIX = "example:"
EXAMPLES = ("term-document", "ratings", "planted-counts")
#: Default ``(rows, cols)`` of an example input.
EXAMPLE_SHAPE = (5_000, 2_000)

#: Extensions of the files :func:`dasknmf.ingest.ingest` imports (matrices,
#: row,column,value triplets, AnnData), ingested into a store before the fit: those
#: its registered importers claim. An existing regular file with another name is handed
#: to ``ingest`` too (it names the formats it accepts); anything else is a dasknmf store.
MATRIX_FILE_SUFFIXES = file_suffixes()

#: The largest ``model.n_components`` a job takes, whatever its input: W and H hold
#: ``(m + n) k >= 2 k²`` values (``k <= min(m, n)``), 8 TiB of float32 at ``k = 2**20``.
MAX_N_COMPONENTS = 2**20

LOSSES = tuple(LOSS_BETAS)
SOLVERS = solver_names()
INITS = ("random", "nndsvd", "nndsvda", "nndsvdar")
CLUSTER_TYPES = ("threads", "local", "cuda", "existing")

#: The ``cluster`` keys that each ``cluster.type`` accepts (besides ``type``).
CLUSTER_KEYS = {
    "threads": ("threads",),
    "local": ("n_workers", "threads_per_worker", "memory_limit", "processes", "dashboard"),
    "cuda": ("n_workers", "memory_limit", "dashboard"),
    "existing": ("address", "scheduler_file", "tls"),
}

# -- rules: one per key ----------------------------------------------------------------

Rule = Callable[[Checker, Mapping[str, Any], str], Any]


def integer(low: int, *, allow_none: bool = False) -> Rule:
    """An int ``>= low`` (or ``null``)."""
    return lambda c, s, key: c.integer(s, key, low=low, allow_none=allow_none)


def real(low: float, high: float | None = None) -> Rule:
    """A finite number in ``[low, high]``."""
    return lambda c, s, key: c.real(s, key, low=low, high=high)


def choice(*options: Any) -> Rule:
    """One of ``options``."""
    return lambda c, s, key: c.choice(s, key, options)


def boolean(c: Checker, s: Mapping[str, Any], key: str) -> Any:
    """``true`` or ``false``."""
    return c.boolean(s, key, default=MISSING)


def string(c: Checker, s: Mapping[str, Any], key: str) -> Any:
    """A non-empty string."""
    return c.string(s, key)


def _finite(value: Any) -> float | None:
    number = yaml11_float(value)
    numeric = isinstance(number, (int, float)) and not isinstance(number, bool)
    if numeric and number == number and abs(number) != float("inf"):
        return float(number)
    return None


def _loss(c: Checker, s: Mapping[str, Any], key: str) -> Any:
    value = s["loss"]
    if isinstance(value, str) and value in LOSSES:
        return value
    beta = _finite(value)
    if beta is not None:
        return beta
    c.error(
        key,
        f"The {key!r} parameter must be 'frobenius', 'kullback-leibler', 'itakura-saito' "
        f"or a real number β; got {value!r}.",
    )
    if isinstance(value, str):
        c.suggest(value, LOSSES)
    return MISSING


def _alpha_h(c: Checker, s: Mapping[str, Any], key: str) -> Any:
    value = s["alpha_H"]
    if value == "same":
        return value
    alpha = _finite(value)
    if alpha is not None and alpha >= 0:
        return alpha
    c.error(key, f"The {key!r} parameter must be 'same' or a real number >= 0.0; got {value!r}.")
    return MISSING


def _holdout(c: Checker, s: Mapping[str, Any], key: str) -> Any:
    value = s["holdout"]
    if isinstance(value, str) and value:
        return value
    fraction = _finite(value)
    if fraction is not None and 0 < fraction < 1:
        return fraction
    c.error(
        key,
        f"The {key!r} parameter must be a fraction in (0, 1) of the input's entries to "
        f"hold out, or the path of a held-out store; got {value!r}.",
    )
    return MISSING


def _validation(c: Checker, s: Mapping[str, Any], key: str) -> Any:
    value = s["validation"]
    if value is None:
        return None
    fraction = _finite(value)
    if fraction is not None and 0 < fraction < 0.5:
        return fraction
    c.error(
        key,
        f"The {key!r} parameter must be null or a fraction in (0, 0.5) of the training "
        f"entries to validate on; got {value!r}.",
    )
    return MISSING


def _ingest_options(c: Checker, s: Mapping[str, Any], key: str) -> Any:
    value = s["options"]
    if value is None:
        return {}
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return dict(value)
    c.error(key, f"The {key!r} parameter must be a mapping of option names; got {show(value)}.")
    return MISSING


def _chunks(c: Checker, s: Mapping[str, Any], key: str) -> Any:
    from dasknmf import params

    return c.attempt(key, lambda: params.check_chunks(key, s["chunks"]))


def _storage_options(c: Checker, s: Mapping[str, Any], key: str) -> Any:
    value = s["storage_options"]
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        c.error(
            key, f"The {key!r} parameter must be a mapping of fsspec options; got {show(value)}."
        )
        return MISSING
    return dict(value)


def _memory_limit(c: Checker, s: Mapping[str, Any], key: str) -> Any:
    from dask.utils import parse_bytes

    value = s["memory_limit"]
    if value is None or value == "auto":
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        try:
            if parse_bytes(value) > 0:
                return value
        except ValueError:
            pass
    c.error(
        key,
        f"The {key!r} parameter must be 'auto', null (no limit), a size such as '2GiB' or "
        f"'500MB', or a number of bytes > 0; got {value!r}.",
    )
    return MISSING


def _tls(c: Checker, s: Mapping[str, Any], key: str) -> Any:
    if s["tls"] is None:
        return None
    t = c.section(s, key, RULES["cluster.tls"])
    values = _read(c, t, key, RULES["cluster.tls"])
    return MISSING if values is None or MISSING in values.values() else values


#: Every key of every section, with its rule. The dataclasses of
#: :mod:`dasknmf.jobs.config` have exactly these fields (a test checks it).
RULES: dict[str, dict[str, Rule]] = {
    "input": {
        "path": string,
        "chunks": _chunks,
        "storage_options": _storage_options,
        "rows": integer(1),
        "cols": integer(1),
        "holdout": _holdout,
        "seed": integer(0),
        "corpus": boolean,
        "options": _ingest_options,
    },
    "model": {
        "n_components": n_components,
        "solver": choice(*SOLVERS),
        "loss": _loss,
        "init": choice(None, *INITS),
        "max_iter": integer(0),
        "tol": real(0.0),
        "random_state": integer(0, allow_none=True),
        "check_every": integer(1),
        "alpha_W": real(0.0),
        "alpha_H": _alpha_h,
        "l1_ratio": real(0.0, 1.0),
        "alpha_weighted": real(0.0),
        "validation": _validation,
        "persist": choice("auto", True, False),
        "factors": choice("auto", "memory", "store"),
        "factor_store": string,
        "missing": choice(None, "ignore"),
        "device": choice(*DEVICES),
    },
    "cluster": {
        "type": choice(*CLUSTER_TYPES),
        "threads": integer(1, allow_none=True),
        "n_workers": integer(1, allow_none=True),
        "threads_per_worker": integer(1, allow_none=True),
        "memory_limit": _memory_limit,
        "processes": boolean,
        "dashboard": boolean,
        "address": string,
        "scheduler_file": string,
        "tls": _tls,
    },
    "cluster.tls": {"ca_file": string, "cert": string, "key": string},
    "output": {"directory": string, "overwrite": boolean, "save_w": boolean},
    "checkpoint": {"every": integer(0)},
    "report": {"plot": boolean, "top_features": integer(0)},
    "sweep": {
        "replicates": integer(1),
        "holdout": real(0.0, 0.5),
        "consensus_k": integer(1, allow_none=True),
        "density_threshold": real(0.0),
        "local_neighborhood": real(0.0, 1.0),
    },
}

#: Keys without a default, with what they should hold.
REQUIRED = {
    "input.path": "a store, a .mtx/.npz/.npy file or example:term-document",
    "model.n_components": "an int >= 1",
    "output.directory": "where to write the results",
    "cluster.tls.ca_file": "the CA certificate file",
    "cluster.tls.cert": "the client certificate file",
}


#: Sections that may be written as one string, the value of their main key:
#: ``input: V.zarr`` is ``input: {path: V.zarr}``, ``output: out`` is
#: ``output: {directory: out}``.
SHORTHANDS = {"input": "path", "output": "directory"}


def expand_shorthands(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with every section written as a string (:data:`SHORTHANDS`) made the
    mapping it stands for.

    Examples
    --------
    >>> expand_shorthands({"input": "V.zarr", "output": "out", "model": {"n_components": 5}})
    {'input': {'path': 'V.zarr'}, 'output': {'directory': 'out'}, 'model': {'n_components': 5}}
    """
    return {
        name: {SHORTHANDS[name]: value} if name in SHORTHANDS and isinstance(value, str) else value
        for name, value in data.items()
    }


def read_section(
    data: Mapping[str, Any], c: Checker, name: str, *, required: bool = False
) -> dict[str, Any] | None:
    """The checked values present in section ``name`` (``None`` when it is unusable)."""
    value = data.get(name)
    if name in SHORTHANDS and value is not None and not isinstance(value, Mapping):
        c.error(
            name,
            f"{name!r} must be a mapping with keys {', '.join(RULES[name])}, or a string "
            f"(its {SHORTHANDS[name]}); got {show(value)}.",
        )
        return None
    s = c.section(data, name, RULES[name], required=required)
    if required and not isinstance(data.get(name), Mapping):
        return None
    return _read(c, s, name, RULES[name])


def _read(
    c: Checker, s: Mapping[str, Any], name: str, rules: Mapping[str, Rule]
) -> dict[str, Any] | None:
    for key in rules:
        if f"{name}.{key}" in REQUIRED and key not in s:
            c.error(
                f"{name}.{key}",
                f"missing required key {name + '.' + key!r} ({REQUIRED[name + '.' + key]}).",
            )
    return {key: rule(c, s, f"{name}.{key}") for key, rule in rules.items() if key in s}


# -- checks across keys ----------------------------------------------------------------


def input_kind(path: str) -> Literal["example", "file", "store"]:
    """What an ``input.path`` names: a built-in example, a matrix file or a store.

    A file is a path with one of :data:`MATRIX_FILE_SUFFIXES` or an existing regular
    local file; anything else is a store.

    Examples
    --------
    >>> input_kind("example:term-document"), input_kind("v.mtx.gz"), input_kind("s3://b/v")
    ('example', 'file', 'store')
    """
    if path.startswith(EXAMPLE_PREFIX):
        return "example"
    if path.lower().endswith(MATRIX_FILE_SUFFIXES):
        return "file"
    if not is_url(path):
        local = Path(absolute(path))
        # A directory that is not a dasknmf store (an AnnData .zarr, a corpus of .txt
        # files) is something to ingest.
        if local.is_file() or (local.is_dir() and not is_store_directory(local)):
            return "file"
    return "store"


def is_url(path: str) -> bool:
    """Whether ``path`` is an fsspec URL rather than a local path."""
    return "://" in path


def absolute(path: str) -> str:
    """Local paths made absolute against the current directory; URLs unchanged."""
    return path if is_url(path) else str(Path(path).expanduser().absolute())


def _exists_locally(path: str) -> bool:
    """URLs are not checked here (they may need credentials only workers have)."""
    return is_url(path) or os.path.exists(absolute(path))


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
    elif kind != "example" and check_paths and not _exists_locally(path):
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
        elif check_paths and not _exists_locally(holdout):
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
