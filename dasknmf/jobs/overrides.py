"""``--set key.path=value``: changes to a parsed job file, applied before validation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from dasknmf.jobs.validation import Checker, Problem, show

__all__ = ["apply_overrides"]


def apply_overrides(
    data: Mapping[str, Any], overrides: Iterable[str], checker: Checker
) -> dict[str, Any]:
    """A copy of ``data`` with each ``key.path=value`` applied.

    Values are parsed with ``yaml.safe_load`` (``30``, ``true``, ``null``, ``[1, 2]``,
    ``2GiB``); missing sections are created. The location of an overridden key, and
    of everything under it, becomes its ``--set`` so that a problem with it names the
    override rather than the file. Malformed items are recorded on ``checker``; a
    key path that the schema does not know is reported by the validation that
    follows, like a key of the file.

    Examples
    --------
    >>> c = Checker("job.yaml")
    >>> apply_overrides({"model": {"n_components": 3}}, ["model.max_iter=50"], c)
    {'model': {'n_components': 3, 'max_iter': 50}}
    >>> c.locate("model.max_iter")
    '--set model.max_iter=50'
    """
    result = _copy(data)
    for item in overrides:
        where = f"--set {item}"
        key, sep, raw = item.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not sep or not all(parts):
            message = f"expected --set KEY.PATH=VALUE (e.g. model.max_iter=50); got {item!r}."
            checker.problems.append(Problem(where, key, message))
            continue
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            message = f"the value {raw!r} of {key!r} is not valid YAML: {exc}"
            checker.problems.append(Problem(where, key, message))
            continue
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
                checker.where[".".join(parts[: depth + 1])] = where
            elif not isinstance(child, dict):
                parent = ".".join(parts[: depth + 1])
                message = f"cannot set {key!r}: {parent!r} is {show(child)}, not a mapping."
                checker.problems.append(Problem(where, key, message))
                break
            node = child
        else:
            node[parts[-1]] = value
            for known in [k for k in checker.where if k.startswith(key + ".")]:
                del checker.where[known]
            checker.where[key] = where
    return result


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    return value
