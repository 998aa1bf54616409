"""The ``disco`` command. Each subcommand lives in its own module under ``disco.cli`` and exposes
``register(subparsers)``; heavy libraries (TensorFlow, Beam) are imported inside the handlers so
that ``disco --help`` and ``disco info`` stay fast."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from disco import __version__
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disco",
        description="Musical instrument recognition on OpenMIC-2018: resample, augment, embed, "
        "train, evaluate, export and predict.",
    )
    parser.add_argument("--version", action="version", version=f"disco {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in command_modules():
        module = importlib.import_module(f"disco.cli.{name}")
        module.register(sub)
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
    except DiscoError as exc:
        # One line, whatever a library's message held (a wrapped error may span several).
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"disco {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
