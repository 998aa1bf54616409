"""The augment step as a Beam pipeline: K augmented copies of every train-split clip (never
validation or test), in the resampled-record schema with augmentation_id 1..K."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import apache_beam as beam

from disco import fileio, params
from disco.beam.options import pipeline_options
from disco.beam.portable import one_leaf, worker_path
from disco.beam.sinks import (
    FAILED_TAG,
    OK_TAG,
    DeadLetter,
    WriteSplits,
    failure,
    read_dead_letters,
    remove_sink_temp,
)
from disco.errors import ConfigError, DiscoError, SchemaError
from disco.publish import publishes
from disco.results import AugmentResult

log = logging.getLogger(__name__)


class ReadTrainRecords(beam.DoFn):
    """shard path → the bytes of each of its records, checksum verified and decoded once as a
    resampled record; a record failing either is a failure dict on FAILED_TAG (shard, index, key
    where readable, reason) and the shard's other records are still read, where Beam's own TFRecord
    source stops the whole run at the first bad checksum, naming no file."""

    def process(self, shard: str):
        from disco.records import decode_resampled, read_tfrecord_checked, readable_key

        for rec in read_tfrecord_checked(shard):
            try:
                if rec.error is not None:
                    raise SchemaError(rec.error)
                decode_resampled(rec.data)
            except (DiscoError, ValueError) as exc:  # ValueError: undecodable UTF-8 or PCM bytes
                key = readable_key(rec.data) if rec.data is not None else None
                yield failure(shard=str(shard), index=rec.index, key=key, reason=str(exc))
                continue
            yield rec.data


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
            # Keyed (and grouped) as its first clip; the partner's group keeps cross-fitting from
            # training a fold on a mixture whose partner that fold holds out.
            mixture = replace(
                rec,
                pcm=float_to_pcm(wave),
                y_true=y_true,
                y_mask=y_mask,
                augmentation_id=copy,
                partner_group=other.group,
            )
            yield encode_resampled(mixture)


def _as_train(raw: bytes) -> tuple[str, bytes]:
    return params.SPLIT_TRAIN, raw


def _keyed_by_group(raw: bytes, seed: int, groups: int) -> tuple[int, bytes]:
    from disco.records import record_key

    return mixup_group(record_key(raw), seed=seed, groups=groups), raw


@publishes("augment")
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
    test_pipeline: beam.Pipeline | None = None,
) -> AugmentResult:
    """Augmented copies of every train clip of a resample output.

    Args:
        resampled_dir: a resample output.
        out_dir: the output folder (local or ``gs://``); published whole or not at all.
        copies: audiomentations copies per clip (augmentation ids 1..copies).
        seed: seeds every copy and mixup pairing.
        mixup: mixtures with other train clips per clip (ids copies+1..copies+mixup).
        masks: add SpecAugment-style time/frequency masks to the copies.
        num_shards: output shards (default: as many as the input's train shards).
        beam_args: options passed to Beam unchanged.
        test_pipeline: a Beam pipeline to build on (tests pass ``TestPipeline``).

    Returns:
        The step's AugmentResult (also its summary.json).
    """
    from disco.audio.augment import CHAIN_DESCRIPTION, MASKS_DESCRIPTION, MIXUP_WEIGHT_RANGE
    from disco.records import count_records, list_shards

    if copies < 0 or mixup < 0 or copies + mixup < 1:
        raise ConfigError(
            f"need --copies >= 0 and --mixup >= 0, at least one of them > 0 (got {copies}, {mixup})"
        )
    start = time.perf_counter()
    files = list_shards(resampled_dir, f"{params.RESAMPLED_PREFIX}-{params.SPLIT_TRAIN}")
    if not files:
        raise ConfigError(f"{resampled_dir}: no train-split resampled shards")
    # Every record must be locatable before any is read: past a damaged length header the rest of
    # a shard cannot be found, and the reader would lose it unseen behind one dead letter.
    # count_records fails naming the shard (as embed does); a record whose own checksum fails is
    # still dead-lettered alone.
    train_count = sum(count_records(f) for f in files)
    pipeline = test_pipeline or beam.Pipeline(options=pipeline_options(beam_args))
    read = (
        pipeline
        | "Shards" >> beam.Create([worker_path(f) for f in files], reshuffle=False)
        | "Read" >> beam.ParDo(ReadTrainRecords()).with_outputs(FAILED_TAG, main=OK_TAG)
    )
    dead = read[FAILED_TAG] | "DeadLetter" >> DeadLetter(out_dir)
    # Records are bytes, failures dicts: Beam's DaskRunner mixes a ParDo's outputs (disco.beam.portable).
    train = read[OK_TAG] | "OnlyRecords" >> beam.Filter(lambda e: isinstance(e, bytes))
    outputs = []
    if copies:
        outputs.append(train | "Augment" >> beam.FlatMap(_augment, copies, seed, masks))
    if mixup:
        # Mixing needs two clips in one place: groups of ~MIXUP_GROUP clips, keyed by a hash of
        # (seed, key), so partners are random across the train split and the same on every run.
        groups = max(1, train_count // MIXUP_GROUP)
        outputs.append(
            train
            | "MixupGroup" >> beam.Map(_keyed_by_group, seed, groups)
            | "GroupClips" >> beam.GroupByKey()
            | "Mixup" >> beam.FlatMap(_mix_group, mixup, copies + 1, seed)
        )
    merged = outputs[0] if len(outputs) == 1 else tuple(outputs) | "Merge" >> beam.Flatten()
    written = (
        merged
        | "AsTrain" >> beam.Map(_as_train)
        | "Write"
        >> WriteSplits(out_dir, params.RESAMPLED_PREFIX, {params.SPLIT_TRAIN: num_shards or len(files)})
    )
    one_leaf([*written.values(), dead])
    pipeline.run().wait_until_finish()
    remove_sink_temp(out_dir)
    failures = read_dead_letters(fileio.join(out_dir, params.FAILURES_FILE))
    for f in failures:
        log.warning("skipped record %s (key %s) of %s: %s", f["index"], f["key"], f["shard"], f["reason"])

    records = sum(count_records(f) for f in list_shards(out_dir, params.RESAMPLED_PREFIX))
    chain = CHAIN_DESCRIPTION + (MASKS_DESCRIPTION if masks else [])
    return AugmentResult(
        records=records,
        failed=len(failures),
        failures=failures,
        copies=copies,
        mixup=mixup,
        masks=masks,
        seed=seed,
        chain=chain if copies else [],
        mixup_weights=list(MIXUP_WEIGHT_RANGE) if mixup else None,
        seconds=round(time.perf_counter() - start, 2),
    )
