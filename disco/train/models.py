"""Classifiers over an embedding sequence [frames, dim] → 20 sigmoid probabilities.

- ``baseline``: the earlier project's best dense model made multi-label: flatten, dense 1024 (ReLU,
  L2), dropout, 20 sigmoids (L2). No softmax: every class is its own yes/no question.
- ``attention``: uses the time axis: a per-frame dense projection, then attention pooling (a learned
  softmax over frames, per class, weighting per-frame class probabilities) concatenated with
  mean+max pooling, in the spirit of Gururani et al. (2019) on OpenMIC.
"""

from __future__ import annotations

import keras
from keras import layers, ops, regularizers

from disco import params
from disco.errors import ConfigError


@keras.saving.register_keras_serializable(package="disco")
class AttentionPooling(layers.Layer):
    """Per class: p = sum_t softmax_t(a_t) * sigmoid(c_t), a and c from per-frame dense layers."""

    def __init__(self, units: int, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.l2 = l2
        self.att = layers.Dense(units, kernel_regularizer=regularizers.l2(l2) if l2 else None)
        self.cla = layers.Dense(units, kernel_regularizer=regularizers.l2(l2) if l2 else None)

    def build(self, input_shape):
        self.att.build(input_shape)
        self.cla.build(input_shape)
        super().build(input_shape)

    def call(self, x):
        weights = ops.softmax(self.att(x), axis=1)
        return ops.sum(weights * ops.sigmoid(self.cla(x)), axis=1)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "l2": self.l2}


def build_model(
    name: str,
    *,
    frames: int,
    dim: int,
    dropout: float = params.DEFAULT_DROPOUT,
    l2: float = params.DEFAULT_L2,
    hidden: int = 1024,
    mean=None,
    variance=None,
    model_name: str | None = None,
) -> keras.Model:
    """``mean``/``variance`` (per feature, from the training split) standardise the input inside
    the model, so the exported model takes raw embeddings."""
    inputs = keras.Input((frames, dim), name="embedding")
    reg = regularizers.l2(l2) if l2 else None
    x0 = (
        inputs
        if mean is None
        else layers.Normalization(axis=-1, mean=mean, variance=variance, name="standardise")(inputs)
    )
    if name == "baseline":
        x = layers.Flatten()(x0)
        x = layers.Dense(hidden, activation="relu", kernel_regularizer=reg)(x)
        x = layers.Dropout(dropout)(x)
        outputs = layers.Dense(
            params.NUM_CLASSES, activation="sigmoid", kernel_regularizer=reg, name="probabilities"
        )(x)
    elif name == "attention":
        x = layers.LayerNormalization()(x0)
        x = layers.Dense(256, activation="relu", kernel_regularizer=reg)(x)
        x = layers.Dropout(dropout)(x)
        att = AttentionPooling(params.NUM_CLASSES, l2=l2, name="attention_pool")(x)
        pooled = layers.Concatenate()([layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)])
        pooled = layers.Dropout(dropout)(pooled)
        logits = layers.Dense(params.NUM_CLASSES, kernel_regularizer=reg)(pooled)
        # Average the attention branch with the pooled branch's probabilities.
        outputs = layers.Average(name="probabilities")([att, layers.Activation("sigmoid")(logits)])
    else:
        raise ConfigError(f"unknown network {name!r}; choose one of {', '.join(params.NETWORKS)}")
    return keras.Model(inputs, outputs, name=model_name or f"disco_{name}")
