"""What a resample decoder runs, one clip at a time: bytes → mono 16 kHz 10 s record bytes, or a
failure. Kept apart from the Beam graph (disco.beam.resample) and free of Beam imports: a spawned
decode process imports this module to unpickle its task, and importing Apache Beam there would cost
each process ~2 s of CPU and ~180 MB (make bench-resample)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from disco.errors import DiscoError


class ClipTask(NamedTuple):
    """One clip to resample: what its record carries besides the audio, and its shard's file name
    (set by disco.beam.resample.shard_groups). Plain values: it travels to decode processes."""

    key: str
    split: str
    y_true: list[float]
    y_mask: list[int]
    group: str  # disco.records.clip_group
    shard: str = ""


# The dataset a decode process reads from (set by start_decoder in each process of the pool).
_DECODER_DATASET = None


def start_decoder(data_uri: str | None) -> None:
    global _DECODER_DATASET
    if data_uri is not None:
        from disco.data.openmic import open_dataset

        _DECODER_DATASET = open_dataset(data_uri)


def decode_in_process(task: ClipTask, data, error, location):
    return resample_one(_DECODER_DATASET, task, data, error, location)


def resample_one(
    ds,
    task: ClipTask,
    data: bytes | None = None,
    error: str | None = None,
    location: str | None = None,
):
    from disco.audio.decode import load_clip
    from disco.records import ResampledRecord, encode_resampled, float_to_pcm

    key, split = task.key, task.split
    location = location or ds.audio_path(key)
    try:
        if error is not None:
            raise DiscoError(error)
        if data is None:
            data = ds.read_audio(key)
        clip, duration = load_clip(data, name=location)
    except DiscoError as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        return None, {"key": key, "split": split, "path": location, "reason": reason}
    record = ResampledRecord(
        key=key,
        split=split,
        pcm=float_to_pcm(clip),
        original_duration=duration,
        augmentation_id=0,
        y_true=np.asarray(task.y_true, np.float32),
        y_mask=np.asarray(task.y_mask, bool),
        group=task.group,
    )
    return encode_resampled(record), None
