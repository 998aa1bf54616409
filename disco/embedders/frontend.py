"""TF-op log-mel frontends, batched over clips.

VGGish's published reference frontend (constants in ``disco.params``, ``VGGISH_*``):

1. STFT of the 16 kHz waveform, 25 ms window (400 samples), 10 ms hop (160 samples), periodic
   Hann window, FFT length = next power of two >= window (512), no padding (only whole windows:
   ``1 + (num_samples - 400) // 160`` frames, 998 for a 10 s clip);
2. magnitude (not power) spectrogram, 257 bins;
3. 64 triangular mel bands between 125 and 7500 Hz on the HTK mel scale
   (``mel = 1127 ln(1 + f / 700)``), triangles laid out in mel space, DC bin weight 0;
4. ``log(mel + 0.01)``;
5. framed into examples of 96 frames x 64 bands with a hop of 96 frames (0.96 s), again only whole
   examples: ``num_examples = 1 + (num_frames - 96) // 96`` (10 for a 10 s clip).

Everything is TF ops on a batch ``[B, samples]``, so it can live inside a Keras model and a
SavedModel, and runs as one graph call for the whole batch. The STFT / mel helpers take their
parameters as arguments so that other embedders can reuse them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from disco import params

if TYPE_CHECKING:
    import tensorflow as tf

import keras


def seconds_to_samples(seconds: float, sample_rate: int = params.SAMPLE_RATE) -> int:
    # round(), as the reference does: 0.025 * 16000 is 399.99999999999994 in floating point.
    return int(round(seconds * sample_rate))


def fft_length_for(window_samples: int) -> int:
    """Smallest power of two >= the window, as the reference chooses its FFT size."""
    return 2 ** int(math.ceil(math.log2(window_samples)))


def num_frames(num_samples: int, *, window: int, hop: int) -> int:
    """Whole windows of ``window``, hop ``hop``, in ``num_samples`` (no padding); 0 if none."""
    if num_samples < window:
        return 0
    return 1 + (num_samples - window) // hop


VGGISH_WINDOW_SAMPLES = seconds_to_samples(params.VGGISH_STFT_WINDOW_SECONDS)  # 400
VGGISH_HOP_SAMPLES = seconds_to_samples(params.VGGISH_STFT_HOP_SECONDS)  # 160
VGGISH_FFT_LENGTH = fft_length_for(VGGISH_WINDOW_SAMPLES)  # 512
VGGISH_EXAMPLE_HOP_FRAMES = int(
    round(params.VGGISH_EXAMPLE_HOP_SECONDS / params.VGGISH_STFT_HOP_SECONDS)
)  # 96


def vggish_num_examples(num_samples: int = params.CLIP_SAMPLES) -> int:
    """VGGish examples (output frames) for a waveform of ``num_samples`` at 16 kHz:
    ``1 + (stft_frames - 96) // 96`` with ``stft_frames = 1 + (num_samples - 400) // 160``."""
    frames = num_frames(num_samples, window=VGGISH_WINDOW_SAMPLES, hop=VGGISH_HOP_SAMPLES)
    return num_frames(frames, window=params.VGGISH_NUM_FRAMES, hop=VGGISH_EXAMPLE_HOP_FRAMES)


def stft_magnitude(
    waveforms: tf.Tensor, *, window_samples: int, hop_samples: int, fft_length: int
) -> tf.Tensor:
    """|STFT| of ``[..., samples]`` float32 -> ``[..., frames, fft_length // 2 + 1]``, periodic
    Hann window, whole frames only."""
    import tensorflow as tf

    stft = tf.signal.stft(
        waveforms,
        frame_length=window_samples,
        frame_step=hop_samples,
        fft_length=fft_length,
        window_fn=lambda n, dtype: tf.signal.hann_window(n, periodic=True, dtype=dtype),
        pad_end=False,
    )
    return tf.abs(stft)


def mel_matrix(
    *,
    num_spectrogram_bins: int,
    num_mel_bins: int,
    sample_rate: int,
    lower_hz: float,
    upper_hz: float,
) -> np.ndarray:
    """HTK-scale triangular mel filterbank ``[num_spectrogram_bins, num_mel_bins]`` (float32),
    computed once as a constant. ``tf.signal.linear_to_mel_weight_matrix`` uses the HTK formula and
    lays the triangles out in mel space with the DC bin zeroed, as VGGish's reference does."""
    import tensorflow as tf

    matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=num_mel_bins,
        num_spectrogram_bins=num_spectrogram_bins,
        sample_rate=sample_rate,
        lower_edge_hertz=lower_hz,
        upper_edge_hertz=upper_hz,
        dtype=tf.float64,
    )
    return np.asarray(matrix, dtype=np.float32)


def vggish_mel_matrix() -> np.ndarray:
    return mel_matrix(
        num_spectrogram_bins=VGGISH_FFT_LENGTH // 2 + 1,
        num_mel_bins=params.VGGISH_NUM_MEL_BINS,
        sample_rate=params.SAMPLE_RATE,
        lower_hz=params.VGGISH_MEL_MIN_HZ,
        upper_hz=params.VGGISH_MEL_MAX_HZ,
    )


def log_mel(magnitude: tf.Tensor, mel_weights: Any, *, log_offset: float) -> tf.Tensor:
    """``log(magnitude @ mel_weights + log_offset)``, natural log as the reference uses."""
    import tensorflow as tf

    mel = tf.tensordot(magnitude, tf.constant(mel_weights, dtype=magnitude.dtype), axes=1)
    return tf.math.log(mel + log_offset)


def frame_examples(log_mel_frames: tf.Tensor, *, window: int, hop: int) -> tf.Tensor:
    """``[B, frames, bands]`` -> ``[B, examples, window, bands]``, whole examples only."""
    import tensorflow as tf

    return tf.signal.frame(log_mel_frames, frame_length=window, frame_step=hop, axis=1)


@keras.saving.register_keras_serializable(package="disco")
class VGGishFrontend(keras.layers.Layer):
    """Waveform float32 ``[B, samples]`` in [-1, 1] -> log-mel examples ``[B, N, 96, 64]``.

    Always computes in float32 (its dtype is fixed), also inside a bfloat16 model: the log of a
    small mel energy loses too much in bfloat16's 8-bit mantissa, and the frontend is cheap."""

    def __init__(self, **kwargs: Any):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self._mel = vggish_mel_matrix()

    def call(self, waveforms: tf.Tensor) -> tf.Tensor:
        magnitude = stft_magnitude(
            waveforms,
            window_samples=VGGISH_WINDOW_SAMPLES,
            hop_samples=VGGISH_HOP_SAMPLES,
            fft_length=VGGISH_FFT_LENGTH,
        )
        features = log_mel(magnitude, self._mel, log_offset=params.VGGISH_LOG_OFFSET)
        return frame_examples(features, window=params.VGGISH_NUM_FRAMES, hop=VGGISH_EXAMPLE_HOP_FRAMES)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        samples = input_shape[-1]
        examples = None if samples is None else vggish_num_examples(samples)
        return (*input_shape[:-1], examples, params.VGGISH_NUM_FRAMES, params.VGGISH_NUM_MEL_BINS)
