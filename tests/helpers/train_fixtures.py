"""A small release-layout dataset with precomputed features (``openmic-2018.npz``) whose labels
are learnable, for tests that train and evaluate real models in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from disco import params
from helpers.openmic_fixtures import make_dataset

# Clips per official partition, and the features' Gaussian noise (the positives' shift is a test's).
N_TRAIN, N_TEST = 120, 40
NOISE = 0.5


def make_release_features(root: Path, sample: Path, *, shift: float = 0.5, seed: int = 0) -> Path:
    """An OpenMIC-layout dataset (split01 partitions, artist ids, labels) plus an ``openmic-2018.npz``
    like the release's: X uint8 [N, 10, 128] on VGGish's quantisation grid, Y_true, Y_mask,
    sample_key. Each class owns a band of dimensions that its positives shift by ``shift`` over
    Gaussian noise, so a classifier can learn the labels and a broken feature/label join cannot."""
    from disco.data.openmic import open_dataset

    make_dataset(root, sample, n_train=N_TRAIN, n_test=N_TEST, seed=seed)
    labels = open_dataset(str(root)).labels()
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(
        0.0, NOISE, size=(len(labels.keys), params.RELEASE_VGGISH_FRAMES, params.VGGISH_EMBEDDING_SIZE)
    )
    positive = (labels.y_true >= params.POSITIVE_THRESHOLD) & labels.y_mask.astype(bool)
    band = params.VGGISH_EMBEDDING_SIZE // params.NUM_CLASSES
    for c in range(params.NUM_CLASSES):
        x[positive[:, c], :, c * band : (c + 1) * band] += shift
    span = params.QUANTIZE_MAX_VAL - params.QUANTIZE_MIN_VAL
    q = np.clip(np.round((x - params.QUANTIZE_MIN_VAL) * 255.0 / span), 0, 255).astype(np.uint8)
    np.savez(root / params.NPZ_FILE, X=q, Y_true=labels.y_true, Y_mask=labels.y_mask, sample_key=labels.keys)
    return root


def chance_map(y_true: np.ndarray, y_mask: np.ndarray) -> float:
    """Expected mAP of scores that carry no information: each class's AP is its observed positive rate
    (over classes with at least one observed positive and one observed negative, as evaluate counts)."""
    rates = []
    for c in range(y_true.shape[1]):
        m = y_mask[:, c].astype(bool)
        pos = y_true[m, c] >= params.POSITIVE_THRESHOLD
        if pos.any() and not pos.all():
            rates.append(pos.mean())
    return float(np.mean(rates))
