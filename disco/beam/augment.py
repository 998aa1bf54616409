"""The augment step as a Beam pipeline: K augmented copies of every train-split clip (never
validation or test), in the resampled-record schema with augmentation_id 1..K."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Sequence

from disco import params
from disco.beam.options import pipeline_options
from disco.errors import ConfigError
from disco.runinfo import write_run_info

log = logging.getLogger(__name__)


def _augment(raw: bytes, copies: int, seed: int):
    from dataclasses import replace

    from disco.audio.augment import augment_clip
    from disco.records import decode_resampled, encode_resampled, float_to_pcm

    rec = decode_resampled(raw)
    wave = rec.waveform()
    for copy in range(1, copies + 1):
        out = augment_clip(wave, seed=seed, key=rec.key, copy=copy)
        yield encode_resampled(replace(rec, pcm=float_to_pcm(out), augmentation_id=copy))


def run_augment(resampled_dir: str, out_dir: str, *, copies: int, seed: int = params.DEFAULT_SEED,
                num_shards: int | None = None, beam_args: Sequence[str] = ()) -> dict:
    import apache_beam as beam

    from disco.records import list_shards

    if copies < 1:
        raise ConfigError(f"--copies must be >= 1 (got {copies})")
    start = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    files = [f for f in list_shards(resampled_dir, params.RESAMPLED_PREFIX)
             if os.path.basename(f).startswith(f"{params.RESAMPLED_PREFIX}-{params.SPLIT_TRAIN}-")]
    if not files:
        raise ConfigError(f"{resampled_dir}: no train-split resampled shards")
    pipeline = beam.Pipeline(options=pipeline_options(beam_args))
    (
        pipeline
        | "Shards" >> beam.Create(files, reshuffle=False)
        | "Read" >> beam.io.ReadAllFromTFRecord()
        | "Augment" >> beam.FlatMap(_augment, copies, seed)
        | "Write" >> beam.io.WriteToTFRecord(
            os.path.join(out_dir, f"{params.RESAMPLED_PREFIX}-{params.SPLIT_TRAIN}"),
            file_name_suffix=params.TFRECORD_SUFFIX, num_shards=num_shards or len(files),
            shard_name_template="-SSSSS-of-NNNNN")
    )
    pipeline.run().wait_until_finish()
    import tensorflow as tf

    records = sum(1 for f in list_shards(out_dir, params.RESAMPLED_PREFIX) for _ in tf.data.TFRecordDataset(f))
    seconds = time.perf_counter() - start
    summary = {"step": "augment", "records": records, "copies": copies, "seed": seed,
               "chain": ["PitchShift ±2 st", "TimeStretch 0.85-1.15 (length kept)", "Gain ±6 dB",
                         "Gaussian noise 15-40 dB SNR"],
               "seconds": round(seconds, 2)}
    with open(os.path.join(out_dir, params.SUMMARY_FILE), "w") as fh:
        json.dump(summary, fh, indent=2)
    write_run_info(out_dir, step="augment", seed=seed, parameters={
        "resampled_dir": str(resampled_dir), "copies": copies, "beam_args": list(beam_args)})
    log.info("augment: %d copies of train clips → %d records in %.1f s", copies, records, seconds)
    return summary
