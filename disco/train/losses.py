"""Binary cross-entropy over sigmoid outputs, masked by Y_mask: unobserved (key, class) entries
contribute nothing to the loss or its gradient; the mean is over observed entries only.

Targets travel packed as [target(20), weight(20)] so Keras passes the mask with the labels
(:func:`pack_targets`: target = 1 where Y_true >= 0.5, weight = Y_mask). Mixup
(:func:`mixup_batches`) keeps that form: mixing two clips with weight lam mixes their two
masked losses, ``lam * m_a * bce(p, y_a) + (1 - lam) * m_b * bce(p, y_b)``, which (cross-entropy
being linear in its target) is one masked loss with weight ``w = lam m_a + (1 - lam) m_b`` and soft
target ``(lam m_a y_a + (1 - lam) m_b y_b) / w``. A class observed in only one of the two clips
therefore still counts, at that clip's share: with OpenMIC's partial labels (about two observed
classes per clip) requiring both to be observed would discard nine in ten entries.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from disco import params


@keras.saving.register_keras_serializable(package="disco")
class MaskedBinaryCrossentropy(keras.losses.Loss):
    """``y_true`` packs [target(20), weight(20)] (see :func:`pack_targets`). ``label_smoothing``
    s moves each target toward 1/2: t (1 - s) + s / 2 (an idea tried in bench/bench_ideas.py)."""

    def __init__(self, name: str = "masked_bce", label_smoothing: float = 0.0, **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}

    def call(self, y_true, y_pred):
        target = y_true[:, : params.NUM_CLASSES]
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing / 2
        weight = y_true[:, params.NUM_CLASSES :]
        eps = keras.backend.epsilon()
        y_pred = ops.cast(y_pred, "float32")
        # Clipping would turn a NaN prediction into eps and hide a diverged model (or NaN/Inf
        # features) behind a finite loss; keep it NaN so training stops on it.
        p = ops.where(ops.isnan(y_pred), y_pred, ops.clip(y_pred, eps, 1.0 - eps))
        bce = -(target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))
        # One value per example: the mean over its observed entries (batch mean is then taken by
        # Keras); an example with nothing observed contributes 0.
        observed = ops.sum(weight, axis=-1)
        return ops.sum(bce * weight, axis=-1) / ops.maximum(observed, 1.0)


def pack_targets(y_true, y_mask) -> np.ndarray:
    """[N, 40]: the binary targets (positive means Y_true >= 0.5) and the observed mask."""
    target = (np.asarray(y_true) >= params.POSITIVE_THRESHOLD).astype(np.float32)
    return np.concatenate([target, np.asarray(y_mask, np.float32)], axis=-1)


def mixup_batches(x: np.ndarray, packed: np.ndarray, *, batch_size: int, alpha: float, seed: int):
    """A shuffled, batched ``tf.data.Dataset`` in which each batch is mixed with a permutation of
    itself, lam ~ Beta(alpha, alpha) per example (Zhang et al., 2018), on the embeddings and, as the
    module docstring derives, on the packed masked targets."""
    import tensorflow as tf

    k = params.NUM_CLASSES

    def mix(xb, yb):
        n = tf.shape(xb)[0]
        g1 = tf.random.gamma([n], alpha, seed=seed)
        g2 = tf.random.gamma([n], alpha, seed=seed + 1)
        lam = g1 / (g1 + g2)
        other = tf.random.shuffle(tf.range(n), seed=seed + 2)
        xo, yo = tf.gather(xb, other), tf.gather(yb, other)
        lx, ly = lam[:, None, None], lam[:, None]
        wa, wb = ly * yb[:, k:], (1.0 - ly) * yo[:, k:]
        weight = wa + wb
        target = tf.math.divide_no_nan(wa * yb[:, :k] + wb * yo[:, :k], weight)
        return lx * xb + (1.0 - lx) * xo, tf.concat([target, weight], axis=-1)

    ds = tf.data.Dataset.from_tensor_slices((np.asarray(x, np.float32), packed))
    return ds.shuffle(len(packed), seed=seed, reshuffle_each_iteration=True).batch(batch_size).map(mix)
