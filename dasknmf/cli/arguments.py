"""argparse types of the ``dasknmf`` command: numbers checked as they are parsed.

Each raises :class:`argparse.ArgumentTypeError`, which argparse reports as a usage
error naming the option.

Examples
--------
>>> positive_int("3")
3
>>> document_frequency("5"), document_frequency("0.5")
(5, 0.5)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = [
    "document_frequency",
    "fraction",
    "non_negative_float",
    "non_negative_int",
    "positive_int",
]


def _bounded_int(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in "invalid int value" messages
    return parse


positive_int = _bounded_int(1)
non_negative_int = _bounded_int(0)


def non_negative_float(text: str) -> float:
    """A number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < 1:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def document_frequency(text: str) -> int | float:
    """A number of documents (an integer >= 1) or a proportion of them (in [0, 1])."""
    # scikit-learn's convention: an integer is a number of documents, a number with a
    # decimal point or an exponent a proportion of them.
    if text.strip().lstrip("+-").isdigit():
        count = int(text)
        if count < 1:
            raise argparse.ArgumentTypeError(f"a number of documents must be >= 1, got {count}")
        return count
    try:
        proportion = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= proportion <= 1:  # also rejects NaN
        raise argparse.ArgumentTypeError(
            f"a proportion must be in [0, 1], got {text} (an integer counts documents)"
        )
    return proportion
