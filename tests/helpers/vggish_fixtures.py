"""Small local stand-ins for VGGish's published weights (TF Hub SavedModel, TF1 checkpoint, PCA
params), with VGGish's exact variable names, shapes and signature but seeded random values.

The real files cannot be downloaded here. These builders are written independently of
``disco.embedders`` (their own names table, their own forward pass in raw TF ops, in the way the
published hub model computes it), so that loading them through the real code paths checks the
name mapping, the layer layout and the frontend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import tensorflow as tf

from disco import params

# Variable names and shapes as in the published checkpoint / hub model (TF1 slim scopes).
SLIM_SHAPES: dict[str, tuple[int, ...]] = {
    "vggish/conv1/weights": (3, 3, 1, 64),
    "vggish/conv1/biases": (64,),
    "vggish/conv2/weights": (3, 3, 64, 128),
    "vggish/conv2/biases": (128,),
    "vggish/conv3/conv3_1/weights": (3, 3, 128, 256),
    "vggish/conv3/conv3_1/biases": (256,),
    "vggish/conv3/conv3_2/weights": (3, 3, 256, 256),
    "vggish/conv3/conv3_2/biases": (256,),
    "vggish/conv4/conv4_1/weights": (3, 3, 256, 512),
    "vggish/conv4/conv4_1/biases": (512,),
    "vggish/conv4/conv4_2/weights": (3, 3, 512, 512),
    "vggish/conv4/conv4_2/biases": (512,),
    "vggish/fc1/fc1_1/weights": (6 * 4 * 512, 4096),
    "vggish/fc1/fc1_1/biases": (4096,),
    "vggish/fc1/fc1_2/weights": (4096, 4096),
    "vggish/fc1/fc1_2/biases": (4096,),
    "vggish/fc2/weights": (4096, 128),
    "vggish/fc2/biases": (128,),
}
CONV_SCOPES = (
    "vggish/conv1",
    "vggish/conv2",
    "vggish/conv3/conv3_1",
    "vggish/conv3/conv3_2",
    "vggish/conv4/conv4_1",
    "vggish/conv4/conv4_2",
)
POOL_AFTER = {"vggish/conv1", "vggish/conv2", "vggish/conv3/conv3_2", "vggish/conv4/conv4_2"}
FC_SCOPES = ("vggish/fc1/fc1_1", "vggish/fc1/fc1_2", "vggish/fc2")


def random_weights(seed: int) -> dict[str, np.ndarray]:
    """He-scaled random weights (so activations neither vanish nor explode through 9 layers) and
    non-zero biases (so a lost bias shows)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in SLIM_SHAPES.items():
        if name.endswith("/weights"):
            fan_in = int(np.prod(shape[:-1]))
            weights[name] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        else:
            weights[name] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    return weights


def reference_forward(weights: dict[str, tf.Variable | np.ndarray], waveform: tf.Tensor) -> Any:
    """The published hub model's computation, in raw TF ops: 1-D 16 kHz waveform -> [N, 128].
    Frontend as the hub export does it (tf.signal STFT/mel); slim conv/pool/fc with ReLU on all
    hidden layers and none on fc2 (the current reference and the hub model)."""
    stft = tf.signal.stft(waveform, frame_length=400, frame_step=160, fft_length=512)
    magnitude = tf.abs(stft)
    mel = tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125.0, 7500.0)
    log_mel = tf.math.log(tf.matmul(magnitude, mel) + 0.01)
    net = tf.signal.frame(log_mel, 96, 96, axis=0)[..., tf.newaxis]
    for scope in CONV_SCOPES:
        net = tf.nn.conv2d(net, weights[f"{scope}/weights"], strides=1, padding="SAME")
        net = tf.nn.relu(net + weights[f"{scope}/biases"])
        if scope in POOL_AFTER:
            net = tf.nn.max_pool2d(net, ksize=2, strides=2, padding="SAME")
    net = tf.reshape(net, [tf.shape(net)[0], -1])
    for scope in FC_SCOPES:
        net = tf.matmul(net, weights[f"{scope}/weights"]) + weights[f"{scope}/biases"]
        if scope != "vggish/fc2":
            net = tf.nn.relu(net)
    return net


class HubVGGish(tf.Module):
    """Same signature as the hub model: 1-D float32 waveform -> float32 [N, 128]."""

    def __init__(self, weights: dict[str, np.ndarray]):
        super().__init__()
        self._variables = [tf.Variable(value, name=name) for name, value in weights.items()]

    @tf.function(input_signature=(tf.TensorSpec(shape=[None], dtype=tf.float32),))
    def __call__(self, waveform: tf.Tensor) -> tf.Tensor:
        by_name = {v.name.split(":")[0]: v for v in self._variables}
        return reference_forward(by_name, waveform)


def write_hub_savedmodel(out_dir: Path, *, seed: int) -> dict[str, np.ndarray]:
    """A SavedModel in ``out_dir`` that ``hub.load(str(out_dir))`` loads; returns its weights."""
    weights = random_weights(seed)
    tf.saved_model.save(HubVGGish(weights), str(out_dir))
    return weights


def write_v1_checkpoint(path: Path, weights: dict[str, np.ndarray]) -> Path:
    """A single-file TF1 (V1 format) checkpoint like the published ``vggish_model.ckpt``."""
    names = list(weights)
    tf.raw_ops.Save(filename=str(path), tensor_names=names, data=[tf.constant(weights[n]) for n in names])
    return path


def write_pca_params(path: Path, *, seed: int) -> dict[str, np.ndarray]:
    """``vggish_pca_params.npz`` stand-in: an orthonormal [128, 128] basis (rows are
    eigenvectors, as the published file) and means [128, 1]."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    pca = {
        "pca_eigen_vectors": basis.T.astype(np.float64),
        "pca_means": (rng.standard_normal((128, 1)) * 0.1).astype(np.float64),
    }
    np.savez(path, **pca)
    return pca


def load_real_clip(path: Path) -> np.ndarray:
    """Mono 16 kHz float32, tiled (short clips) or trimmed to CLIP_SAMPLES."""
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = soxr.resample(audio.mean(axis=1), rate, params.SAMPLE_RATE)
    return np.resize(mono, params.CLIP_SAMPLES).astype(np.float32)
