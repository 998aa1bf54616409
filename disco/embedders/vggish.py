"""VGGish (Hershey et al., ICASSP 2017) in Keras 3, from the published reference.

Model: log-mel frontend (``disco.embedders.frontend``) -> examples of 96 x 64 -> VGG stack
(3x3 convs, stride 1, SAME; 2x2 max-pools, stride 2, SAME; ReLU):
conv1 64 -> pool1 -> conv2 128 -> pool2 -> conv3_1, conv3_2 256 -> pool3 -> conv4_1, conv4_2 512
-> pool4 -> flatten (6 x 4 x 512 = 12288, row-major NHWC as slim flattens) -> fc1_1 4096 ReLU ->
fc1_2 4096 ReLU -> fc2 128. fc2 has **no** ReLU: the current reference and the TF Hub model
return the pre-activation embedding. The first release (2017, used for AudioSet's and, in
2018, OpenMIC's features) had a ReLU on fc2 too; ``fc2_relu=True`` reproduces that.

Weights, mapped by the TF1 slim variable names ("vggish/conv1/weights", ...):

* a TF Hub handle (default ``params.VGGISH_DEFAULT_HANDLE``), a local directory or a ``gs://``
  path holding that SavedModel, loaded with ``tensorflow_hub.load``; or
* the TF1 checkpoint ``vggish_model.ckpt`` via ``tf.train.load_checkpoint``.

Optional post-processing as AudioSet / OpenMIC ship features: PCA with
``vggish_pca_params.npz``, clip to [QUANTIZE_MIN_VAL, QUANTIZE_MAX_VAL], quantise to 0..255.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from disco import params
from disco.embedders import frontend
from disco.embedders import precision as precision_mod
from disco.embedders.base import Embedder, set_checked_weights
from disco.errors import ConfigError, EmbedderUnavailableError

log = logging.getLogger(__name__)

# slim scope -> Keras layer name (Keras 3 layer names cannot hold "/").
CONV_LAYERS: tuple[tuple[str, str, int], ...] = (
    ("vggish/conv1", "conv1", 64),
    ("vggish/conv2", "conv2", 128),
    ("vggish/conv3/conv3_1", "conv3_1", 256),
    ("vggish/conv3/conv3_2", "conv3_2", 256),
    ("vggish/conv4/conv4_1", "conv4_1", 512),
    ("vggish/conv4/conv4_2", "conv4_2", 512),
)
POOL_AFTER: frozenset[str] = frozenset({"conv1", "conv2", "conv3_2", "conv4_2"})
DENSE_LAYERS: tuple[tuple[str, str, int], ...] = (
    ("vggish/fc1/fc1_1", "fc1_1", 4096),
    ("vggish/fc1/fc1_2", "fc1_2", 4096),
    ("vggish/fc2", "fc2", params.VGGISH_EMBEDDING_SIZE),
)
SLIM_TO_KERAS: dict[str, str] = {slim: name for slim, name, _ in CONV_LAYERS + DENSE_LAYERS}

HUB_TIMEOUT_ENV = "DISCO_HUB_TIMEOUT_S"
DEFAULT_HUB_TIMEOUT_S = 60.0
OFFLINE_HINT = (
    "offline alternatives: a local directory or gs:// path holding the VGGish SavedModel "
    "(--vggish-handle DIR), a populated TFHUB_CACHE_DIR, or the TF1 checkpoint "
    "vggish_model.ckpt (--vggish-checkpoint PATH)"
)


@keras.saving.register_keras_serializable(package="disco")
class PCAQuantize(keras.layers.Layer):
    """AudioSet post-processing in TF ops: ``(x - means) @ eigen_vectors.T``, clip to
    [QUANTIZE_MIN_VAL, QUANTIZE_MAX_VAL], scale to [0, 255] and truncate, as the reference's
    ``astype(uint8)`` does. Output float32 holding the integers 0..255 (the embedding record
    stores float32); float32 compute also under a bfloat16 model."""

    def __init__(self, eigen_vectors: Any, means: Any, **kwargs: Any):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.eigen_vectors = np.asarray(eigen_vectors, np.float32)
        self.means = np.asarray(means, np.float32).reshape(-1)

    def call(self, embeddings: Any) -> Any:
        import tensorflow as tf

        centred = embeddings - tf.constant(self.means)
        projected = tf.tensordot(centred, tf.constant(self.eigen_vectors.T), axes=1)
        clipped = tf.clip_by_value(projected, params.QUANTIZE_MIN_VAL, params.QUANTIZE_MAX_VAL)
        scale = 255.0 / (params.QUANTIZE_MAX_VAL - params.QUANTIZE_MIN_VAL)
        return tf.floor((clipped - params.QUANTIZE_MIN_VAL) * scale)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(eigen_vectors=self.eigen_vectors.tolist(), means=self.means.tolist())
        return config


def build_vggish_model(
    *,
    precision: str = precision_mod.FLOAT32,
    input_samples: int = params.CLIP_SAMPLES,
    fc2_relu: bool = False,
    pca: tuple[np.ndarray, np.ndarray] | None = None,
) -> keras.Model:
    """VGGish as one Keras model: waveform float32 [B, input_samples] -> float32 [B, N, 128]
    (N = ``frontend.vggish_num_examples(input_samples)``), random-initialised; load weights with
    :func:`assign_slim_weights`. ``pca`` = (eigen_vectors [128, 128], means [128, 1]) appends
    the post-processing."""
    examples = frontend.vggish_num_examples(input_samples)
    if examples < 1:
        raise ConfigError(
            f"vggish needs at least 15600 samples (0.975 s) per clip, got input_samples={input_samples}"
        )
    with precision_mod.keras_precision(precision):
        waveform = keras.Input((input_samples,), dtype="float32", name="waveform")
        x = frontend.VGGishFrontend(name="log_mel")(waveform)  # [B, N, 96, 64]
        # Every example goes through the conv stack on its own: fold examples into the batch.
        x = keras.ops.reshape(x, (-1, params.VGGISH_NUM_FRAMES, params.VGGISH_NUM_MEL_BINS, 1))
        for _, name, filters in CONV_LAYERS:
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
            if name in POOL_AFTER:
                x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"pool_{name}")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        for _, name, units in DENSE_LAYERS:
            is_embedding = name == "fc2"
            activation = "relu" if (not is_embedding or fc2_relu) else None
            x = keras.layers.Dense(units, activation=activation, name=name)(x)
        x = precision_mod.float32_output(x, name="embedding")
        x = keras.ops.reshape(x, (-1, examples, params.VGGISH_EMBEDDING_SIZE))
        if pca is not None:
            x = PCAQuantize(pca[0], pca[1], name="pca_quantize")(x)
    return keras.Model(waveform, x, name="vggish")


def assign_slim_weights(model: keras.Model, weights: dict[str, np.ndarray], *, source: str) -> None:
    """Set the model's conv/dense layers from slim-named arrays; every VGGish variable must be
    present with its exact shape (a partial load would silently give a different model)."""
    missing, wrong = [], []
    assignments = []
    for slim, name, _ in CONV_LAYERS + DENSE_LAYERS:
        layer = model.get_layer(name)
        values = []
        for suffix, variable in (("weights", layer.kernel), ("biases", layer.bias)):
            key = f"{slim}/{suffix}"
            if key not in weights:
                missing.append(key)
                continue
            value = np.asarray(weights[key])
            if tuple(value.shape) != tuple(variable.shape):
                wrong.append(f"{key} {list(value.shape)} (expected {list(variable.shape)})")
            values.append(value)
        assignments.append((layer, values))
    set_checked_weights(assignments, missing=missing, wrong=wrong, source=source, model="a VGGish")


def _slim_name(variable_name: str) -> str:
    # "vggish/conv1/weights:0", possibly under an outer scope -> "vggish/conv1/weights"
    name = variable_name.split(":")[0]
    index = name.find("vggish/")
    return name[index:] if index >= 0 else name


def read_checkpoint(path: str) -> dict[str, np.ndarray]:
    """The VGGish variables of a TF1 checkpoint (V1 single file or V2 .index/.data)."""
    import tensorflow as tf

    if not (tf.io.gfile.exists(path) or tf.io.gfile.exists(f"{path}.index")):
        raise EmbedderUnavailableError(f"{path}: VGGish checkpoint not found")
    try:
        reader = tf.train.load_checkpoint(path)
    except (tf.errors.OpError, ValueError) as exc:
        raise EmbedderUnavailableError(f"{path}: cannot read checkpoint: {exc}") from exc
    names = [n for n in reader.get_variable_to_shape_map() if _slim_name(n) in _SLIM_VARIABLES]
    return {_slim_name(n): reader.get_tensor(n) for n in names}


_SLIM_VARIABLES = frozenset(f"{slim}/{suffix}" for slim in SLIM_TO_KERAS for suffix in ("weights", "biases"))


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # tensorflow_hub calls urlopen() without a timeout: on a network that drops packets it would
    # hang forever. A process-wide default applies only while no other default was set.
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        if previous is None:
            socket.setdefaulttimeout(None)


def _is_remote(handle: str) -> bool:
    return handle.startswith(("http://", "https://"))


def read_hub(handle: str) -> dict[str, np.ndarray]:
    """Load the VGGish SavedModel at ``handle`` with ``tensorflow_hub.load`` and return its
    variables by slim name. ``handle``: a TF Hub URL, a local directory or a gs:// path."""
    import tensorflow as tf

    try:
        import tensorflow_hub as hub
    except ImportError as exc:  # pkg_resources missing with setuptools >= 81, among others
        raise EmbedderUnavailableError(
            f"{handle}: tensorflow_hub cannot be imported ({exc}); {OFFLINE_HINT}"
        ) from exc
    if not _is_remote(handle) and not tf.io.gfile.isdir(handle):
        raise EmbedderUnavailableError(f"{handle}: no SavedModel directory at this path; {OFFLINE_HINT}")
    timeout = float(os.environ.get(HUB_TIMEOUT_ENV, DEFAULT_HUB_TIMEOUT_S))
    try:
        with _socket_timeout(timeout):
            loaded = hub.load(handle)
    except Exception as exc:  # hub raises URLError, OSError, ValueError, tf errors...
        raise EmbedderUnavailableError(
            f"{handle}: cannot load the VGGish model ({type(exc).__name__}: {exc}); {OFFLINE_HINT}"
        ) from exc
    variables = {}
    for obj in tf.train.TrackableView(loaded).descendants():
        if isinstance(obj, tf.Variable):
            name = _slim_name(obj.name)
            if name in _SLIM_VARIABLES:
                variables[name] = obj.numpy()
    return variables


