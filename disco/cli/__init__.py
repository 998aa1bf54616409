"""The ``disco`` command. Each subcommand lives in its own module under ``disco.cli`` and exposes
``register(subparsers)``; heavy libraries (TensorFlow, Beam) are imported inside the handlers so
that ``disco --help`` and ``disco info`` stay fast."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from disco import __version__
from disco.cli._help import HelpFormatter, examples_epilog
from disco.errors import DiscoError

# Subcommand modules are discovered, so adding a command is adding a file; this tuple only fixes
# the order in `disco --help` (the pipeline's order), others follow alphabetically.
COMMAND_ORDER = (
    "run",
    "info",
    "verify",
    "demo_data",
    "resample",
    "augment",
    "embed",
    "train",
    "evaluate",
    "export",
    "predict",
    "analyse",
    "compile",
    "submit",
)


# Helper modules of the CLI that are not subcommands.
HELPER_MODULES = frozenset({"argtypes"})


def command_modules() -> list[str]:
    found = {
        m.name
        for m in pkgutil.iter_modules(__path__)
        if not m.name.startswith("_") and m.name not in HELPER_MODULES
    }
    ordered = [name for name in COMMAND_ORDER if name in found]
    return ordered + sorted(found - set(ordered))


log = logging.getLogger("disco")


# Exit statuses (README, "The `disco` command"): a step or run that failed is 1; a usage or input error
# (argparse's own, or a DiscoError naming the file and reason) is 2.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

MAIN_EXAMPLES = (
    "make demo-data && disco run --data data/demo/openmic-2018",
    "disco info data/demo/openmic-2018 -q",
)


def _add_verbosity(parser: argparse.ArgumentParser, *, default) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", default=default, help="debug logging")
    group.add_argument("-q", "--quiet", action="store_true", default=default, help="warnings and errors only")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disco",
        description="Musical instrument recognition on OpenMIC-2018: resample, augment, embed, "
        "train, evaluate, export and predict.\n\nExit status: 0 ok, 1 a step or run failed, "
        "2 usage or input error.",
        formatter_class=HelpFormatter,
        epilog=examples_epilog(MAIN_EXAMPLES),
    )
    parser.add_argument("--version", action="version", version=f"disco {__version__}")
    _add_verbosity(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in command_modules():
        module = importlib.import_module(f"disco.cli.{name}")
        before = set(sub.choices)
        module.register(sub)
        for command in set(sub.choices) - before:
            sub_parser = sub.choices[command]
            sub_parser.formatter_class = HelpFormatter
            sub_parser.epilog = examples_epilog(module.EXAMPLES)
            # Also after the subcommand (`disco info D -q`); SUPPRESS keeps the main parser's value
            # when the option is given before it.
            _add_verbosity(sub_parser, default=argparse.SUPPRESS)
    return parser


def configure_logging(*, verbose: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


# Options that name a command's output location. Commands whose library step writes gs:// itself
# declare `remote_outputs=True`; the others refuse a gs:// output instead of making a local "gs:" folder.
OUTPUT_OPTIONS = ("out", "output_dir")


def check_outputs(args: argparse.Namespace) -> None:
    """Every output location, before any work: no existing file in the way, and a gs:// one
    supported and writable now (credentials, bucket, permission), so a doomed run fails in seconds."""
    from disco.remote import check_output

    for name in OUTPUT_OPTIONS:
        value = getattr(args, name, None)
        if value:
            check_output(value, remote_ok=getattr(args, "remote_outputs", False))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Subcommands that pass options through to Beam declare `accepts_extra`; for the rest an
    # unknown option is an error, as argparse would normally say.
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    configure_logging(verbose=args.verbose, quiet=args.quiet)
    try:
        check_outputs(args)
        rc = args.func(args)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
    except DiscoError as exc:
        # One line, whatever a library's message held (a wrapped error may span several).
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"disco {args.command}: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `disco info … | head`: the reader has what it wanted. Python would print a traceback at
        # exit flushing stdout again, so it is pointed at /dev/null; 141 is a shell's SIGPIPE status.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return int(rc or EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
