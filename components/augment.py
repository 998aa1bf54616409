"""Augment component: K seeded augmented copies of every training clip (same record schema)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output


def augment_audio(
    copies: int,
    seed: int,
    beam_options: str,
    resampled: Input[Dataset],
    augmented: Output[Dataset],
    stats: Output[Metrics],
):
    """Write `copies` augmented versions of each train clip; 0 copies writes an empty, valid step output."""
    from components import _runtime

    _runtime.setup_logging()
    if copies <= 0:
        # A pipeline parameter cannot remove a task from the DAG on every backend without
        # conditional artifact plumbing, so "no augmentation" is an empty output, not a missing one.
        summary = _runtime.empty_step(
            augmented.path,
            step="augment",
            parameters={"copies": copies, "seed": seed},
            seed=seed,
            summary={"records": 0, "copies": 0, "skipped": True},
        )
    else:
        from disco.beam.augment import run_augment

        summary = run_augment(
            resampled.path,
            augmented.path,
            copies=copies,
            seed=seed,
            beam_args=_runtime.split_args(beam_options),
        )
    _runtime.describe(augmented, summary, keys=("records", "ok", "failed", "copies", "shards"))
    _runtime.log_metrics(stats, {"copies": copies, "records": summary.get("records", summary.get("ok", 0))})


def make_component(image: str):
    return dsl.component(augment_audio, base_image=image, install_kfp_package=False)
