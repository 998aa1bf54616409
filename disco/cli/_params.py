"""CLI options generated from :mod:`disco.steps`: a command that takes a pipeline parameter gets
the same flag, type, default, choices and help as ``disco run``, declared once in the spec. And
the way back: the parsed options as a library function's keyword arguments."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from disco.cli import argtypes
from disco.steps import RUN_PARAMETER


def add_arguments(parser: argparse.ArgumentParser, names: Iterable[str], **overrides: Any) -> None:
    """Add the CLI options of the named run parameters (dest = the parameter name).
    ``overrides`` maps a name to add_argument keywords that differ for this command (e.g. a default)."""
    for name in names:
        p = RUN_PARAMETER[name]
        kwargs: dict[str, Any] = {"dest": p.name, "help": p.help}
        if p.type is bool:
            kwargs.update(action="store_true")
        else:
            metavar = p.cli_flag.lstrip("-").upper().replace("-", "_")
            value_type = getattr(argtypes, p.check) if p.check else p.type
            kwargs.update(type=value_type, default=p.default, required=p.required, metavar=metavar)
            if p.choices:
                kwargs.update(choices=p.choices, metavar="{" + ",".join(map(str, p.choices)) + "}")
        kwargs.update(overrides.get(name, {}))
        parser.add_argument(p.cli_flag, **kwargs)


def values_from(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The named run parameters' values from parsed CLI arguments."""
    return {name: getattr(args, name) for name in names}


def library_keywords(fn: Callable[..., Any], args: argparse.Namespace) -> dict[str, Any]:
    """Every keyword-only argument of the library function ``fn`` that the command has an option
    for (an option's dest is the keyword's name), so a handler does not restate each option; the
    keywords the command has no option for keep ``fn``'s defaults."""
    keywords = inspect.signature(fn).parameters.values()
    return {
        p.name: getattr(args, p.name) for p in keywords if p.kind is p.KEYWORD_ONLY and hasattr(args, p.name)
    }