def load_pca_params(path: str) -> tuple[np.ndarray, np.ndarray]:
    """``vggish_pca_params.npz``: eigen_vectors [128, 128] (rows), means [128, 1]."""
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(path, "rb") as fh, np.load(fh) as npz:
            eigen, means = npz["pca_eigen_vectors"], npz["pca_means"]
    except (OSError, KeyError, ValueError, tf.errors.OpError) as exc:
        raise EmbedderUnavailableError(f"{path}: cannot read VGGish PCA params: {exc}") from exc
    size = params.VGGISH_EMBEDDING_SIZE
    if eigen.shape != (size, size) or means.reshape(-1).shape != (size,):
        raise EmbedderUnavailableError(
            f"{path}: PCA params have shapes {list(eigen.shape)} and {list(means.shape)}, "
            f"expected [{size}, {size}] and [{size}, 1]"
        )
    return eigen, means.reshape(size, 1)


def postprocess(embeddings: np.ndarray, eigen_vectors: np.ndarray, means: np.ndarray) -> np.ndarray:
    """NumPy (float64) post-processing as the reference: PCA, clip, quantise -> uint8."""
    x = np.asarray(embeddings, np.float64)
    projected = (x - np.asarray(means).reshape(-1)) @ np.asarray(eigen_vectors).T
    clipped = np.clip(projected, params.QUANTIZE_MIN_VAL, params.QUANTIZE_MAX_VAL)
    scale = 255.0 / (params.QUANTIZE_MAX_VAL - params.QUANTIZE_MIN_VAL)
    return ((clipped - params.QUANTIZE_MIN_VAL) * scale).astype(np.uint8)


