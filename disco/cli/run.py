"""`disco run`: the whole pipeline on this machine through kfp.local (what `make demo` runs)."""

from __future__ import annotations

import argparse
import os

from disco import params
from disco.cli import argtypes

DEFAULT_RUNS_DIR = "runs"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="run the whole pipeline locally (kfp.local): resample, augment, embed, train, evaluate",
        description="Run the disco KFP pipeline on this machine with kfp.local's SubprocessRunner, "
        "showing progress step by step; prints the test metrics and where the report is. Finished "
        "steps are cached (shared by runs under the same parent directory).",
    )
    p.add_argument(
        "--data", default="data/demo/openmic-2018", help="dataset: directory, release .tgz or gs://"
    )
    p.add_argument("--output-dir", default=None, help="run directory, local or gs:// (default runs/<run-id>)")
    p.add_argument("--embedder", default="musicnn", choices=("musicnn", "vggish"), help="embedding model")
    p.add_argument(
        "--vggish-handle", default=params.VGGISH_DEFAULT_HANDLE, help="VGGish TF Hub handle or path"
    )
    p.add_argument(
        "--copies",
        type=argtypes.non_negative_int,
        default=1,
        help="augmented copies per training clip (0: none)",
    )
    p.add_argument(
        "--mixup",
        type=argtypes.non_negative_int,
        default=0,
        help="mixtures with other training clips per training clip",
    )
    p.add_argument(
        "--masks", action="store_true", help="add SpecAugment-style time and frequency masks to the copies"
    )
    p.add_argument(
        "--preset",
        choices=tuple(params.PRESETS),
        default=params.DEFAULT_PRESET,
        help="training recipe (disco/params.py PRESETS); the flags below override it",
    )
    p.add_argument(
        "--model", default=None, choices=params.MODELS, help="classifier (auto: chosen by validation)"
    )
    p.add_argument("--epochs", type=argtypes.positive_int, default=None)
    p.add_argument("--batch-size", type=argtypes.positive_int, default=None)
    p.add_argument("--learning-rate", type=argtypes.positive_float, default=None)
    p.add_argument("--dropout", type=argtypes.fraction_closed_open, default=None)
    p.add_argument("--l2", type=argtypes.non_negative_float, default=None)
    p.add_argument("--patience", type=argtypes.positive_int, default=None)
    p.add_argument("--seed", type=argtypes.non_negative_int, default=params.DEFAULT_SEED)
    p.add_argument(
        "--validation-fraction",
        type=argtypes.fraction_closed_open,
        default=params.DEFAULT_VALIDATION_FRACTION,
    )
    p.add_argument(
        "--release-features",
        action="store_true",
        help="use the release's precomputed VGGish features (openmic-2018.npz): skips resample/augment/embed",
    )
    p.add_argument("--beam-options", default="", help="options passed to the Beam steps, one quoted string")
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
    result = run_local(
        args.data,
        output_dir,
        embedder=args.embedder,
        vggish_handle=args.vggish_handle,
        augment_copies=args.copies,
        augment_mixup=args.mixup,
        augment_masks=args.masks,
        preset=args.preset,
        # A flag not given stands at the default preset's value, which the train step reads as
        # "from the chosen preset" (pipeline parameters cannot be left unset).
        **{
            k: getattr(params.PRESETS[params.DEFAULT_PRESET], k)
            if getattr(args, k) is None
            else getattr(args, k)
            for k in ("model", "epochs", "batch_size", "learning_rate", "dropout", "l2", "patience")
        },
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        use_release_features=args.release_features,
        beam_options=args.beam_options,
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
