"""`disco train FEATURES --out MODEL_DIR [hyperparameters]`."""

from __future__ import annotations

import argparse

from disco import params, steps
from disco.cli import _params, argtypes

TRAIN_PARAMETERS = (*steps.STEP["train"].arguments.values(), "validation_fraction")
# The train parameters a preset sets (the rest: the preset's name, the seed, the split).
PRESET_FIELDS = tuple(n for n in TRAIN_PARAMETERS if n in params.TrainPreset.__dataclass_fields__)

# `disco train --help` ends with these.
EXAMPLES = ("disco train work/embeddings --out work/model --model attention",)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a masked multi-label classifier on embeddings or the release's features",
        description="FEATURES is an embed output directory, a dataset root with openmic-2018.npz "
        "(+ partitions/), or one with the release's vggish/*.json. Sigmoid outputs, binary "
        "cross-entropy masked by Y_mask, early stopping on validation mAP (best weights restored).",
    )
    p.add_argument("features", help="embed output, or a dataset root with the release's features")
    p.add_argument("--out", required=True, help="model directory")
    # The train step's parameters as the pipeline declares them (disco.steps), and the split's. A
    # hyperparameter flag left out takes the chosen preset's value; one given always overrides it.
    _params.add_arguments(
        p,
        TRAIN_PARAMETERS,
        **{name: {"default": None} for name in PRESET_FIELDS},
        preset={
            "help": "training recipe (params.PRESETS); the hyperparameter flags given override its fields"
        },
    )
    p.add_argument(
        "--ensemble",
        type=argtypes.positive_int,
        default=None,
        help="networks (seeds) averaged into the model (default: the preset's)",
    )
    p.add_argument(
        "--mixup-alpha",
        type=argtypes.non_negative_float,
        default=None,
        help="mixup on the embeddings, lam ~ Beta(alpha, alpha); 0 turns it off (default: the preset's)",
    )
    p.add_argument(
        "--refits",
        type=argtypes.non_negative_int,
        default=None,
        help="auto: networks refitted on all training data for the epoch count the fold networks' "
        "pooled out-of-fold mAP chose, and averaged; 0 averages the fold networks (default: the preset's)",
    )
    p.add_argument("--tune", action="store_true", help="Keras Tuner search before the final fit")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from disco.train import run_train

    s = run_train(
        args.features,
        args.out,
        **_params.values_from(args, TRAIN_PARAMETERS),
        ensemble=args.ensemble,
        mixup_alpha=args.mixup_alpha,
        refits=args.refits,
        tune=args.tune,
    )
    chosen = s.chosen if s.chosen == s.model else f"{s.model} → {s.chosen} ({s.selection})"
    held_out = "validation" if s.selection is None else "out-of-fold"
    print(f"{chosen}: best epoch {s.best_epoch}/{s.epochs_run}, {held_out} mAP {s.val_mAP:.4f} → {args.out}")
    return 0
