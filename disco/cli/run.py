"""`disco run`: the whole pipeline on this machine through kfp.local (what `make demo` runs)."""

from __future__ import annotations

import argparse
import os

from disco import steps
from disco.cli import _params

DEFAULT_RUNS_DIR = "runs"
DEFAULT_DATA = "data/demo/openmic-2018"  # where `make demo-data` writes the demo dataset


# `disco run --help` ends with these.
EXAMPLES = (
    "disco run --data data/demo/openmic-2018",
    "disco run --data openmic-2018-v1.0.0.tgz --embedder vggish --epochs 20",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="run the whole pipeline locally (kfp.local): resample, augment, embed, train, evaluate",
        description="Run the disco KFP pipeline on this machine with kfp.local's SubprocessRunner, "
        "showing progress step by step; prints the test metrics and where the report is. Finished "
        "steps are cached (shared by runs under the same parent directory).",
    )
    # The pipeline's parameters, declared once in disco.steps.
    _params.add_arguments(
        p,
        steps.CLI_PARAMETERS,
        data_uri={"default": DEFAULT_DATA, "required": False},
    )
    p.add_argument("--output-dir", default=None, help="run directory, local or gs:// (default runs/<run-id>)")
    p.add_argument("--no-cache", action="store_true", help="run every step, ignoring cached results")
    p.add_argument("--cache-dir", default=None, help="task cache (default <output-dir>/../.kfp-cache)")
    p.add_argument("--show-logs", action="store_true", help="stream every step's full log, not only progress")
    p.add_argument(
        "--json",
        action="store_true",
        help="print only the final metrics and the run's paths as JSON on stdout (progress stays on stderr)",
    )
    p.set_defaults(func=handle, remote_outputs=True)


def handle(args: argparse.Namespace) -> int:
    import json

    from disco.evaluate.report import metrics_table
    from disco.runner import default_run_id, run_local, step_title

    output_dir = args.output_dir or os.path.join(DEFAULT_RUNS_DIR, default_run_id())
    values = _params.values_from(args, steps.CLI_PARAMETERS)
    result = run_local(
        values.pop("data_uri"),
        output_dir,
        **values,
        cache=not args.no_cache,
        cache_dir=args.cache_dir,
        stream_all=args.show_logs,
    )
    cached = [step_title(task) for task in result.cached_tasks]
    if args.json:
        print(
            json.dumps(
                {
                    "metrics": _finite(result.metrics),
                    "seconds": round(result.seconds, 1),
                    "reused_from_cache": cached,
                    "output_dir": result.output_dir,
                    "metrics_path": result.metrics_path,
                    "report_path": result.report_path,
                    "log_path": result.log_path,
                },
                indent=2,
            )
        )
        return 0
    print()
    print(f"Test metrics (official split01 test, masked entries only), {result.seconds:.0f} s:")
    print(metrics_table(result.metrics))
    if cached:
        print(f"\nreused from cache: {', '.join(cached)}")
    print(f"\nmetrics: {result.metrics_path}")
    print(f"report:  {result.report_path or '(evaluate wrote no report.html)'}")
    print(f"log:     {result.log_path}")
    return 0


def _finite(value):
    """NaN (an undefined mean) as null: strict JSON has no NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
