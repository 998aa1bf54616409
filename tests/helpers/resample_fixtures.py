"""Builders for resample-step tests: synthetic audio in any container libsndfile writes, and
OpenMIC-2018-layout datasets whose audio files hold whatever bytes a test gives them.

The label truth is returned from what was written, not read back through disco's data layer, so
tests compare the step's records against an independent source."""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from disco import params
from disco.records import ResampledRecord, float_to_pcm


def tone(freq: float, sr: int, seconds: float, amps: tuple[float, ...] = (0.5,)) -> np.ndarray:
    """float32 [frames, channels]: one sine per channel, same phase, channel c scaled by amps[c]."""
    t = np.arange(int(round(sr * seconds))) / sr
    wave = np.sin(2 * np.pi * freq * t)
    return np.stack([a * wave for a in amps], axis=1).astype(np.float32)


def encode(audio: np.ndarray, sr: int, *, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12))


def labelled_record(
    key: str,
    split: str,
    wave: np.ndarray,
    rng: np.random.Generator,
    *,
    observed: float,
    augmentation_id: int = 0,
) -> ResampledRecord:
    """A resampled record of a full clip ``wave`` (floats in [-1, 1]) with random relevances, each
    class observed (in Y_mask) with probability ``observed``."""
    return ResampledRecord(
        key=key,
        split=split,
        pcm=float_to_pcm(wave),
        original_duration=params.CLIP_SECONDS,
        y_true=rng.random(params.NUM_CLASSES).astype(np.float32),
        y_mask=rng.random(params.NUM_CLASSES) < observed,
        augmentation_id=augmentation_id,
    )


@dataclass(frozen=True)
class Truth:
    split_partition: str  # "train" or "test": the official partition the key was listed in
    y_true: np.ndarray
    y_mask: np.ndarray


def clip_key(i: int) -> str:
    # Spread keys over several audio/<key[:3]>/ folders, as the release does.
    return f"{(i * 137) % 1000:03d}{i % 1000:03d}_{3840 + 960 * i}"


def write_dataset(
    root: Path,
    audio: dict[str, bytes | None],
    *,
    test_keys: set[str],
    sample: Path,
    seed: int = 0,
    n_artists: int = 6,
) -> dict[str, Truth]:
    """Write a release-layout dataset holding ``audio`` (key -> file bytes; None leaves the file
    out while keeping the key labelled and partitioned). Returns each key's label truth."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(sample / params.CLASS_MAP_FILE, root / params.CLASS_MAP_FILE)
    keys = sorted(audio)
    truth: dict[str, Truth] = {}
    with open(root / params.AGGREGATED_LABELS_FILE, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample_key", "instrument", "relevance", "num_responses"])
        for key in keys:
            y_true = np.zeros(params.NUM_CLASSES, np.float32)
            y_mask = np.zeros(params.NUM_CLASSES, bool)
            for cls in sorted(rng.choice(params.NUM_CLASSES, size=int(rng.integers(1, 5)), replace=False)):
                relevance = float(np.round(rng.random(), 5))
                y_true[cls], y_mask[cls] = relevance, True
                w.writerow([key, params.CLASSES[cls], relevance, int(rng.integers(1, 6))])
            split = params.SPLIT_TEST if key in test_keys else params.SPLIT_TRAIN
            truth[key] = Truth(split, y_true, y_mask)
    parts = root / params.PARTITIONS_DIR
    parts.mkdir(exist_ok=True)
    (parts / params.PARTITION_TRAIN_FILE).write_text("".join(f"{k}\n" for k in keys if k not in test_keys))
    (parts / params.PARTITION_TEST_FILE).write_text("".join(f"{k}\n" for k in keys if k in test_keys))
    header = (sample / params.METADATA_FILE).read_text().splitlines()[0].split(",")
    with open(root / params.METADATA_FILE, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for i, key in enumerate(keys):
            row = dict.fromkeys(header, "")
            artist = 1000 + i % 2 if key in test_keys else int(rng.integers(0, n_artists))
            row.update(sample_key=key, artist_id=str(artist), track_id=str(i))
            w.writerow([row[name] for name in header])
    for key, data in audio.items():
        if data is None:
            continue
        path = root / params.AUDIO_DIR / key[: params.KEY_PREFIX_LENGTH] / f"{key}{params.AUDIO_EXTENSION}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return truth
