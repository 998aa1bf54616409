"""Training-set augmentation with audiomentations: pitch shift, time stretch (length restored),
gain and additive noise at a random SNR. Each copy is a pure function of (seed, key, copy).

audiomentations draws its random parameters from NumPy's and Python's global generators, so a
call seeds both from the (seed, key, copy) triple under a lock: results do not depend on thread
scheduling or on what ran before.
"""

from __future__ import annotations

import hashlib
import random
import threading

import numpy as np

from disco import params

_LOCK = threading.Lock()
_CHAIN = None


def chain():
    global _CHAIN
    if _CHAIN is None:
        import audiomentations as A

        _CHAIN = A.Compose([
            A.PitchShift(min_semitones=-2.0, max_semitones=2.0, p=0.5),
            A.TimeStretch(min_rate=0.85, max_rate=1.15, leave_length_unchanged=True, p=0.5),
            A.Gain(min_gain_db=-6.0, max_gain_db=6.0, p=0.5),
            A.AddGaussianSNR(min_snr_db=15.0, max_snr_db=40.0, p=0.5),
        ])
    return _CHAIN


def copy_seed(seed: int, key: str, copy: int) -> int:
    digest = hashlib.sha256(f"{seed}:{key}:{copy}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def augment_clip(waveform: np.ndarray, *, seed: int, key: str, copy: int) -> np.ndarray:
    """One augmented copy of a float32 [CLIP_SAMPLES] clip, same length, clipped to [-1, 1)."""
    s = copy_seed(seed, key, copy)
    with _LOCK:
        np.random.seed(s)
        random.seed(s)
        out = chain()(samples=np.asarray(waveform, np.float32), sample_rate=params.SAMPLE_RATE)
    out = np.asarray(out, np.float32)
    if len(out) != len(waveform):
        out = np.pad(out, (0, max(0, len(waveform) - len(out))))[: len(waveform)]
    return np.clip(out, -1.0, 1.0 - 1.0 / params.PCM_SCALE)