class VGGishEmbedder(Embedder):
    """VGGish: 10 frames x 128 dims per 10 s clip (one frame per 0.96 s)."""

    name = "vggish"

    @classmethod
    def options(
        cls,
        *,
        precision: str | None = None,
        vggish_handle: str | None = None,
        vggish_checkpoint: str | None = None,
        pca_params: str | None = None,
    ) -> dict[str, Any]:
        """Weights from the checkpoint when given, else the handle (default: the TF Hub one)."""
        opts: dict[str, Any] = {"precision": precision}
        if vggish_checkpoint:
            opts["checkpoint"] = vggish_checkpoint
        else:
            opts["handle"] = vggish_handle or params.VGGISH_DEFAULT_HANDLE
        if pca_params:
            opts["pca_params"] = pca_params
        return opts

    def __init__(
        self,
        *,
        handle: str | None = params.VGGISH_DEFAULT_HANDLE,
        checkpoint: str | None = None,
        pca_params: str | None = None,
        postprocess: bool | None = None,
        precision: str | None = None,
        fc2_relu: bool = False,
        input_samples: int = params.CLIP_SAMPLES,
    ):
        """Weights from ``checkpoint`` when given, else from ``handle``. ``postprocess`` (PCA +
        quantise, needs ``pca_params``) defaults to on exactly when ``pca_params`` is given.
        ``precision`` None picks bfloat16 where the hardware computes it natively."""
        if postprocess is None:
            postprocess = pca_params is not None
        if postprocess and pca_params is None:
            raise ConfigError("vggish postprocess needs pca_params (vggish_pca_params.npz)")
        if checkpoint is None and not handle:
            raise ConfigError(f"vggish needs a handle or a checkpoint; {OFFLINE_HINT}")
        self.precision = precision_mod.resolve_precision(precision)
        self.input_samples = input_samples
        self.frames_per_clip = frontend.vggish_num_examples(input_samples)
        self.dim = params.VGGISH_EMBEDDING_SIZE
        self.fc2_relu = fc2_relu
        self.postprocess = postprocess
        self.pca_params = pca_params
        if checkpoint is not None:
            self.source = checkpoint
            if handle and handle != params.VGGISH_DEFAULT_HANDLE:
                log.warning("vggish: both checkpoint and handle given; using %s", checkpoint)
            weights = read_checkpoint(checkpoint)
        else:
            self.source = str(handle)
            weights = read_hub(str(handle))
        self.version = self.source + ("+pca" if postprocess else "") + ("+fc2relu" if fc2_relu else "")
        pca = load_pca_params(pca_params) if postprocess and pca_params else None
        self._model = build_vggish_model(
            precision=self.precision, input_samples=input_samples, fc2_relu=fc2_relu, pca=pca
        )
        assign_slim_weights(self._model, weights, source=self.source)
        log.info("vggish weights loaded from %s (precision %s)", self.source, self.precision)

    def keras_model(self) -> keras.Model:
        return self._model

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(vggish_source=self.source, postprocess=self.postprocess, fc2_relu=self.fc2_relu)
        return info
