"""`disco info DATA`: what a dataset holds, and whether it is well-formed."""

from __future__ import annotations

import argparse
import json

from disco.cli import argtypes


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info",
        help="summarise an OpenMIC-2018 dataset (dir, .tgz or gs://)",
        description="Clips, split sizes, labelled pairs and positives per class, missing or extra "
        "audio. Exits 2 with the file and line on a malformed dataset.",
    )
    p.add_argument("data", help="openmic-2018/ directory, release .tgz, or gs://bucket/prefix")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--partial",
        action="store_true",
        help="accept an excerpt: partition keys without labels are counted, not an error",
    )
    p.add_argument(
        "--validation-fraction",
        type=argtypes.fraction_closed_open,
        default=None,
        help="also show the artist-grouped validation split carved from train (default: params)",
    )
    p.add_argument(
        "--seed", type=argtypes.non_negative_int, default=None, help="seed of the validation split"
    )
    p.set_defaults(func=handle)


def summarise(
    data: str, *, partial: bool = False, validation_fraction: float | None = None, seed: int | None = None
) -> dict:
    import numpy as np

    from disco import params
    from disco.data.openmic import open_dataset

    ds = open_dataset(data, partial=partial)
    labels = ds.labels()
    parts = ds.partitions()
    clips = ds.clips(
        validation_fraction=params.DEFAULT_VALIDATION_FRACTION
        if validation_fraction is None
        else validation_fraction,
        seed=params.DEFAULT_SEED if seed is None else seed,
    )
    split_counts = {name: 0 for name in params.SPLITS}
    for clip in clips:
        split_counts[clip.split] += 1
    positives = (labels.y_true >= params.POSITIVE_THRESHOLD) & labels.y_mask
    audio = set(ds.audio_files())
    keys = {str(k) for k in labels.keys}
    return {
        "dataset": ds.uri,
        "clips": len(labels.keys),
        "splits": {name: len(v) for name, v in parts.items()},
        "splits_with_validation": split_counts,
        "unpartitioned_clips": len(labels.keys) - sum(len(v) for v in parts.values()),
        "unlabelled_partition_keys": {k: len(v) for k, v in ds.unlabelled_partition_keys.items()},
        "classes": {
            name: {"labelled": int(labels.y_mask[:, i].sum()), "positives": int(positives[:, i].sum())}
            for i, name in enumerate(params.CLASSES)
        },
        "labelled_pairs": int(labels.y_mask.sum()),
        "audio_files": len(audio),
        "missing_audio": sorted(keys - audio),
        "extra_audio": sorted(audio - keys),
        "has_metadata": ds.metadata() is not None,
        "has_npz": ds.has_npz(),
        "mean_labels_per_clip": round(float(np.mean(labels.y_mask.sum(1))), 2) if len(keys) else 0.0,
    }


def handle(args: argparse.Namespace) -> int:
    info = summarise(
        args.data, partial=args.partial, validation_fraction=args.validation_fraction, seed=args.seed
    )
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"dataset      {info['dataset']}")
    print(f"clips        {info['clips']}  ({', '.join(f'{k} {v}' for k, v in info['splits'].items())})")
    print(f"with validation  {', '.join(f'{k} {v}' for k, v in info['splits_with_validation'].items())}")
    if info["unlabelled_partition_keys"]:
        print(f"partial      partition keys without labels left out: {info['unlabelled_partition_keys']}")
    print(
        f"audio files  {info['audio_files']}  missing {len(info['missing_audio'])}  extra {len(info['extra_audio'])}"
    )
    print(
        f"metadata     {'yes' if info['has_metadata'] else 'no'}    openmic-2018.npz {'yes' if info['has_npz'] else 'no'}"
    )
    print()
    print(f"{'class':<18} {'labelled':>9} {'positives':>9}")
    for name, c in info["classes"].items():
        print(f"{name:<18} {c['labelled']:>9} {c['positives']:>9}")
    for key in info["missing_audio"][:10]:
        print(f"missing audio: {key}")
    return 0
