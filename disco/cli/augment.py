"""`disco augment RESAMPLED --out DIR --copies K [--seed S]`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from disco import params

    p = subparsers.add_parser("augment", help="K augmented copies of each train clip (audiomentations, Beam)")
    p.add_argument("resampled", help="resample output directory")
    p.add_argument("--out", required=True)
    p.add_argument("--copies", type=int, required=True)
    p.add_argument("--seed", type=int, default=params.DEFAULT_SEED)
    p.set_defaults(func=handle, accepts_extra=True)


def handle(args: argparse.Namespace) -> int:
    from disco.beam.augment import run_augment

    s = run_augment(args.resampled, args.out, copies=args.copies, seed=args.seed, beam_args=args.extra)
    print(f"augmented: {s['records']} records ({s['copies']} copies per train clip) → {args.out}")
    return 0
