"""How every ``disco`` command's ``--help`` looks: each option's default shown, examples kept as
written. Applied to every subcommand by :func:`disco.cli.build_parser`, so a command module only
declares its options (with help text) and an ``EXAMPLES`` tuple."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

# Actions whose default is implied by the action itself (a flag is off unless given).
_NO_DEFAULT_ACTIONS = (
    argparse._StoreTrueAction,
    argparse._StoreFalseAction,
    argparse._StoreConstAction,
    argparse._CountAction,
    argparse._HelpAction,
    argparse._VersionAction,
)


def shows_default(action: argparse.Action) -> bool:
    """Whether the help line of an option states its default, by the formatter or in its own text."""
    if isinstance(action, _NO_DEFAULT_ACTIONS) or not action.option_strings or action.required:
        return True
    text = action.help or ""
    return "%(default)" in text or "default" in text.lower() or action.default is not None


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the text already says what the default
    is; an option whose default is None must say so in its text (tests/test_cli.py checks).
    Descriptions are wrapped paragraph by paragraph; the examples keep their lines."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(EXAMPLES_HEADING):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return "\n\n".join(
            super(HelpFormatter, self)._fill_text(part, width, indent) for part in text.split("\n\n")
        )

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.option_strings
            and not isinstance(action, _NO_DEFAULT_ACTIONS)
            and not action.required
            and action.default is not None
            and action.default is not argparse.SUPPRESS
            and "%(default)" not in text
            and "default" not in text.lower()
        ):
            text += " (default: %(default)s)"
        return text


EXAMPLES_HEADING = "examples:"


def examples_epilog(examples: Sequence[str]) -> str:
    return EXAMPLES_HEADING + "\n" + "\n".join(f"  {line}" for line in examples)
