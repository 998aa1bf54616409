"""Classifiers over an embedding sequence [frames, dim] → 20 sigmoid probabilities.

- ``baseline``: the earlier project's best dense model made multi-label: flatten, dense 1024 (ReLU,
  L2), dropout, 20 sigmoids (L2). No softmax: every class is its own yes/no question.
- ``attention``: uses the time axis: a per-frame dense projection, then attention pooling (a learned
  softmax over frames, per class, weighting per-frame class probabilities; Kong et al. 2018 on
  AudioSet, Gururani et al. 2019 on OpenMIC). No mean+max pooled dense head averaged in, as disco
  had before: it ranked lower on every seed (``make bench-ideas``, docs/train-evaluate.md).
  :class:`FrameResample` and Gaussian noise on the standardised frames (``build_model``'s
  ``frame_resample`` and ``noise_sd``) are bench-ideas' rows, not the default: each passed its rule
  with refits off, but the pair in the default recipe (5 refits) ranked lower on two seeds of three
  (docs/train-evaluate.md).
"""

from __future__ import annotations

import random

import keras
from keras import layers, ops, regularizers

from disco import params
from disco.errors import ConfigError


@keras.saving.register_keras_serializable(package="disco")
class AttentionPooling(layers.Layer):
    """Per class: p = sum_t softmax_t(a_t) * sigmoid(c_t), a and c from per-frame dense layers."""

    def __init__(self, units: int, l2: float = 0.0, seeds: tuple[int, int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.l2 = l2
        # Not in the config: a loaded layer's weights replace whatever it was initialised with.
        att_seed, cla_seed = seeds if seeds is not None else (None, None)
        reg = regularizers.l2(l2) if l2 else None
        self.att = layers.Dense(units, kernel_regularizer=reg, kernel_initializer=_glorot(att_seed))
        self.cla = layers.Dense(units, kernel_regularizer=reg, kernel_initializer=_glorot(cla_seed))

    def build(self, input_shape):
        self.att.build(input_shape)
        self.cla.build(input_shape)
        super().build(input_shape)

    def call(self, x):
        weights = ops.softmax(self.att(x), axis=1)
        return ops.sum(weights * ops.sigmoid(self.cla(x)), axis=1)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "l2": self.l2}


@keras.saving.register_keras_serializable(package="disco")
class FrameResample(layers.Layer):
    """While training, a fraction ``p`` of the clips in a batch get their frames drawn again with
    replacement: an instrument heard in some of a clip's seconds is still heard, so which seconds
    and in what order is not the label. The identity at inference."""

    def __init__(self, p: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= p <= 1:
            raise ConfigError(f"frame resampling probability {p} (must be in [0, 1])")
        self.p = p
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if not training or self.p == 0:
            return x
        n, t = ops.shape(x)[0], ops.shape(x)[1]
        drawn = keras.random.randint((n, t), 0, t, seed=self.seed_generator)
        redraw = keras.random.uniform((n, 1), seed=self.seed_generator) < self.p
        idx = ops.where(redraw, drawn, ops.arange(t)[None, :])
        return ops.take_along_axis(x, idx[:, :, None], axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "p": self.p, "seed": self.seed}


def frame_projection(x, *, dropout: float, reg, seeds: _Seeds | None = None):
    """The attention network's per-frame part: layer norm, dense ``params.ATTENTION_UNITS`` (ReLU),
    dropout. Also bench-ideas' base for the networks it tries, so they differ only where named."""
    seeds = seeds or _Seeds(None)
    x = layers.LayerNormalization()(x)
    x = layers.Dense(
        params.ATTENTION_UNITS, activation="relu", kernel_regularizer=reg, kernel_initializer=_glorot(seeds())
    )(x)
    return layers.Dropout(dropout, seed=_dropout_seed(dropout, seeds))(x)


def _glorot(seed: int | None):
    return keras.initializers.GlorotUniform(seed=seed)


class _Seeds:
    """The seed of each random layer, drawn from the model's own generator.

    Keras draws an unseeded layer's seed from Python's global ``random`` when the layer is made, so
    any other thread drawing from it during a build (a Beam or Dask worker, a client's retry jitter)
    shifts every seed after it and the same training seed gives another model. The draws are the ones
    Keras makes after ``random.seed(seed)``, in its order: a seeded build is the unseeded build
    after ``keras.utils.set_random_seed(seed)``, with nothing shared."""

    def __init__(self, seed: int | None):
        self._rng = None if seed is None else random.Random(seed)

    def __call__(self) -> int | None:
        return None if self._rng is None else self._rng.randint(1, int(1e9))


def _dropout_seed(rate: float, seeds: _Seeds) -> int | None:
    # Keras makes no generator (draws no seed) for a rate of 0.
    return seeds() if rate > 0 else None


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
    seed: int | None = None,
    frame_resample: float = 0.0,
    noise_sd: float = 0.0,
) -> keras.Model:
    """``mean``/``variance`` (per feature, from the training split) standardise the input inside
    the model, so the exported model takes raw embeddings. ``seed`` fixes the initial weights, the
    dropout masks and the attention network's augmentation whatever else the process draws (None:
    Keras' global generators). ``frame_resample`` (the share of clips resampled) and ``noise_sd``
    (attention only; 0: off) are training-only augmentation that bench-ideas tries."""
    seeds = _Seeds(seed)
    inputs = keras.Input((frames, dim), name="embedding")
    reg = regularizers.l2(l2) if l2 else None
    x0 = (
        inputs
        if mean is None
        else layers.Normalization(axis=-1, mean=mean, variance=variance, name="standardise")(inputs)
    )
    if name == "baseline":
        if frame_resample or noise_sd:
            # The baseline flattens the frames; silently training it without them would mislead.
            raise ConfigError("frame resampling and embedding noise are the attention network's only")
        x = layers.Flatten()(x0)
        x = layers.Dense(
            hidden, activation="relu", kernel_regularizer=reg, kernel_initializer=_glorot(seeds())
        )(x)
        x = layers.Dropout(dropout, seed=_dropout_seed(dropout, seeds))(x)
        outputs = layers.Dense(
            params.NUM_CLASSES,
            activation="sigmoid",
            kernel_regularizer=reg,
            kernel_initializer=_glorot(seeds()),
            name="probabilities",
        )(x)
    elif name == "attention":
        x = x0
        if frame_resample > 0:
            x = FrameResample(frame_resample, seed=seeds())(x)
        if noise_sd > 0:
            x = layers.GaussianNoise(noise_sd, seed=seeds())(x)
        x = frame_projection(x, dropout=dropout, reg=reg, seeds=seeds)
        pool_seeds = (seeds(), seeds()) if seed is not None else None
        outputs = AttentionPooling(params.NUM_CLASSES, l2=l2, seeds=pool_seeds, name="probabilities")(x)
    else:
        raise ConfigError(f"unknown network {name!r}; choose one of {', '.join(params.NETWORKS)}")
    return keras.Model(inputs, outputs, name=model_name or f"disco_{name}")
