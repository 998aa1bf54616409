"""`disco evaluate MODEL_DIR FEATURES --out DIR`."""

from __future__ import annotations

import argparse

from disco.cli import _params

SPLIT_PARAMETERS = ("seed", "validation_fraction")

# `disco evaluate --help` ends with these.
EXAMPLES = ("disco evaluate work/model work/embeddings --out work/evaluation",)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="test-split AP/mAP/F1 over observed entries, random-forest recipe, HTML report",
    )
    p.add_argument("model_dir", help="train step output")
    p.add_argument("features", help="embed output (its test split is scored)")
    p.add_argument("--out", required=True, help="output directory (metrics.json, report.html)")
    p.add_argument("--no-rf", action="store_true", help="skip the random-forest recipe")
    _params.add_arguments(p, SPLIT_PARAMETERS)
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
        **_params.values_from(args, SPLIT_PARAMETERS),
    )
    with open(os.path.join(args.out, params.METRICS_FILE)) as fh:
        print(metrics_table(json.load(fh)))
    print(f"\nreport: {os.path.join(args.out, params.REPORT_FILE)}")
    return 0
