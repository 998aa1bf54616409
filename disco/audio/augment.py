"""Training-set augmentation with audiomentations: pitch shift, time stretch (length restored),
gain and additive noise at a random SNR; optionally SpecAugment-style masks; and mixup of two
training clips. Each copy is a pure function of (seed, key, copy).

The masks act on the waveform because the embedding step computes its own spectrogram: a
zeroed time span (TimeMask) and a band-stop filter (BandStopFilter) become exactly the time and
frequency masks SpecAugment applies to that spectrogram.

audiomentations draws its random parameters from NumPy's and Python's global generators. Seeding
those under a lock is not enough: anything else in the process that draws from them meanwhile
(Beam's own sinks pick shard keys with ``random``; a Dask worker runs other tasks on other threads)
shifts the stream, and the copy changes. So audiomentations' modules see thread-local generators
instead, seeded from the (seed, key, copy) triple per call, with the same streams ``random.seed``
and ``np.random.seed`` would give: results do not depend on thread scheduling or on what ran before.
"""

from __future__ import annotations

import hashlib
import random
import threading

import numpy as np

from disco import params

_LOCAL = threading.local()


class _ThreadRandom:
    """Stands for the ``random`` module inside audiomentations: this thread's seeded generator
    while a copy is made, the module itself otherwise."""

    def __getattr__(self, name):
        return getattr(getattr(_LOCAL, "random", None) or random, name)


class _ThreadNumpy:
    """Stands for ``numpy`` inside audiomentations: ``np.random`` is this thread's seeded
    RandomState while a copy is made; everything else is numpy."""

    def __getattr__(self, name):
        if name == "random":
            return getattr(_LOCAL, "np_random", None) or np.random
        return getattr(np, name)


def _use_thread_generators() -> None:
    import sys

    for name, module in list(sys.modules.items()):
        if not name.startswith("audiomentations") or module is None:
            continue
        if getattr(module, "random", None) is random:
            module.random = _ThreadRandom()
        if getattr(module, "np", None) is np:
            module.np = _ThreadNumpy()


CHAIN_DESCRIPTION = [
    "PitchShift ±2 st",
    "TimeStretch 0.85-1.15 (length kept)",
    "Gain ±6 dB",
    "Gaussian noise 15-40 dB SNR",
]
MASKS_DESCRIPTION = ["TimeMask 2-10 % of the clip", "BandStopFilter 200-4000 Hz centre"]
# Mixup weights stay away from 0 and 1: labels of a mixture are the union of both clips'
# instruments, which is only true when both are audible in it.
MIXUP_WEIGHT_RANGE = (0.3, 0.7)


def chain(*, masks: bool = False):
    """This thread's chain. audiomentations keeps the parameters it draws on each transform
    object between drawing and applying them, so a chain shared by threads lets one clip get
    another's settings; building one per thread is cheap next to applying it."""
    chains = getattr(_LOCAL, "chains", None)
    if chains is None:
        chains = _LOCAL.chains = {}
    if masks not in chains:
        import audiomentations as A

        steps = [
            A.PitchShift(min_semitones=-2.0, max_semitones=2.0, p=0.5),
            A.TimeStretch(min_rate=0.85, max_rate=1.15, leave_length_unchanged=True, p=0.5),
            A.Gain(min_gain_db=-6.0, max_gain_db=6.0, p=0.5),
            A.AddGaussianSNR(min_snr_db=15.0, max_snr_db=40.0, p=0.5),
        ]
        if masks:
            steps += [
                A.TimeMask(min_band_part=0.02, max_band_part=0.1, fade_duration=0.005, p=0.5),
                A.BandStopFilter(min_center_freq=200.0, max_center_freq=4000.0, p=0.5),
            ]
        _use_thread_generators()
        chains[masks] = A.Compose(steps)
    return chains[masks]


def copy_seed(seed: int, key: str, copy: int) -> int:
    digest = hashlib.sha256(f"{seed}:{key}:{copy}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _to_pcm_range(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -1.0, 1.0 - 1.0 / params.PCM_SCALE).astype(np.float32)


def augment_clip(waveform: np.ndarray, *, seed: int, key: str, copy: int, masks: bool = False) -> np.ndarray:
    """One augmented copy of a float32 [CLIP_SAMPLES] clip, same length, clipped to [-1, 1)."""
    s = copy_seed(seed, key, copy)
    transform = chain(masks=masks)
    _LOCAL.random, _LOCAL.np_random = random.Random(s), np.random.RandomState(s)
    try:
        out = transform(samples=np.asarray(waveform, np.float32), sample_rate=params.SAMPLE_RATE)
    finally:
        _LOCAL.random = _LOCAL.np_random = None
    out = np.asarray(out, np.float32)
    if len(out) != len(waveform):
        out = np.pad(out, (0, max(0, len(waveform) - len(out))))[: len(waveform)]
    return _to_pcm_range(out)


def mixup_weight(*, seed: int, key: str, copy: int) -> float:
    lo, hi = MIXUP_WEIGHT_RANGE
    return float(np.random.default_rng(copy_seed(seed, key, copy)).uniform(lo, hi))


def mix_waveforms(a: np.ndarray, b: np.ndarray, *, weight: float) -> np.ndarray:
    """weight·a + (1-weight)·b, scaled down only if the sum would clip."""
    mixed = weight * np.asarray(a, np.float32) + (1.0 - weight) * np.asarray(b, np.float32)
    peak = float(np.max(np.abs(mixed))) if mixed.size else 0.0
    if peak >= 1.0:
        mixed = mixed / (peak * (1.0 + 1.0 / params.PCM_SCALE))
    return _to_pcm_range(mixed)


def mix_labels(
    y_a: np.ndarray, mask_a: np.ndarray, y_b: np.ndarray, mask_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Labels of a mixture of two clips under partial annotation.

    An instrument observed present in either clip is present in the mixture; one observed absent
    in both is absent; anything else (absent in one, unknown in the other) is unknown, so its mask
    is off and it contributes nothing to the loss.
    """
    y_a, y_b = np.asarray(y_a, np.float32), np.asarray(y_b, np.float32)
    m_a, m_b = np.asarray(mask_a, bool), np.asarray(mask_b, bool)
    pos_a = m_a & (y_a >= params.POSITIVE_THRESHOLD)
    pos_b = m_b & (y_b >= params.POSITIVE_THRESHOLD)
    neg_both = m_a & m_b & ~pos_a & ~pos_b
    present = pos_a | pos_b
    y = np.where(
        present,
        np.maximum(np.where(pos_a, y_a, 0.0), np.where(pos_b, y_b, 0.0)),
        np.where(neg_both, np.maximum(y_a, y_b), 0.0),
    ).astype(np.float32)
    return y, (present | neg_both).astype(np.int64)
