"""`disco resample DATA --out DIR [beam options]`."""

from __future__ import annotations

import argparse

from disco import params, steps
from disco.cli import _params, argtypes

SPLIT_PARAMETERS = ("seed", "validation_fraction")

# `disco resample --help` ends with these.
EXAMPLES = ("disco resample data/demo/openmic-2018 --out work/resampled",)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "resample",
        help="decode every clip, mono 16 kHz 10 s, sharded TFRecords (Beam)",
        description="Decode every clip of an OpenMIC-2018 dataset (dir, .tgz or gs://), mix to mono, "
        "resample to 16 kHz with soxr HQ, pad/trim to 10 s and write sharded TFRecords per split. "
        "Undecodable clips go to DIR/failures.jsonl. Unknown options go to Beam unchanged "
        "(e.g. --runner DataflowRunner --project P --region R --temp_location gs://...).",
    )
    p.add_argument("data", help="dataset: openmic-2018/ dir, release .tgz or gs:// prefix")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--num-shards",
        type=argtypes.positive_int,
        default=None,
        help="shards per split (default ~1000 clips each)",
    )
    p.add_argument(
        "--threads",
        type=argtypes.positive_int,
        default=None,
        help="parallel decoders per worker (default: cores)",
    )
    p.add_argument(
        "--pool",
        choices=("auto", "process", "thread"),
        default="auto",
        help="decoders as processes or threads (auto: processes on the local runner with more than "
        f"{params.THREAD_DECODERS_MAX} decoders, else threads)",
    )
    _params.add_max_failure_ratio(p, failing="inputs fails")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    _params.add_arguments(p, SPLIT_PARAMETERS)
    p.set_defaults(func=handle, accepts_extra=True, remote_outputs=True)


def handle(args: argparse.Namespace) -> int:
    from disco.beam.resample import run_resample

    s = run_resample(
        args.data, args.out, **steps.keywords_for(run_resample, vars(args)), beam_args=args.extra
    )
    if args.json:
        print(s.to_json(), end="")
        return 0
    print(
        f"resampled {s.ok} clips ({', '.join(f'{k} {v}' for k, v in s.splits.items())}), "
        f"{s.failed} failed, {s.clips_per_s} clips/s → {args.out}"
    )
    for f in s.failures:
        print(f"  failed: {f['key']}  {f['path']}: {f['reason']}")
    return 0
