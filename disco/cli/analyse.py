"""`disco analyse RUNS_DIR [--out DIR]`."""

from __future__ import annotations

import argparse

# `disco analyse --help` ends with these.
EXAMPLES = (
    "disco analyse runs",
    "disco analyse runs --out runs/analysis",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "analyse",
        help="compare every evaluated run under a directory: results.csv, results.md, plots",
        description="Finds every evaluate output (metrics.json) under RUNS_DIR, from `disco run` or "
        "`disco evaluate --out`, and writes results.csv (one row per run: model, hyperparameters, "
        "test mAP, macro F1, random-forest mAP, AP per class; best mAP first), results.md, "
        "map_per_run.png and ap_per_class.png.",
    )
    p.add_argument("runs_dir", help="directory holding runs (searched recursively)")
    p.add_argument("--out", help="where the results go (default: RUNS_DIR/analysis)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import os

    from disco.evaluate.analyse import AP_PLOT, MAP_PLOT, RESULTS_CSV, RESULTS_MD, analyse_runs, summary_table

    out = args.out or os.path.join(args.runs_dir, "analysis")
    df = analyse_runs(args.runs_dir, out)
    print(summary_table(df))
    print()
    for name in (RESULTS_CSV, RESULTS_MD, MAP_PLOT, AP_PLOT):
        print(os.path.join(out, name))
    return 0
