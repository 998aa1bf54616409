"""`disco export MODEL_DIR --out DIR`: one SavedModel, waveform → 20 probabilities."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export embedder + classifier as one SavedModel (waveform in)")
    p.add_argument("model_dir", help="train step output")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--embedder",
        choices=("musicnn", "vggish"),
        default=None,
        help="default: the embedder the model was trained on",
    )
    p.add_argument("--vggish-handle", default=None)
    p.add_argument("--vggish-checkpoint", default=None)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from disco.train.export import run_export

    s = run_export(
        args.model_dir,
        args.out,
        embedder=args.embedder,
        vggish_handle=args.vggish_handle,
        vggish_checkpoint=args.vggish_checkpoint,
    )
    print(f"exported {s['saved_model']} ({s['input']} → {len(s['classes'])} probabilities)")
    return 0
