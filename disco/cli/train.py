"""`disco train FEATURES --out MODEL_DIR [hyperparameters]`."""

from __future__ import annotations

import argparse

from disco.cli import argtypes


def register(subparsers: argparse._SubParsersAction) -> None:
    from disco import params

    p = subparsers.add_parser(
        "train",
        help="train a masked multi-label classifier on embeddings or the release's features",
        description="FEATURES is an embed output directory, a dataset root with openmic-2018.npz "
        "(+ partitions/), or one with the release's vggish/*.json. Sigmoid outputs, binary "
        "cross-entropy masked by Y_mask, early stopping on validation mAP (best weights restored).",
    )
    p.add_argument("features")
    p.add_argument("--out", required=True, help="model directory")
    p.add_argument(
        "--preset",
        choices=tuple(params.PRESETS),
        default=params.DEFAULT_PRESET,
        help="training recipe; the flags below override its values ("
        + "; ".join(f"{k}: {v.description}" for k, v in params.PRESETS.items())
        + ")",
    )
    p.add_argument(
        "--model", choices=params.MODELS, default=None, help="auto: candidates chosen by validation"
    )
    p.add_argument("--batch-size", type=argtypes.positive_int, default=None)
    p.add_argument("--epochs", type=argtypes.positive_int, default=None)
    p.add_argument("--learning-rate", type=argtypes.positive_float, default=None)
    p.add_argument("--dropout", type=argtypes.fraction_closed_open, default=None)
    p.add_argument("--l2", type=argtypes.non_negative_float, default=None)
    p.add_argument("--patience", type=argtypes.positive_int, default=None)
    p.add_argument(
        "--ensemble",
        type=argtypes.positive_int,
        default=None,
        help="networks (seeds) averaged into the model",
    )
    p.add_argument("--seed", type=argtypes.non_negative_int, default=params.DEFAULT_SEED)
    p.add_argument(
        "--validation-fraction",
        type=argtypes.fraction_closed_open,
        default=params.DEFAULT_VALIDATION_FRACTION,
    )
    p.add_argument("--tune", action="store_true", help="Keras Tuner search before the final fit")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from disco.train import run_train

    s = run_train(
        args.features,
        args.out,
        preset=args.preset,
        model=args.model,
        batch_size=args.batch_size,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        dropout=args.dropout,
        l2=args.l2,
        patience=args.patience,
        ensemble=args.ensemble,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        tune=args.tune,
    )
    chosen = s.chosen if s.chosen == s.model else f"{s.model} → {s.chosen} ({s.selection})"
    print(f"{chosen}: best epoch {s.best_epoch}/{s.epochs_run}, validation mAP {s.val_mAP:.4f} → {args.out}")
    return 0
