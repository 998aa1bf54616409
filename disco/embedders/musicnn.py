"""musicnn (Pons & Serra, 2019), MTT_musicnn, ported to Keras 3 / TF2.

Weights: the TF1 checkpoint the ``musicnn`` wheel ships (``musicnn/MTT_musicnn/``), read with
TensorFlow's checkpoint reader and mapped onto our layers by the TF1 ``tf.layers`` variable names
(``conv2d_3/kernel``, ``batch_normalization_9/moving_mean``, ...). The ``musicnn`` package itself is
never imported here: its code needs TF1 graph mode and Keras 2. Only its data files are read.

Frontend (what the original computes with ``librosa.feature.melspectrogram`` defaults):
16 kHz waveform, STFT with n_fft 512, hop 256, periodic Hann window, ``center=True`` with
**zero** padding of 256 samples each side (librosa >= 0.10's default; librosa < 0.10, used when the
model was trained, padded by reflection: only the first and last frame differ), power spectrogram,
96 Slaney-scale mel bands 0-8 kHz with Slaney area normalisation, then ``log10(10000 * mel + 1)``.
A clip of ``n`` samples has ``1 + n // 256`` frames (626 for 10 s).

Patches of 187 frames (3 s) go through the network one by one; non-overlapping by default as the
original's ``extractor`` does, giving 3 patches for a 10 s clip (frames 0..560; the last ~1 s is not
seen). ``hop_seconds`` picks overlapping patches, converted to frames as the original does
(``floor((s * 16000 - 256) / 256)``: 1 s -> 61 frames -> 8 patches per 10 s clip).

Network per patch ``[187, 96]``:

* input batch norm (one channel);
* timbral convs: 204 filters of 7 x 38 and 7 x 67 (time x frequency; time zero-padded 3 + 3,
  frequency valid), ReLU, batch norm, max over frequency -> 2 x [187, 204];
* temporal convs: 51 filters of 128 x 1, 64 x 1, 32 x 1 ('same' in time), ReLU, batch norm, max
  over frequency -> 3 x [187, 51]; the five maps concatenated -> [187, 561] ("frontend");
* mid-end: three 1-D convs of 64 filters, width 7 (zero-padded 3 + 3), ReLU, batch norm; the 2nd
  and 3rd add their input (residual); frontend and the three outputs concatenated -> [187, 753];
* back-end: max and mean over time (``max_pool``, ``mean_pool``: 753 each), interleaved per
  feature (max0, mean0, max1, mean1, ...: the original flattens a [753, 2] map) -> batch norm
  -> dense 200 ReLU -> batch norm (``penultimate``) -> dense 50 (logits; sigmoid = the
  ``taggram`` of the 50 MagnaTagATune tags).

The embedding is ``max_pool`` by default (753 per 3 s patch): 561 of its dimensions are the
frontend's timbral/temporal filters, max-pooled over the patch, i.e. general spectro-temporal
pattern detectors, before the dense layers that specialise on MagnaTagATune's 50 tags (genre,
mood, only ~12 instruments); ``penultimate`` (200) is that tag-specific bottleneck. ``layer``
picks another output ("mean_pool", "penultimate", "taggram").

Differences from the original, on purpose:

* float32 throughout. The original casts the mel spectrogram to **float16** before
  ``log10(10000 * mel + 1)``: mel power above 6.55 overflows ``10000 * mel`` to inf (loud real
  recordings do this), and every input value carries float16 rounding (~5e-4 relative).
* any length: the original fails on input shorter than one patch (187 frames, 2.98 s); the port
  pads the log-mel with zeros (silence) to one patch.
"""

from __future__ import annotations

import logging
import math
import os
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from disco import params
from disco.embedders import precision as precision_mod
from disco.embedders.base import Embedder, set_checked_weights
from disco.errors import ConfigError, EmbedderUnavailableError

if TYPE_CHECKING:
    import tensorflow as tf

log = logging.getLogger(__name__)

MTT_TAGS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip

TIMBRAL = (("timbral_74", 38), ("timbral_77", 67))  # (name, frequency extent: int(0.4|0.7 * 96))
TEMPORAL = (("temporal_128", 128), ("temporal_64", 64), ("temporal_32", 32))  # (name, time extent)
TIMBRAL_FILTERS = 204  # int(1.6 * 128)
TEMPORAL_FILTERS = 51  # int(1.6 * 32)
MIDEND_FILTERS = 64
MIDEND_WIDTH = 7
BACKEND_UNITS = 200
FRONTEND_DIM = len(TIMBRAL) * TIMBRAL_FILTERS + len(TEMPORAL) * TEMPORAL_FILTERS  # 561
POOL_DIM = FRONTEND_DIM + 3 * MIDEND_FILTERS  # 753

