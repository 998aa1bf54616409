"""Binary cross-entropy over sigmoid outputs, masked by Y_mask: unobserved (key, class) entries
contribute nothing to the loss or its gradient; the mean is over observed entries only."""

from __future__ import annotations

import keras
from keras import ops

from disco import params


@keras.saving.register_keras_serializable(package="disco")
class MaskedBinaryCrossentropy(keras.losses.Loss):
    """``y_true`` packs [relevance(20), mask(20)] so Keras passes the mask with the labels."""

    def __init__(self, name: str = "masked_bce", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        relevance = y_true[:, : params.NUM_CLASSES]
        mask = y_true[:, params.NUM_CLASSES :]
        target = ops.cast(relevance >= params.POSITIVE_THRESHOLD, y_pred.dtype)
        eps = keras.backend.epsilon()
        y_pred = ops.cast(y_pred, "float32")
        # Clipping would turn a NaN prediction into eps and hide a diverged model (or NaN/Inf
        # features) behind a finite loss; keep it NaN so training stops on it.
        p = ops.where(ops.isnan(y_pred), y_pred, ops.clip(y_pred, eps, 1.0 - eps))
        bce = -(target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))
        # One value per example: the mean over its observed entries (batch mean is then taken by
        # Keras); an example with nothing observed contributes 0.
        observed = ops.sum(mask, axis=-1)
        return ops.sum(bce * mask, axis=-1) / ops.maximum(observed, 1.0)


def pack_targets(y_true, y_mask):
    import numpy as np

    return np.concatenate([np.asarray(y_true, np.float32), np.asarray(y_mask, np.float32)], axis=-1)
