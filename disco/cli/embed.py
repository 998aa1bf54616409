"""`disco embed AUDIO... --out DIR --embedder {vggish,musicnn} [beam options]`."""

from __future__ import annotations

import argparse

from disco import params, steps
from disco.cli import _params, argtypes

# `disco embed --help` ends with these.
EXAMPLES = ("disco embed work/resampled work/augmented --out work/embeddings --embedder musicnn",)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "embed",
        help="embed resampled records with VGGish or musicnn (Beam RunInference)",
        description="Read resampled (and augmented) record directories, run the embedder in batches "
        "through Beam's RunInference and write sharded embedding TFRecords per split. Unknown options "
        "go to Beam unchanged.",
    )
    p.add_argument("audio", nargs="+", help="resample / augment output directories")
    p.add_argument("--out", required=True, help="output directory")
    _params.add_arguments(p, ("embedder", "vggish_handle"))  # as the pipeline declares them
    p.add_argument(
        "--vggish-checkpoint",
        default=None,
        help="official vggish_model.ckpt instead of a handle (default: none, use the handle)",
    )
    p.add_argument(
        "--pca-params",
        default=None,
        help="vggish_pca_params.npz: emit PCA'd, quantised features (default: none, raw embeddings)",
    )
    p.add_argument(
        "--precision",
        choices=("float32", "bfloat16"),
        default=None,
        help="default: bfloat16 where the hardware computes it natively, else float32",
    )
    p.add_argument(
        "--batch-size",
        type=argtypes.positive_int,
        default=params.EMBED_BATCH_SIZE,
        help="clips per model call (more may pay on a GPU; on CPU memory grows with it)",
    )
    _params.add_max_failure_ratio(p, failing="records cannot be decoded")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=handle, accepts_extra=True, remote_outputs=True)


def handle(args: argparse.Namespace) -> int:
    from disco.beam.embed import run_embed

    s = run_embed(args.audio, args.out, **steps.keywords_for(run_embed, vars(args)), beam_args=args.extra)
    if args.json:
        print(s.to_json(), end="")
    else:
        print(
            f"embedded {s.records} clips with {s.embedder} ({s.frames}x{s.dim}, "
            f"{s.precision}) at {s.clips_per_s} clips/s → {args.out}"
        )
        for f in s.failures:
            print(f"  not embedded: {f.get('key') or '<unreadable record>'} in {f['shard']}: {f['reason']}")
    return 0