LAYER_DIMS: dict[str, int] = {
    "max_pool": POOL_DIM,
    "mean_pool": POOL_DIM,
    "penultimate": BACKEND_UNITS,
    "taggram": params.MUSICNN_NUM_TAGS,
}

# Keras layer -> TF1 scope in the checkpoint. tf.layers named variables by creation order; this
# is the order MTT_musicnn's graph builds them in.
CONV_VARIABLES: dict[str, str] = {
    "timbral_74": "conv2d",
    "timbral_77": "conv2d_1",
    "temporal_128": "conv2d_2",
    "temporal_64": "conv2d_3",
    "temporal_32": "conv2d_4",
    "midend_1": "conv2d_5",
    "midend_2": "conv2d_6",
    "midend_3": "conv2d_7",
    "dense": "dense",
    "logits": "dense_1",
}
BN_VARIABLES: dict[str, str] = {
    "bn_input": "batch_normalization",
    "bn_timbral_74": "batch_normalization_1",
    "bn_timbral_77": "batch_normalization_2",
    "bn_temporal_128": "batch_normalization_3",
    "bn_temporal_64": "batch_normalization_4",
    "bn_temporal_32": "batch_normalization_5",
    "bn_midend_1": "batch_normalization_6",
    "bn_midend_2": "batch_normalization_7",
    "bn_midend_3": "batch_normalization_8",
    "bn_pool": "batch_normalization_9",
    "bn_dense": "batch_normalization_10",
}


def patch_frames(seconds: float = params.MUSICNN_PATCH_SECONDS) -> int:
    """Spectrogram frames in a patch of ``seconds``, as the original converts it (librosa's
    ``time_to_frames(seconds, n_fft=512, hop=256) + 1``): 187 for 3 s."""
    return hop_frames(seconds) + 1


