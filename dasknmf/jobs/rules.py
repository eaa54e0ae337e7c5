"""The rules of each key of a job file: one table, :data:`RULES`, read section by section.

Each rule checks one key's value alone (its type and range) and returns the checked
value, or :data:`~dasknmf.jobs.validation.MISSING` after recording the problem on the
:class:`~dasknmf.jobs.validation.Checker`. :func:`read_section` returns the *checked
values present* in a section (absent keys are left out, so the defaults stay in one
place: the dataclasses of :mod:`dasknmf.jobs.config`), or ``None`` when the section
cannot be used. The checks that span several keys are in :mod:`dasknmf.jobs.sections`
and what a path names is in :mod:`dasknmf.jobs.paths`: this module holds the per-key
table only, so that a key's rule is found in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dasknmf.devices import DEVICES
from dasknmf.jobs.sweep_config import n_components
from dasknmf.jobs.validation import MISSING, Checker, show, yaml11_float
from dasknmf.solvers import LOSS_BETAS, solver_names

__all__ = [
    "CLUSTER_KEYS",
    "CLUSTER_TYPES",
    "INITS",
    "LOSSES",
    "REQUIRED",
    "RULES",
    "SHORTHANDS",
    "SOLVERS",
    "Rule",
    "expand_shorthands",
    "read_section",
]

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
