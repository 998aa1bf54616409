"""argparse ``type=`` validators: a bad value is a usage error at parse time (one line, exit 2),
never a traceback from deep inside a step after minutes of work.

Each is a function from the option's string to its value (made by ``_ranged`` from its type and
range), raising ``argparse.ArgumentTypeError`` with the reason; argparse prefixes the option name. Generated CLI
flags use them by name, so a step parameter's range is declared once, here.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any


def _number(text: str, kind: type) -> int | float:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _ranged(kind: type, accepts: Callable[[Any], bool], requirement: str, doc: str):
    """A validator of ``kind`` values that ``accepts``; a refused one "must be ``requirement``"."""

    def validate(text: str):
        value = _number(text, kind)
        if not accepts(value):
            raise argparse.ArgumentTypeError(f"{value} must be {requirement}")
        return value

    validate.__doc__ = doc
    return validate


positive_int = _ranged(
    int,
    lambda v: v >= 1,
    "a positive integer (>= 1)",
    "An integer >= 1 (epochs, batch sizes, shard counts, patience).",
)
non_negative_int = _ranged(
    int,
    lambda v: v >= 0,
    "a non-negative integer (>= 0)",
    "An integer >= 0 (copies, mixtures, corrupt clips: 0 means none).",
)
positive_float = _ranged(
    float, lambda v: v > 0, "a positive number (> 0)", "A finite number > 0 (learning rates)."
)
non_negative_float = _ranged(
    float, lambda v: v >= 0, "a non-negative number (>= 0)", "A finite number >= 0 (regularisation weights)."
)
# Validation fraction: something must stay in train; dropout: a rate of 1 drops every unit.
fraction_closed_open = _ranged(
    float, lambda v: 0.0 <= v < 1.0, "in [0, 1)", "A fraction in [0, 1): 0 allowed, 1 not."
)
fraction_closed = _ranged(float, lambda v: 0.0 <= v <= 1.0, "in [0, 1]", "A fraction in [0, 1].")
fraction_open = _ranged(float, lambda v: 0.0 < v < 1.0, "in (0, 1)", "A fraction in (0, 1).")
