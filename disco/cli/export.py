"""`disco export MODEL_DIR --out DIR`: one SavedModel, waveform → 20 probabilities."""

from __future__ import annotations

import argparse

from disco import steps

# `disco export --help` ends with these.
EXAMPLES = ("disco export work/model --out work/export",)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export embedder + classifier as one SavedModel (waveform in)")
    p.add_argument("model_dir", help="train step output")
    p.add_argument("--out", required=True, help="output directory (the SavedModel)")
    p.add_argument(
        "--embedder",
        choices=("musicnn", "vggish"),
        default=None,
        help="default: the embedder the model was trained on",
    )
    p.add_argument(
        "--vggish-handle",
        default=None,
        help="VGGish TF Hub handle or path, as given to embed (default: the TF Hub one)",
    )
    p.add_argument(
        "--vggish-checkpoint",
        default=None,
        help="official vggish_model.ckpt, as given to embed (default: none, use the handle)",
    )
    p.add_argument(
        "--pca-params",
        default=None,
        help="vggish_pca_params.npz, as given to embed (default: none; a model trained on PCA'd "
        "features is refused without it)",
    )
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from disco.train.export import run_export

    s = run_export(args.model_dir, args.out, **steps.keywords_for(run_export, vars(args)))
    print(f"exported {s['saved_model']} ({s['input']} → {len(s['classes'])} probabilities)")
    return 0
