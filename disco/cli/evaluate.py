"""`disco evaluate MODEL_DIR FEATURES --out DIR`."""

from __future__ import annotations

import argparse

from disco.cli import argtypes


def register(subparsers: argparse._SubParsersAction) -> None:
    from disco import params

    p = subparsers.add_parser(
        "evaluate",
        help="test-split AP/mAP/F1 over observed entries, random-forest recipe, HTML report",
    )
    p.add_argument("model_dir")
    p.add_argument("features")
    p.add_argument("--out", required=True)
    p.add_argument("--no-rf", action="store_true", help="skip the random-forest recipe")
    p.add_argument("--seed", type=argtypes.non_negative_int, default=params.DEFAULT_SEED)
    p.add_argument(
        "--validation-fraction",
        type=argtypes.fraction_closed_open,
        default=params.DEFAULT_VALIDATION_FRACTION,
    )
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import json
    import os

    from disco import params
    from disco.evaluate import metrics_table, run_evaluate

    run_evaluate(
        args.model_dir,
        args.features,
        args.out,
        rf_baseline=not args.no_rf,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
    )
    with open(os.path.join(args.out, params.METRICS_FILE)) as fh:
        print(metrics_table(json.load(fh)))
    print(f"\nreport: {os.path.join(args.out, params.REPORT_FILE)}")
    return 0
