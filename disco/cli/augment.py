"""`disco augment RESAMPLED --out DIR --copies K [--seed S]`."""

from __future__ import annotations

import argparse

from disco.cli import argtypes


def register(subparsers: argparse._SubParsersAction) -> None:
    from disco import params

    p = subparsers.add_parser("augment", help="K augmented copies of each train clip (audiomentations, Beam)")
    p.add_argument("resampled", help="resample output directory")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--copies", type=argtypes.non_negative_int, default=1, help="audiomentations copies per train clip"
    )
    p.add_argument(
        "--mixup",
        type=argtypes.non_negative_int,
        default=0,
        help="mixtures with other train clips per train clip",
    )
    p.add_argument(
        "--masks", action="store_true", help="add SpecAugment-style time and frequency masks to the copies"
    )
    p.add_argument("--seed", type=argtypes.non_negative_int, default=params.DEFAULT_SEED)
    p.set_defaults(func=handle, accepts_extra=True, remote_outputs=True)


def handle(args: argparse.Namespace) -> int:
    from disco.beam.augment import run_augment

    s = run_augment(
        args.resampled,
        args.out,
        copies=args.copies,
        mixup=args.mixup,
        masks=args.masks,
        seed=args.seed,
        beam_args=args.extra,
    )
    print(
        f"augmented: {s.records} records ({s.copies} copies + {s.mixup} mixtures per train clip) → {args.out}"
    )
    return 0
