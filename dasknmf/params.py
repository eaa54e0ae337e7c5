"""Parameter checks shared by the estimator and the configuration loader.

Each check raises :class:`~dasknmf.errors.InvalidParameterError` naming the
parameter, the value given and what is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

from dasknmf.errors import InvalidParameterError


def _fail(name: str, value: Any, allowed: str) -> InvalidParameterError:
    return InvalidParameterError(f"The {name!r} parameter must be {allowed}; got {value!r}.")


def check_int(
    name: str,
    value: Any,
    *,
    low: int | None = None,
    high: int | None = None,
    allow_none: bool = False,
) -> int | None:
    """``value`` as an int within ``[low, high]`` (``None`` if allowed)."""
    if value is None and allow_none:
        return None
    bounds = f" in [{low}, {'inf' if high is None else high}]"
    allowed = f"an int{bounds}" + (" or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise _fail(name, value, allowed)
    if (low is not None and value < low) or (high is not None and value > high):
        raise _fail(name, value, allowed)
    return int(value)


def check_real(
    name: str, value: Any, *, low: float | None = None, high: float | None = None
) -> float:
    """``value`` as a float within ``[low, high]``."""
    allowed = "a real number"
    if low is not None and high is not None:
        allowed += f" in [{low}, {high}]"
    elif low is not None:
        allowed += f" >= {low}"
    if isinstance(value, bool) or not isinstance(value, Real) or value != value:
        raise _fail(name, value, allowed)
    if (low is not None and value < low) or (high is not None and value > high):
        raise _fail(name, value, allowed)
    return float(value)


def check_option(name: str, value: Any, options: Sequence[Any]) -> Any:
    """``value`` if it is one of ``options`` (compared with ``==`` and type)."""
    for option in options:
        if type(value) is type(option) and value == option:
            return value
        if value is None and option is None:
            return value
    raise _fail(name, value, "one of " + ", ".join(repr(o) for o in options))


def check_chunks(name: str, value: Any) -> tuple[int, int] | None:
    """``None`` or a pair of positive ints (a tile shape)."""
    if value is None:
        return None
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, Integral) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return int(value[0]), int(value[1])
    raise _fail(name, value, "None or a pair of positive ints (rows, columns)")


def check_random_state(name: str, value: Any) -> Any:
    """``None``, a non-negative int, a ``numpy.random.RandomState`` or ``Generator``."""
    import numpy as np

    if value is None or isinstance(value, (np.random.RandomState, np.random.Generator)):
        return value
    if isinstance(value, Integral) and not isinstance(value, bool) and value >= 0:
        return int(value)
    raise _fail(
        name, value, "None, an int >= 0, a numpy.random.RandomState or a numpy.random.Generator"
    )


def check_float_dtype(name: str, value: Any) -> np.dtype | None:
    """``None`` or float32/float64 as a NumPy dtype."""
    if value is None:
        return None
    allowed = "None, float32 or float64"
    try:
        dtype = np.dtype(value)
    except TypeError as exc:
        raise _fail(name, value, allowed) from exc
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise _fail(name, value, allowed)
    return dtype