def hop_frames(seconds: float) -> int:
    """Frames for a patch hop of ``seconds`` (librosa ``time_to_frames`` with n_fft: the window
    centre offset n_fft // 2 is subtracted): 61 for 1 s, 186 for 3 s."""
    samples = int(seconds * params.SAMPLE_RATE)
    return int(math.floor((samples - params.MUSICNN_FFT_SIZE // 2) / params.MUSICNN_HOP))


PATCH_FRAMES = patch_frames()  # 187


def num_stft_frames(num_samples: int) -> int:
    """Centred STFT frames: ``1 + num_samples // 256`` (626 for a 10 s clip)."""
    return 1 + num_samples // params.MUSICNN_HOP


def num_patches(num_samples: int, *, hop: int = PATCH_FRAMES) -> int:
    """Patches of PATCH_FRAMES with hop ``hop`` frames; at least 1 (short input is padded)."""
    frames = num_stft_frames(num_samples)
    if frames <= PATCH_FRAMES:
        return 1
    return 1 + (frames - PATCH_FRAMES) // hop


def _hz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney's Auditory Toolbox scale: linear (3 per 200 Hz) below 1 kHz, logarithmic above.
    hz = np.asarray(hz, np.float64)
    linear_step = 200.0 / 3
    break_hz, break_mel = 1000.0, 1000.0 / linear_step
    log_step = math.log(6.4) / 27.0
    mel = hz / linear_step
    above = hz >= break_hz
    mel[above] = break_mel + np.log(hz[above] / break_hz) / log_step
    return mel


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    linear_step = 200.0 / 3
    break_hz, break_mel = 1000.0, 1000.0 / linear_step
    log_step = math.log(6.4) / 27.0
    hz = mel * linear_step
    above = mel >= break_mel
    hz[above] = break_hz * np.exp(log_step * (mel[above] - break_mel))
    return hz


def slaney_mel_matrix(
    *,
    sample_rate: int = params.SAMPLE_RATE,
    n_fft: int = params.MUSICNN_FFT_SIZE,
    n_mels: int = params.MUSICNN_NUM_MELS,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Triangular mel filterbank ``[n_fft // 2 + 1, n_mels]`` (float32) on the Slaney scale with
    Slaney area normalisation (each triangle scaled by 2 / its width in Hz): the filterbank
    ``librosa.filters.mel`` builds by default. Triangles are laid out in Hz between mel-spaced
    edges; computed in float64."""
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_mel = np.linspace(_hz_to_slaney_mel(np.array([fmin]))[0],
                            _hz_to_slaney_mel(np.array([fmax]))[0], n_mels + 2)  # fmt: skip
    edges_hz = _slaney_mel_to_hz(edges_mel)
    widths = np.diff(edges_hz)
    weights = np.zeros((n_mels, fft_hz.size))
    for band in range(n_mels):
        rising = (fft_hz - edges_hz[band]) / widths[band]
        falling = (edges_hz[band + 2] - fft_hz) / widths[band + 1]
        weights[band] = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2 : n_mels + 2] - edges_hz[:n_mels]))[:, np.newaxis]
    return weights.T.astype(np.float32)


def log_mel_spectrogram(waveforms: tf.Tensor, mel_weights: np.ndarray) -> tf.Tensor:
    """``[B, samples]`` float32 -> ``log10(10000 * mel + 1)`` ``[B, 1 + samples // 256, 96]``,
    float32 (no float16 overflow)."""
    import tensorflow as tf

    half = params.MUSICNN_FFT_SIZE // 2
    padded = tf.pad(waveforms, [[0, 0], [half, half]])  # centre the frames, zeros as librosa 0.11
    stft = tf.signal.stft(
        padded,
        frame_length=params.MUSICNN_FFT_SIZE,
        frame_step=params.MUSICNN_HOP,
        fft_length=params.MUSICNN_FFT_SIZE,
        window_fn=lambda n, dtype: tf.signal.hann_window(n, periodic=True, dtype=dtype),
        pad_end=False,
    )
    power = tf.math.square(tf.math.real(stft)) + tf.math.square(tf.math.imag(stft))
    mel = tf.tensordot(power, tf.constant(mel_weights), axes=1)
    # log1p keeps precision for tiny mel values; log10(1 + x) == log1p(x) / ln(10).
    return tf.math.log1p(params.MUSICNN_LOG_SCALE * mel) / math.log(10.0)


@keras.saving.register_keras_serializable(package="disco")
class MusicnnFrontend(keras.layers.Layer):
    """Waveform float32 ``[B, samples]`` -> log-mel patches ``[B, P, 187, 96]``.

    float32 always (dtype fixed), also in a bfloat16 model: cheap, and the log needs the range.
    Input shorter than one patch is padded with log-mel zeros (silence) to one patch."""

    def __init__(self, *, hop: int = PATCH_FRAMES, **kwargs: Any):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if hop < 1:
            raise ConfigError(f"musicnn patch hop must be >= 1 frame, got {hop}")
        self.hop = int(hop)
        self._mel = slaney_mel_matrix()

    def call(self, waveforms: tf.Tensor) -> tf.Tensor:
        import tensorflow as tf

        features = log_mel_spectrogram(waveforms, self._mel)
        short = tf.maximum(0, PATCH_FRAMES - tf.shape(features)[1])
        features = tf.pad(features, [[0, 0], [0, short], [0, 0]])
        return tf.signal.frame(features, frame_length=PATCH_FRAMES, frame_step=self.hop, axis=1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        samples = input_shape[-1]
        patches = None if samples is None else num_patches(samples, hop=self.hop)
        return (*input_shape[:-1], patches, PATCH_FRAMES, params.MUSICNN_NUM_MELS)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("dtype", None)
        config.update(hop=self.hop)
        return config


def _bn(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(epsilon=params.MUSICNN_BN_EPSILON, name=name)


def build_musicnn_network(*, precision: str = precision_mod.FLOAT32) -> keras.Model:
    """The network on log-mel patches: ``[N, 187, 96]`` -> dict of per-patch outputs
    ``max_pool``/``mean_pool`` [N, 753], ``penultimate`` [N, 200], ``taggram`` [N, 50] (all
    float32), random-initialised; load weights with :func:`assign_checkpoint_weights`."""
    ops = keras.ops
    with precision_mod.keras_precision(precision):
        patches = keras.Input((PATCH_FRAMES, params.MUSICNN_NUM_MELS), dtype="float32", name="log_mel")
        x = keras.layers.Reshape((PATCH_FRAMES, params.MUSICNN_NUM_MELS, 1), name="expand")(patches)
        x = _bn("bn_input")(x)
        maps = []
        # Time is padded by hand (3 + 3) and frequency left 'valid', as the original: the maps
        # are max-pooled over all frequencies right after.
        padded = keras.layers.ZeroPadding2D(((3, 3), (0, 0)), name="pad_timbral")(x)
        for name, extent in TIMBRAL:
            y = keras.layers.Conv2D(
                TIMBRAL_FILTERS, (7, extent), padding="valid", activation="relu", name=name
            )(padded)
            y = _bn(f"bn_{name}")(y)
            maps.append(ops.max(y, axis=2))
        for name, extent in TEMPORAL:
            y = keras.layers.Conv2D(
                TEMPORAL_FILTERS, (extent, 1), padding="same", activation="relu", name=name
            )(x)
            y = _bn(f"bn_{name}")(y)
            maps.append(ops.max(y, axis=2))
        front = keras.layers.Concatenate(axis=-1, name="frontend")(maps)  # [N, 187, 561]

        # A conv2d whose kernel spans all features is a 1-D conv over time.
        mid = []
        y = front
        for index in (1, 2, 3):
            conv = keras.layers.Conv1D(
                MIDEND_FILTERS, MIDEND_WIDTH, padding="same", activation="relu",
                name=f"midend_{index}",
            )(y)  # fmt: skip
            conv = _bn(f"bn_midend_{index}")(conv)
            y = conv if index == 1 else keras.layers.Add(name=f"residual_{index}")([conv, y])
            mid.append(y)
        features = keras.layers.Concatenate(axis=-1, name="midend")([front, *mid])  # [N, 187, 753]

        max_pool = ops.max(features, axis=1)
        mean_pool = ops.mean(features, axis=1)
        # The original concatenates [T-pooled, 1]-shaped maps on a trailing axis and flattens,
        # so the dense layer sees max and mean interleaved per feature: max0, mean0, max1, ...
        pooled = ops.reshape(ops.stack([max_pool, mean_pool], axis=-1), (-1, 2 * POOL_DIM))
        pooled = _bn("bn_pool")(pooled)
        dense = keras.layers.Dense(BACKEND_UNITS, activation="relu", name="dense")(pooled)
        penultimate = _bn("bn_dense")(dense)
        logits = keras.layers.Dense(params.MUSICNN_NUM_TAGS, name="logits")(penultimate)
        taggram = ops.sigmoid(logits)
        outputs = {
            name: precision_mod.float32_output(tensor, name=name)
            for name, tensor in (
                ("max_pool", max_pool),
                ("mean_pool", mean_pool),
                ("penultimate", penultimate),
                ("taggram", taggram),
            )
        }
    return keras.Model(patches, outputs, name="musicnn_network")


def checkpoint_prefix(model: str = params.MUSICNN_MODEL) -> str:
    """Where the ``musicnn`` wheel keeps ``model``'s checkpoint (prefix ``.../MTT_musicnn/``: the
    files are ``.index`` and ``.data-00000-of-00001`` in that directory). Found without
    importing the package (its ``__init__`` is harmless, but its modules need TF1 mode)."""
    import importlib.util

    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailableError(
            "musicnn: the 'musicnn' package (which ships the MTT_musicnn weights) is not "
            "installed; pip install --no-deps musicnn==0.1.0"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], model) + os.sep


def read_checkpoint(prefix: str) -> dict[str, np.ndarray]:
    """All variables of a TF1 checkpoint by name. ``prefix`` may be a directory path ending in a
    separator whose files are ``.index`` / ``.data-*`` (musicnn's layout): ``load_checkpoint``
    would follow that directory's ``checkpoint`` file to the author's machine instead."""
    import tensorflow as tf

    if not tf.io.gfile.exists(f"{prefix}.index"):
        raise EmbedderUnavailableError(f"{prefix}: musicnn checkpoint not found ({prefix}.index)")
    try:
        reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    except (tf.errors.OpError, ValueError) as exc:
        raise EmbedderUnavailableError(f"{prefix}: cannot read checkpoint: {exc}") from exc
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def assign_checkpoint_weights(network: keras.Model, weights: dict[str, np.ndarray], *, source: str) -> None:
    """Set every conv / dense / batch-norm layer from the TF1 variables; all must be present with
    the expected shape (conv2d kernels spanning all features are reshaped to Conv1D kernels)."""
    missing, wrong, assignments = [], [], []

    def fetch(key: str, shape: tuple[int, ...]) -> np.ndarray | None:
        if key not in weights:
            missing.append(key)
            return None
        value = np.asarray(weights[key], np.float32)
        if value.size != math.prod(shape):
            wrong.append(f"{key} {list(value.shape)} (expected {list(shape)})")
            return None
        return value.reshape(shape)

    for layer_name, scope in CONV_VARIABLES.items():
        layer = network.get_layer(layer_name)
        values = [
            fetch(f"{scope}/kernel", tuple(layer.kernel.shape)),
            fetch(f"{scope}/bias", tuple(layer.bias.shape)),
        ]
        assignments.append((layer, values))
    for layer_name, scope in BN_VARIABLES.items():
        layer = network.get_layer(layer_name)
        shape = tuple(layer.gamma.shape)
        values = [
            fetch(f"{scope}/{part}", shape) for part in ("gamma", "beta", "moving_mean", "moving_variance")
        ]
        assignments.append((layer, values))
    set_checked_weights(assignments, missing=missing, wrong=wrong, source=source, model="an MTT_musicnn")


def build_musicnn_model(
    network: keras.Model,
    *,
    layer: str = params.MUSICNN_DEFAULT_LAYER,
    input_samples: int = params.CLIP_SAMPLES,
    hop: int = PATCH_FRAMES,
) -> keras.Model:
    """Waveform float32 ``[B, input_samples]`` -> ``[B, P, dim]`` of ``layer`` per patch, TF
    ops end to end (frontend, patching, ``network``)."""
    if layer not in LAYER_DIMS:
        raise ConfigError(f"musicnn layer must be one of {', '.join(LAYER_DIMS)}, got {layer!r}")
    patches = num_patches(input_samples, hop=hop)
    waveform = keras.Input((input_samples,), dtype="float32", name="waveform")
    x = MusicnnFrontend(hop=hop, name="log_mel")(waveform)  # [B, P, 187, 96]
    # Every patch goes through the network on its own: fold patches into the batch.
    x = keras.ops.reshape(x, (-1, PATCH_FRAMES, params.MUSICNN_NUM_MELS))
    x = network(x)[layer]
    x = keras.ops.reshape(x, (-1, patches, LAYER_DIMS[layer]))
    return keras.Model(waveform, x, name=f"musicnn_{layer}")


class MusicnnEmbedder(Embedder):
    """MTT_musicnn: by default 3 frames (non-overlapping 3 s patches) x 753 dims (``max_pool``)
    per 10 s clip."""

    name = "musicnn"

    def __init__(
        self,
        *,
        layer: str = params.MUSICNN_DEFAULT_LAYER,
        hop_seconds: float | None = None,
        precision: str | None = None,
        checkpoint: str | None = None,
        input_samples: int = params.CLIP_SAMPLES,
    ):
        """``layer``: which per-patch output is the embedding. ``hop_seconds``: patch hop (None:
        non-overlapping 3 s patches). ``precision`` None picks bfloat16 where the hardware computes
        it natively. ``checkpoint``: a checkpoint prefix (default: the wheel's MTT_musicnn)."""
        if layer not in LAYER_DIMS:
            choices = ", ".join(LAYER_DIMS)
            raise ConfigError(f"musicnn layer must be one of {choices}, got {layer!r}")
        if hop_seconds is None:
            hop = PATCH_FRAMES
        else:
            hop = hop_frames(hop_seconds)
            if hop < 1:
                raise ConfigError(f"musicnn hop_seconds too small: {hop_seconds} ({hop} frames)")
        self.layer = layer
        self.hop = hop
        self.precision = precision_mod.resolve_precision(precision)
        self.input_samples = input_samples
        self.frames_per_clip = num_patches(input_samples, hop=hop)
        self.dim = LAYER_DIMS[layer]
        self.source = checkpoint or checkpoint_prefix()
        weights = read_checkpoint(self.source)
        self.network = build_musicnn_network(precision=self.precision)
        assign_checkpoint_weights(self.network, weights, source=self.source)
        self.version = f"{params.MUSICNN_MODEL}@musicnn-{_musicnn_version()}/{layer}" + (
            "" if hop == PATCH_FRAMES else f"/hop{hop}"
        )
        self._model = build_musicnn_model(self.network, layer=layer, input_samples=input_samples, hop=hop)
        log.info("musicnn weights loaded from %s (precision %s)", self.source, self.precision)

    def keras_model(self) -> keras.Model:
        return self._model

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            musicnn_layer=self.layer,
            musicnn_patch_frames=PATCH_FRAMES,
            musicnn_hop_frames=self.hop,
            musicnn_source=self.source,
        )
        return info


def _musicnn_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("musicnn")
    except metadata.PackageNotFoundError:
        return "unknown"
