"""`disco augment RESAMPLED --out DIR --copies K [--seed S]`."""

from __future__ import annotations

import argparse

from disco import steps
from disco.cli import _params

# The augment step's arguments (run_augment's keywords) -> run parameters; Beam options come as
# extra command-line options here.
AUGMENT = {arg: param for arg, param in steps.STEP["augment"].arguments.items() if param != "beam_options"}

# `disco augment --help` ends with these.
EXAMPLES = ("disco augment work/resampled --out work/augmented --copies 2 --mixup 1",)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("augment", help="K augmented copies of each train clip (audiomentations, Beam)")
    p.add_argument("resampled", help="resample output directory")
    p.add_argument("--out", required=True, help="output directory")
    # As the pipeline declares them (disco.steps): --copies, --mixup, --masks, --seed.
    _params.add_arguments(p, AUGMENT.values())
    p.set_defaults(func=handle, accepts_extra=True, remote_outputs=True)


def handle(args: argparse.Namespace) -> int:
    from disco.beam.augment import run_augment

    s = run_augment(
        args.resampled,
        args.out,
        **{arg: getattr(args, param) for arg, param in AUGMENT.items()},
        beam_args=args.extra,
    )
    print(
        f"augmented: {s.records} records ({s.copies} copies + {s.mixup} mixtures per train clip) → {args.out}"
    )
    return 0
