"""Collecting every problem of a job file, each named by file, line and key path.

The rules of :mod:`dasknmf.jobs.rules` read values through a :class:`Checker`: a
value that fails its check is recorded (with the message the estimator would give,
from :mod:`dasknmf.params`) and parsing goes on, so that one run of ``dasknmf
validate`` reports all the mistakes of a file at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from dasknmf.errors import DaskNMFError, InvalidParameterError

__all__ = [
    "MISSING",
    "Checker",
    "JobConfigError",
    "JobConfigNotFoundError",
    "Problem",
    "scan_keys",
]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: Marks a key absent from the file (``None`` is YAML's ``null``, a value).
MISSING: Any = _Missing()


@dataclass(frozen=True)
class Problem:
    """One mistake: where it was made (``file:line`` or ``--set ...``), the key path
    (``model.n_components``) and what is wrong."""

    where: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class JobConfigError(InvalidParameterError):
    """A job file (or a ``--set`` override) does not follow the schema.

    ``str(error)`` is a header naming the file, then one line per problem.

    Attributes
    ----------
    source : str
        The file (or ``<name>`` for a mapping) that was checked.
    problems : tuple of Problem
        Every problem found, in the order of the file.

    Examples
    --------
    >>> err = JobConfigError("job.yaml", [Problem("job.yaml:3", "model.k", "unknown key")])
    >>> print(err)
    invalid job configuration job.yaml (1 problem):
      job.yaml:3: unknown key
    """

    def __init__(self, source: str, problems: Iterable[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        n = len(self.problems)
        lines = [f"invalid job configuration {source} ({n} problem{'s' if n != 1 else ''}):"]
        lines += [f"  {p}" for p in self.problems]
        super().__init__("\n".join(lines))

    @property
    def keys(self) -> list[str]:
        """The key path of each problem."""
        return [p.key for p in self.problems]


class JobConfigNotFoundError(DaskNMFError, FileNotFoundError):
    """The job file itself does not exist."""


def scan_keys(text: str) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """The 1-based line of every key path of a YAML document, and the ``(key path,
    line)`` of every key repeated within its mapping (YAML keeps the last one
    silently; a job file that says two things is a mistake).

    Parsed with PyYAML's safe loader (``yaml.compose``: nodes only, no object is
    constructed). Keys that are not plain scalars are skipped.

    Examples
    --------
    >>> scan_keys("model:\\n  n_components: 3\\n  n_components: 4\\n")
    ({'model': 1, 'model.n_components': 2}, [('model.n_components', 3)])
    """
    lines: dict[str, int] = {}
    duplicates: list[tuple[str, int]] = []

    def walk(node: Any, prefix: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            path, line = f"{prefix}{key_node.value}", key_node.start_mark.line + 1
            if key_node.value in seen:
                duplicates.append((path, line))
            seen.add(key_node.value)
            lines.setdefault(path, line)
            walk(value_node, path + ".")

    walk(yaml.compose(text, Loader=yaml.SafeLoader), "")
    return lines, duplicates


class Checker:
    """Reads values out of the parsed YAML, recording a :class:`Problem` for each bad one.

    Parameters
    ----------
    source : str
        Name of the file (used where no line is known).
    where : mapping of str to str, optional
        Location of each key path: ``"job.yaml:12"`` or ``"--set model.tol=-1"``. A key
        without an entry is located at its closest listed ancestor, else at ``source``.

    Examples
    --------
    >>> c = Checker("job.yaml")
    >>> c.integer({"max_iter": -1}, "model.max_iter", low=0, default=200)
    MISSING
    >>> print(c.problems[0])
    job.yaml: The 'model.max_iter' parameter must be an int in [0, inf]; got -1.
    """

    def __init__(self, source: str, where: Mapping[str, str] | None = None) -> None:
        self.source = source
        self.where = dict(where or {})
        self.problems: list[Problem] = []

    # -- recording ---------------------------------------------------------------------

    def locate(self, key: str) -> str:
        """Where ``key`` (or its closest ancestor present in the file) was written."""
        parts = key.split(".")
        for n in range(len(parts), 0, -1):
            found = self.where.get(".".join(parts[:n]))
            if found is not None:
                return found
        return self.source

    def error(self, key: str, message: str) -> None:
        """Record a problem of ``key``."""
        self.problems.append(Problem(self.locate(key), key, message))

    def attempt(self, key: str, check: Callable[[], Any]) -> Any:
        """``check()``, or :data:`MISSING` with its ``InvalidParameterError`` recorded."""
        try:
            return check()
        except InvalidParameterError as exc:
            self.error(key, str(exc))
            return MISSING

    def raise_if_any(self) -> None:
        """Raise :class:`JobConfigError` with every problem, if there is any: those of
        the file in the order of its lines, then those of ``--set`` items."""
        if self.problems:
            raise JobConfigError(self.source, sorted(self.problems, key=self._order))

    def _order(self, problem: Problem) -> tuple[int, int]:
        _, sep, line = problem.where.rpartition(":")
        if problem.where.startswith(self.source) and sep and line.isdigit():
            return 0, int(line)
        return (0, 0) if problem.where == self.source else (1, 0)

    # -- structure ---------------------------------------------------------------------

    def section(
        self,
        mapping: Mapping[str, Any],
        key: str,
        allowed: Iterable[str],
        *,
        required: bool = False,
    ) -> dict[str, Any]:
        """The mapping under ``key`` (``{}`` when absent or ``null``), with its unknown
        keys recorded; a missing ``required`` section is recorded too."""
        allowed = list(allowed)
        value = mapping.get(key.rsplit(".", 1)[-1], MISSING)
        if value is MISSING or value is None:
            if required:
                self.error(key, f"missing required section {key!r} (keys: {', '.join(allowed)}).")
            return {}
        if not isinstance(value, Mapping):
            self.error(
                key,
                f"{key!r} must be a mapping with keys {', '.join(allowed)}; got {show(value)}.",
            )
            return {}
        self.known_keys(value, allowed, section=key)
        return dict(value)

    def known_keys(
        self, mapping: Mapping[str, Any], allowed: Iterable[str], *, section: str = ""
    ) -> None:
        """Record every key of ``mapping`` outside ``allowed``, suggesting the closest."""
        allowed = list(allowed)
        prefix = f"{section}." if section else ""
        where = f" of {section!r}" if section else ""
        for name in mapping:
            if name in allowed:
                continue
            key = prefix + str(name)
            close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {prefix + close[0]!r}?" if close else "."
            self.error(
                key, f"unknown key {key!r}{hint} Allowed keys{where}: {', '.join(allowed)}."
            )

    # -- scalar values -----------------------------------------------------------------
    #
    # Each returns the checked value, the default when the key is absent, or MISSING
    # (with a problem recorded). The messages come from dasknmf.params, the checks the
    # estimator itself uses, so a job file and NMF(...) reject a value in the same words.

    def _get(self, mapping: Mapping[str, Any], key: str, default: Any, required: str) -> Any:
        name = key.rsplit(".", 1)[-1]
        value = mapping.get(name, MISSING)
        if value is MISSING and default is MISSING:
            self.error(key, f"missing required key {key!r} ({required}).")
        return default if value is MISSING else value

    def integer(
        self,
        mapping: Mapping[str, Any],
        key: str,
        *,
        low: int,
        default: Any = MISSING,
        allow_none: bool = False,
    ) -> Any:
        """An int ``>= low`` (or ``null`` with ``allow_none``)."""
        from dasknmf import params

        value = self._get(mapping, key, default, f"an int >= {low}")
        if value is MISSING or (value is None and allow_none):
            return value
        return self.attempt(
            key, lambda: params.check_int(key, value, low=low, allow_none=allow_none)
        )

    def real(
        self,
        mapping: Mapping[str, Any],
        key: str,
        *,
        low: float,
        high: float | None = None,
        default: Any = MISSING,
    ) -> Any:
        """A finite number within ``[low, high]``."""
        from dasknmf import params

        value = self._get(mapping, key, default, f"a number >= {low}")
        if value is MISSING:
            return value
        number = yaml11_float(value)
        return self.attempt(key, lambda: params.check_real(key, number, low=low, high=high))

    def choice(
        self,
        mapping: Mapping[str, Any],
        key: str,
        options: tuple[Any, ...],
        *,
        default: Any = MISSING,
    ) -> Any:
        """One of ``options`` (compared with type, so ``1`` is not ``True``)."""
        from dasknmf import params

        value = self._get(mapping, key, default, "one of " + ", ".join(map(repr, options)))
        if value is MISSING:
            return value
        checked = self.attempt(key, lambda: params.check_option(key, value, options))
        if checked is MISSING and isinstance(value, str):
            self.suggest(value, [o for o in options if isinstance(o, str)])
        return checked

    def suggest(self, value: str, options: Iterable[str]) -> None:
        """Append "did you mean ...?" to the last problem when an option is close."""
        close = difflib.get_close_matches(value, list(options), n=1, cutoff=0.6)
        if close and self.problems:
            last = self.problems[-1]
            message = f"{last.message} Did you mean {close[0]!r}?"
            self.problems[-1] = Problem(last.where, last.key, message)

    def boolean(self, mapping: Mapping[str, Any], key: str, *, default: Any) -> Any:
        """``true`` or ``false``."""
        value = self._get(mapping, key, default, "true or false")
        if value is MISSING or isinstance(value, bool):
            return value
        self.error(key, f"The {key!r} parameter must be true or false; got {show(value)}.")
        return MISSING

    def string(
        self,
        mapping: Mapping[str, Any],
        key: str,
        *,
        default: Any = MISSING,
        required: str = "a string",
    ) -> Any:
        """A non-empty string."""
        value = self._get(mapping, key, default, required)
        if value is MISSING or value is default:
            return value
        if not isinstance(value, str) or not value:
            self.error(
                key, f"The {key!r} parameter must be a non-empty string; got {show(value)}."
            )
            return MISSING
        return value


def yaml11_float(value: Any) -> Any:
    """PyYAML reads YAML 1.1, where ``1e-4`` (no dot) is a string: accept it as the
    number everyone means. Anything else is returned unchanged for the check."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if number == number and abs(number) != float("inf"):
            return number
    return value


def show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"
