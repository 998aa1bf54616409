"""The interface every embedder shares, and the name -> embedder registry.

An embedder turns 10 s mono waveforms at ``params.SAMPLE_RATE`` into a sequence of frame
embeddings. The embed step, the benchmark and the export step only ever talk to this interface:

* ``keras_model()``: a Keras model, TF ops end to end (frontend included), waveform float32
  ``[B, input_samples]`` -> float32 ``[B, frames_per_clip, dim]``; the export step stacks the
  classifier on it and saves one SavedModel.
* ``embed(waveforms, batch_size=)``: NumPy in, NumPy out, the whole batch through one graph call.

Embedders are looked up by name with :func:`get_embedder`. Modules are imported lazily so that
asking for one embedder never imports (or fails on) another one's dependencies.
"""

from __future__ import annotations

import abc
import importlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from disco import params
from disco.errors import ConfigError, EmbedderUnavailableError

if TYPE_CHECKING:  # keras/tensorflow are heavy: import them only where a model is built
    import keras
    import tensorflow as tf

log = logging.getLogger(__name__)

# name -> "module:factory". Add one entry per embedder; the factory is called with the options
# given to get_embedder() as keyword arguments.
EMBEDDER_REGISTRY: dict[str, str] = {
    "vggish": "disco.embedders.vggish:VGGishEmbedder",
    "musicnn": "disco.embedders.musicnn:MusicnnEmbedder",
}


def set_checked_weights(
    assignments: Sequence[tuple[Any, list[Any]]],
    *,
    missing: Sequence[str],
    wrong: Sequence[str],
    source: str,
    model: str,
) -> None:
    """Set each ``(layer, values)`` only when no variable was missing or of the wrong shape (a
    partial load would silently give a different model); otherwise one error naming them all."""
    if missing or wrong:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if wrong:
            problems.append(f"wrong shape {', '.join(wrong)}")
        raise EmbedderUnavailableError(f"{source}: not {model} model: {'; '.join(problems)}")
    for layer, values in assignments:
        layer.set_weights(values)


class Embedder(abc.ABC):
    """Base class of all embedders. Subclasses set the attributes in ``__init__`` and implement
    :meth:`keras_model`; :meth:`embed` is shared."""

    name: str  # "vggish" | "musicnn"
    version: str  # identity of the weights (handle, checkpoint path, model name)
    frames_per_clip: int  # frames for one params.CLIP_SAMPLES clip
    dim: int  # embedding size per frame
    precision: str = "float32"  # compute precision actually used ("float32" | "bfloat16")
    input_samples: int = params.CLIP_SAMPLES  # waveform length keras_model() expects

    _predict_fn: Any = None

    @classmethod
    def options(
        cls,
        *,
        precision: str | None = None,
        vggish_handle: str | None = None,
        vggish_checkpoint: str | None = None,
        pca_params: str | None = None,
    ) -> dict[str, Any]:
        """This embedder's keyword arguments from the embed command's options, each embedder
        taking only its own (VGGish overrides this for its weights and PCA)."""
        if vggish_checkpoint or pca_params:
            raise ConfigError(
                f"--vggish-checkpoint/--pca-params apply to the vggish embedder, not {cls.name}"
            )
        return {"precision": precision}

    @abc.abstractmethod
    def keras_model(self) -> keras.Model:
        """The model, built once and cached: float32 [B, input_samples] -> [B, frames, dim]."""

    def describe(self) -> dict[str, Any]:
        """What a step records about the embedder in its summary.json."""
        return {
            "embedder": self.name,
            "embedder_version": self.version,
            "frames": self.frames_per_clip,
            "dim": self.dim,
            "precision": self.precision,
        }

    def _graph_fn(self) -> tf.types.experimental.GenericFunction:
        # One tf.function traced once for any batch size (batch dimension None), so embed() never
        # retraces and each batch is a single graph call with no per-clip Python.
        if self._predict_fn is None:
            import tensorflow as tf

            model = self.keras_model()
            spec = tf.TensorSpec([None, self.input_samples], tf.float32, name="waveform")

            @tf.function(input_signature=[spec], reduce_retracing=True)
            def predict(waveform: tf.Tensor) -> tf.Tensor:
                return tf.cast(model(waveform, training=False), tf.float32)

            self._predict_fn = predict
        return self._predict_fn

    def embed(self, waveforms: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        """Embed float waveforms ``[B, input_samples]`` (values in [-1, 1]) in batches of
        ``batch_size``; returns float32 ``[B, frames_per_clip, dim]``."""
        waveforms = np.asarray(waveforms)
        if waveforms.ndim == 1:
            waveforms = waveforms[np.newaxis]
        if waveforms.ndim != 2 or waveforms.shape[1] != self.input_samples:
            raise ConfigError(
                f"{self.name}: expected waveforms of shape [batch, {self.input_samples}] "
                f"({self.input_samples / params.SAMPLE_RATE:g} s at {params.SAMPLE_RATE} Hz), "
                f"got {list(waveforms.shape)}"
            )
        if batch_size < 1:
            raise ConfigError(f"{self.name}: batch_size must be >= 1, got {batch_size}")
        out = np.empty((waveforms.shape[0], self.frames_per_clip, self.dim), np.float32)
        if waveforms.shape[0] == 0:
            return out
        predict = self._graph_fn()
        waveforms = waveforms.astype(np.float32, copy=False)
        for start in range(0, waveforms.shape[0], batch_size):
            chunk = waveforms[start : start + batch_size]
            out[start : start + len(chunk)] = predict(chunk).numpy()
        return out


def available_embedders() -> tuple[str, ...]:
    """Registered embedder names, e.g. for argparse ``choices``."""
    return tuple(sorted(EMBEDDER_REGISTRY))


def _embedder_class(name: str) -> type[Embedder]:
    target = EMBEDDER_REGISTRY.get(name)
    if target is None:
        raise ConfigError(f"unknown embedder {name!r}; available: {', '.join(available_embedders())}")
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def embedder_options(name: str, **command_options: Any) -> dict[str, Any]:
    """The keyword options for get_embedder(name) from the embed command's options
    (``precision``, ``vggish_handle``, ``vggish_checkpoint``, ``pca_params``), as the embedder
    declares them (:meth:`Embedder.options`)."""
    return _embedder_class(name).options(**command_options)


def get_embedder(name: str, **options: Any) -> Embedder:
    """Build the embedder called ``name`` with its options, e.g.
    ``get_embedder("vggish", handle=..., checkpoint=..., pca_params=..., precision=None)``."""
    embedder = _embedder_class(name)(**options)
    log.info(
        "embedder %s (%s): %d frames x %d dims per clip, precision %s",
        embedder.name,
        embedder.version,
        embedder.frames_per_clip,
        embedder.dim,
        embedder.precision,
    )
    return embedder
