"""`disco demo-data`: write the offline demo dataset in OpenMIC-2018's layout."""

from __future__ import annotations

import argparse
import json

from disco import steps
from disco.cli import argtypes

# `disco demo-data --help` ends with these.
EXAMPLES = ("disco demo-data --out data/demo/openmic-2018 --clips 200",)


def register(subparsers: argparse._SubParsersAction) -> None:
    from disco import params

    p = subparsers.add_parser(
        "demo-data",
        help="generate an offline dataset in OpenMIC-2018's format (SoundFont-rendered)",
        description="Render clips of 1-3 General MIDI instruments (TimGM6mb.sf2 from pretty_midi, "
        "played by tinysoundfont) into OpenMIC-2018's exact layout and formats, with partial labels "
        "and an artist-grouped split01. Same seed, same dataset.",
    )
    p.add_argument("--out", required=True, help="output directory (becomes the dataset root)")
    p.add_argument("--clips", type=argtypes.positive_int, default=params.DEMO_CLIPS, help="number of clips")
    p.add_argument(
        "--seed", type=argtypes.non_negative_int, default=params.DEFAULT_SEED, help="same seed, same dataset"
    )
    p.add_argument(
        "--corrupt",
        type=argtypes.non_negative_int,
        default=0,
        help="break N train clips on purpose (dead-letter demo)",
    )
    p.add_argument(
        "--workers", type=argtypes.positive_int, default=None, help="processes (default: all cores)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier demo dataset in --out (else a non-empty --out is refused)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from disco.data.demo import generate_demo_dataset

    summary = generate_demo_dataset(args.out, **steps.keywords_for(generate_demo_dataset, vars(args)))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
        print(
            f"{summary['clips']} clips ({splits}; {summary['artists']} artists) in "
            f"{summary['seconds']} s → {args.out}"
        )
        for c in summary["corrupt"]:
            print(f"  corrupt on purpose: {c['key']} ({c['kind']})")
    return 0
