"""argparse ``type=`` validators: a bad value is a usage error at parse time (one line, exit 2),
never a traceback from deep inside a step after minutes of work.

Each is a plain function from the option's string to its value, raising
``argparse.ArgumentTypeError`` with the reason; argparse prefixes the option name. Generated CLI
flags use them by name, so a step parameter's range is declared once, here.
"""

from __future__ import annotations

import argparse
import math


def _number(text: str, kind: type) -> int | float:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (epochs, batch sizes, shard counts, patience)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be a positive integer (>= 1)")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (copies, mixtures, corrupt clips: 0 means none)."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be a non-negative integer (>= 0)")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates)."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be a positive number (> 0)")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (regularisation weights)."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be a non-negative number (>= 0)")
    return value


def fraction_closed_open(text: str) -> float:
    """A fraction in [0, 1): 0 allowed, 1 not (validation fraction: something must stay in train;
    dropout: a rate of 1 drops every unit)."""
    value = _number(text, float)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} must be in [0, 1)")
    return value


def fraction_closed(text: str) -> float:
    """A fraction in [0, 1]."""
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} must be in [0, 1]")
    return value


def fraction_open(text: str) -> float:
    """A fraction in (0, 1)."""
    value = _number(text, float)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} must be in (0, 1)")
    return value
