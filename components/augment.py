"""Augment component: K seeded augmented copies and M mixtures of every training clip (same record schema)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output


def augment_audio(
    copies: int,
    mixup: int,
    masks: bool,
    seed: int,
    beam_options: str,
    resampled: Input[Dataset],
    augmented: Output[Dataset],
    stats: Output[Metrics],
):
    """Write `copies` augmented versions and `mixup` mixtures of each train clip (with SpecAugment-style
    masks when `masks`); none of either writes an empty, valid step output."""
    from disco_components import _runtime

    _runtime.setup_logging()
    if copies <= 0 and mixup <= 0:
        # A pipeline parameter cannot remove a task from the DAG on every backend without
        # conditional artifact plumbing, so "no augmentation" is an empty output, not a missing one.
        summary = _runtime.empty_step(
            augmented.path,
            "augment",
            parameters={"copies": copies, "mixup": mixup, "masks": masks, "seed": seed},
            seed=seed,
        )
    else:
        from disco.beam.augment import run_augment

        summary = run_augment(
            resampled.path,
            augmented.path,
            copies=max(copies, 0),
            mixup=max(mixup, 0),
            masks=masks,
            seed=seed,
            beam_args=_runtime.split_args(beam_options),
        )
    _runtime.describe(augmented, summary, keys=("records", "copies", "mixup"))
    _runtime.log_metrics(stats, {"copies": copies, "mixup": mixup, "records": summary.records})


def make_component(image: str):
    return dsl.component(augment_audio, base_image=image, install_kfp_package=False)
