"""The augment step as a Beam pipeline: K augmented copies of every train-split clip (never
validation or test), in the resampled-record schema with augmentation_id 1..K."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence

from disco import fileio, params
from disco.beam.options import pipeline_options
from disco.beam.portable import worker_path
from disco.beam.sinks import remove_stale_temp
from disco.errors import ConfigError
from disco.runinfo import write_run_info

log = logging.getLogger(__name__)


def _augment(raw: bytes, copies: int, seed: int, masks: bool):
    from dataclasses import replace

    from disco.audio.augment import augment_clip
    from disco.records import decode_resampled, encode_resampled, float_to_pcm

    rec = decode_resampled(raw)
    wave = rec.waveform()
    for copy in range(1, copies + 1):
        out = augment_clip(wave, seed=seed, key=rec.key, copy=copy, masks=masks)
        yield encode_resampled(replace(rec, pcm=float_to_pcm(out), augmentation_id=copy))


# Clips per mixup group: partners are drawn within a group, which must fit one worker's memory.
MIXUP_GROUP = 16


def mixup_group(key: str, *, seed: int, groups: int) -> int:
    from disco.audio.augment import copy_seed

    return copy_seed(seed, key, -1) % groups


def _mix_group(group, mixup: int, first_id: int, seed: int):
    """Within one group (sorted by key, so the pairing is the same on every runner), clip i is
    mixed with the clip m places after it for m = 1..mixup, skipping itself."""
    from dataclasses import replace

    from disco.audio.augment import mix_labels, mix_waveforms, mixup_weight
    from disco.records import decode_resampled, encode_resampled, float_to_pcm

    _, raws = group
    recs = sorted((decode_resampled(r) for r in raws), key=lambda r: r.key)
    n = len(recs)
    if n < 2:
        return
    for i, rec in enumerate(recs):
        for m in range(1, mixup + 1):
            other = recs[(i + 1 + (m - 1) % (n - 1)) % n]
            copy = first_id + m - 1
            wave = mix_waveforms(
                rec.waveform(), other.waveform(), weight=mixup_weight(seed=seed, key=rec.key, copy=copy)
            )
            y_true, y_mask = mix_labels(rec.y_true, rec.y_mask, other.y_true, other.y_mask)
            yield encode_resampled(
                replace(rec, pcm=float_to_pcm(wave), y_true=y_true, y_mask=y_mask, augmentation_id=copy)
            )


def _train_count(resampled_dir: str, files: Sequence[str]) -> int:
    from disco.records import count_records

    try:
        return int(
            json.loads(fileio.read_text(fileio.join(resampled_dir, params.SUMMARY_FILE)))["splits"][
                params.SPLIT_TRAIN
            ]
        )
    except (OSError, KeyError, ValueError, TypeError):
        return sum(count_records(f) for f in files)


def run_augment(
    resampled_dir: str,
    out_dir: str,
    *,
    copies: int,
    seed: int = params.DEFAULT_SEED,
    mixup: int = 0,
    masks: bool = False,
    num_shards: int | None = None,
    beam_args: Sequence[str] = (),
) -> dict:
    """``copies`` audiomentations copies (ids 1..copies) and ``mixup`` mixtures with other train clips
    (ids copies+1..copies+mixup) of every train clip."""
    import apache_beam as beam

    from disco.audio.augment import CHAIN_DESCRIPTION, MASKS_DESCRIPTION, MIXUP_WEIGHT_RANGE
    from disco.records import count_records, list_shards, record_key

    if copies < 0 or mixup < 0 or copies + mixup < 1:
        raise ConfigError(
            f"need --copies >= 0 and --mixup >= 0, at least one of them > 0 (got {copies}, {mixup})"
        )
    start = time.perf_counter()
    fileio.makedirs(out_dir)
    remove_stale_temp(out_dir)
    files = [
        f
        for f in list_shards(resampled_dir, params.RESAMPLED_PREFIX)
        if os.path.basename(f).startswith(f"{params.RESAMPLED_PREFIX}-{params.SPLIT_TRAIN}-")
    ]
    if not files:
        raise ConfigError(f"{resampled_dir}: no train-split resampled shards")
    pipeline = beam.Pipeline(options=pipeline_options(beam_args))
    train = (
        pipeline
        | "Shards" >> beam.Create([worker_path(f) for f in files], reshuffle=False)
        | "Read" >> beam.io.ReadAllFromTFRecord()
    )
    outputs = []
    if copies:
        outputs.append(train | "Augment" >> beam.FlatMap(_augment, copies, seed, masks))
    if mixup:
        # Mixing needs two clips in one place: groups of ~MIXUP_GROUP clips, keyed by a hash of
        # (seed, key), so partners are random across the train split and the same on every run.
        groups = max(1, _train_count(resampled_dir, files) // MIXUP_GROUP)
        outputs.append(
            train
            | "MixupGroup"
            >> beam.Map(lambda raw: (mixup_group(record_key(raw), seed=seed, groups=groups), raw))
            | "GroupClips" >> beam.GroupByKey()
            | "Mixup" >> beam.FlatMap(_mix_group, mixup, copies + 1, seed)
        )
    merged = outputs[0] if len(outputs) == 1 else tuple(outputs) | "Merge" >> beam.Flatten()
    merged | "Write" >> beam.io.WriteToTFRecord(
        worker_path(os.path.join(out_dir, f"{params.RESAMPLED_PREFIX}-{params.SPLIT_TRAIN}")),
        file_name_suffix=params.TFRECORD_SUFFIX,
        num_shards=num_shards or len(files),
        shard_name_template="-SSSSS-of-NNNNN",
    )
    pipeline.run().wait_until_finish()
    remove_stale_temp(out_dir, after_success=True)

    records = sum(count_records(f) for f in list_shards(out_dir, params.RESAMPLED_PREFIX))
    seconds = time.perf_counter() - start
    chain = CHAIN_DESCRIPTION + (MASKS_DESCRIPTION if masks else [])
    summary = {
        "step": "augment",
        "records": records,
        "copies": copies,
        "mixup": mixup,
        "masks": masks,
        "seed": seed,
        "chain": chain if copies else [],
        "mixup_weights": list(MIXUP_WEIGHT_RANGE) if mixup else None,
        "seconds": round(seconds, 2),
    }
    fileio.write_text(fileio.join(out_dir, params.SUMMARY_FILE), json.dumps(summary, indent=2))
    write_run_info(
        out_dir,
        step="augment",
        seed=seed,
        parameters={
            "resampled_dir": str(resampled_dir),
            "copies": copies,
            "mixup": mixup,
            "masks": masks,
            "beam_args": list(beam_args),
        },
    )
    log.info(
        "augment: %d copies + %d mixtures of train clips → %d records in %.1f s",
        copies,
        mixup,
        records,
        seconds,
    )
    return summary
