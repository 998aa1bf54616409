"""CLI options generated from :mod:`disco.steps`: a command that takes a pipeline parameter gets
the same flag, type, default, choices and help as ``disco run``, declared once in the spec."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from disco import params
from disco.cli import argtypes
from disco.steps import RUN_PARAMETER, preset_default_text, takes_preset


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
        if takes_preset(p) and p.type is not bool:
            # "the preset's": the command's default (the pipeline's sentinel, or None for `disco
            # train`), also when typed as the sentinel the help names.
            unset = kwargs["default"]
            shown = f"{p.default!r} = " if unset is not None else ""
            kwargs["help"] = f"{p.help} (default: {shown}{preset_default_text(p)})"
            if not p.choices:
                kwargs["type"] = _or_preset(kwargs["type"], p.default, unset)
        parser.add_argument(p.cli_flag, **kwargs)


def _or_preset(parse, sentinel, unset):
    """``parse``, except that the sentinel asks for the preset's value (``unset``)."""

    def parse_or_preset(text: str):
        try:
            if float(text) == sentinel:
                return unset
        except ValueError:
            pass
        return parse(text)

    parse_or_preset.__name__ = getattr(parse, "__name__", "value")  # argparse names it in errors
    return parse_or_preset


def check_values(values: dict[str, Any]) -> None:
    """ConfigError for a value the flag of its run parameter would refuse (range, choices), and for a
    training recipe no preset resolves: what ``disco run`` checks before it starts, for values that
    come another way (``disco submit --param``), so a bad one fails here and not on the cluster
    after the embedding."""
    from disco import steps
    from disco.errors import ConfigError
    from disco.train.train import preset_overrides, resolve_preset

    for name, value in values.items():
        p = RUN_PARAMETER.get(name)
        if p is None or (takes_preset(p) and value == p.default):
            continue
        if p.choices and value not in p.choices:
            raise ConfigError(f"{name}={value!r}: choose one of {', '.join(map(str, p.choices))}")
        if p.check:
            try:
                getattr(argtypes, p.check)(str(value))
            except argparse.ArgumentTypeError as exc:
                raise ConfigError(f"{name}: {exc}") from None
    run = steps.run_values({k: v for k, v in values.items() if k in RUN_PARAMETER})
    resolve_preset(run["preset"], **preset_overrides(**steps.hyperparameters(run)))


def add_max_failure_ratio(parser: argparse.ArgumentParser, *, failing: str) -> None:
    """``--max-failure-ratio``, the same in every command of a step that dead-letters bad inputs;
    ``failing`` says what counts as a failure there."""
    parser.add_argument(
        "--max-failure-ratio",
        type=argtypes.fraction_closed,
        default=params.DEFAULT_MAX_FAILURE_RATIO,
        help=f"fail, publishing nothing, when more than this fraction of {failing} "
        "(default %(default)s: only when all fail; an empty output always fails)",
    )


def values_from(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The named run parameters' values from parsed CLI arguments."""
    return {name: getattr(args, name) for name in names}
