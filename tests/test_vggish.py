"""VGGish: frontend against an independent NumPy implementation of the published algorithm, weight
loading through the real TF Hub and checkpoint code paths (local stand-ins with VGGish's exact
variable names and signature), post-processing, and clear errors when weights are unreachable."""

from __future__ import annotations

import json
from pathlib import Path

import helpers.vggish_fixtures as fx
import numpy as np
import pytest
import tensorflow as tf

from disco import params
from disco.embedders import frontend
from disco.embedders.base import available_embedders, get_embedder
from disco.embedders.vggish import VGGishEmbedder, postprocess
from disco.errors import ConfigError, EmbedderUnavailableError

WEIGHT_SEED = 7
PCA_SEED = 8
# Documented in docs/vggish.md: float32 TF frontend vs float64 NumPy reference.
LOG_MEL_TOLERANCE = 1e-3


# --- independent NumPy reference of the published frontend --------------------------------


def _htk_mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def numpy_log_mel_examples(wave: np.ndarray) -> np.ndarray:
    """16 kHz waveform -> [examples, 96, 64] as the VGGish paper/reference describe it, float64."""
    win, hop, nfft, bands = 400, 160, 512, 64
    frames = 1 + (len(wave) - win) // hop
    index = np.arange(win)[np.newaxis, :] + hop * np.arange(frames)[:, np.newaxis]
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)  # periodic
    magnitude = np.abs(np.fft.rfft(wave.astype(np.float64)[index] * hann, nfft))
    bins_mel = _htk_mel(np.linspace(0.0, 8000.0, nfft // 2 + 1))
    edges = np.linspace(_htk_mel(125.0), _htk_mel(7500.0), bands + 2)
    weights = np.zeros((nfft // 2 + 1, bands))
    for band in range(bands):
        low, centre, high = edges[band : band + 3]
        rising = (bins_mel - low) / (centre - low)
        falling = (high - bins_mel) / (high - centre)
        weights[:, band] = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0  # no DC
    log_mel = np.log(magnitude @ weights + 0.01)
    examples = 1 + (frames - 96) // 96
    return np.stack([log_mel[i * 96 : (i + 1) * 96] for i in range(examples)])


def numpy_postprocess(raw: np.ndarray, pca: dict[str, np.ndarray]) -> np.ndarray:
    out = np.empty(raw.shape, np.uint8)
    for index in np.ndindex(raw.shape[:-1]):
        centred = raw[index].astype(np.float64) - pca["pca_means"][:, 0]
        projected = pca["pca_eigen_vectors"] @ centred
        clipped = np.minimum(np.maximum(projected, -2.0), 2.0)
        out[index] = np.trunc((clipped + 2.0) * 255.0 / 4.0).astype(np.uint8)
    return out


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("vggish_weights")
    weights = fx.write_hub_savedmodel(root / "hub", seed=WEIGHT_SEED)
    fx.write_v1_checkpoint(root / "vggish_model.ckpt", weights)
    pca = fx.write_pca_params(root / "vggish_pca_params.npz", seed=PCA_SEED)
    return {"root": root, "weights": weights, "pca": pca}


@pytest.fixture(scope="module")
def hub_embedder(weights_dir: dict) -> VGGishEmbedder:
    return get_embedder("vggish", handle=str(weights_dir["root"] / "hub"), precision="float32")


@pytest.fixture(scope="module")
def waves() -> np.ndarray:
    rng = np.random.default_rng(20180)
    t = np.arange(params.CLIP_SAMPLES) / params.SAMPLE_RATE
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * t) * (1 + np.sin(2 * np.pi * 0.3 * t)) / 2
    noise = rng.uniform(-0.3, 0.3, params.CLIP_SAMPLES)
    chirp = 0.4 * np.sin(2 * np.pi * (100.0 + 300.0 * t) * t)
    return np.stack([tone, noise, chirp]).astype(np.float32)


# --- frontend ------------------------------------------------------------------------------


def test_framing_rule_gives_ten_frames_per_clip() -> None:
    assert frontend.VGGISH_WINDOW_SAMPLES == 400
    assert frontend.VGGISH_HOP_SAMPLES == 160
    assert frontend.VGGISH_FFT_LENGTH == 512
    assert frontend.vggish_num_examples(params.CLIP_SAMPLES) == params.RELEASE_VGGISH_FRAMES
    # 96 STFT frames need 400 + 95 * 160 = 15600 samples; one sample less gives no example.
    assert frontend.vggish_num_examples(15600) == 1
    assert frontend.vggish_num_examples(15599) == 0
    for samples in (15600, 31_000, 31_040, 99_999, params.CLIP_SAMPLES):
        stft_frames = 1 + (samples - 400) // 160
        assert frontend.vggish_num_examples(samples) == 1 + (stft_frames - 96) // 96


def test_frontend_matches_numpy_reference(waves: np.ndarray) -> None:
    layer = frontend.VGGishFrontend()
    got = layer(tf.constant(waves)).numpy()
    assert got.shape == (3, 10, 96, 64)
    assert got.dtype == np.float32
    for wave, tf_examples in zip(waves, got):
        expected = numpy_log_mel_examples(wave)
        assert np.abs(tf_examples - expected).max() < LOG_MEL_TOLERANCE
    # The frontend must see signal: examples differ across clips (not a constant log(0.01)).
    assert np.abs(got[0] - got[1]).mean() > 1.0


# --- weights: hub SavedModel, checkpoint ------------------------------------------------------


def test_registry_lists_vggish_and_rejects_unknown() -> None:
    assert "vggish" in available_embedders()
    with pytest.raises(ConfigError, match="unknown embedder 'nope'"):
        get_embedder("nope")


def test_hub_model_matches_savedmodel_forward_pass(
    hub_embedder: VGGishEmbedder, weights_dir: dict, waves: np.ndarray
) -> None:
    import tensorflow_hub as hub

    assert (hub_embedder.frames_per_clip, hub_embedder.dim) == (10, 128)
    assert hub_embedder.precision == "float32"
    got = hub_embedder.embed(waves, batch_size=2)
    assert got.shape == (3, 10, 128) and got.dtype == np.float32
    saved = hub.load(str(weights_dir["root"] / "hub"))
    for wave, embedding in zip(waves, got):
        expected = saved(tf.constant(wave)).numpy()  # the SavedModel's own raw-op forward pass
        scale = np.abs(expected).max()
        assert scale > 0.1
        np.testing.assert_allclose(embedding, expected, atol=1e-5 * scale, rtol=0)
    # Different clips give different embeddings (the weights are really used).
    assert np.abs(got[0] - got[1]).max() > 0.1 * np.abs(got).max()


def test_checkpoint_and_hub_give_same_embeddings(
    hub_embedder: VGGishEmbedder, weights_dir: dict, waves: np.ndarray
) -> None:
    ckpt = get_embedder(
        "vggish", checkpoint=str(weights_dir["root"] / "vggish_model.ckpt"), precision="float32"
    )
    assert ckpt.version.endswith("vggish_model.ckpt")
    np.testing.assert_array_equal(ckpt.embed(waves), hub_embedder.embed(waves))


def test_batching_does_not_change_results(hub_embedder: VGGishEmbedder, waves: np.ndarray) -> None:
    together = hub_embedder.embed(waves, batch_size=3)
    one_by_one = np.concatenate([hub_embedder.embed(w[np.newaxis]) for w in waves])
    np.testing.assert_allclose(together, one_by_one, atol=1e-4, rtol=1e-4)
    with pytest.raises(ConfigError, match=r"\[batch, 160000\]"):
        hub_embedder.embed(waves[:, :16000])


def test_keras_model_is_one_graph_from_waveform(hub_embedder: VGGishEmbedder, waves: np.ndarray) -> None:
    model = hub_embedder.keras_model()
    assert tuple(model.input.shape) == (None, params.CLIP_SAMPLES)
    assert tuple(model.output.shape) == (None, 10, 128)
    direct = model(tf.constant(waves[:1]), training=False).numpy()
    np.testing.assert_allclose(direct, hub_embedder.embed(waves[:1]), atol=1e-5)


# --- post-processing ---------------------------------------------------------------------------


def test_postprocess_matches_numpy_and_release_format(
    hub_embedder: VGGishEmbedder, weights_dir: dict, openmic_sample: Path
) -> None:
    clip = fx.load_real_clip(openmic_sample / "audio" / "000" / "000046_3840.ogg")[np.newaxis]
    raw = hub_embedder.embed(clip)
    expected = numpy_postprocess(raw, weights_dir["pca"])
    np.testing.assert_array_equal(
        postprocess(raw, weights_dir["pca"]["pca_eigen_vectors"], weights_dir["pca"]["pca_means"]),
        expected,
    )
    # In-graph PCA + quantise (float32) through the embedder: same up to one quantisation step
    # where float32 rounding crosses a level boundary.
    pca_embedder = get_embedder(
        "vggish",
        checkpoint=str(weights_dir["root"] / "vggish_model.ckpt"),
        pca_params=str(weights_dir["root"] / "vggish_pca_params.npz"),
        precision="float32",
    )
    assert pca_embedder.postprocess and pca_embedder.version.endswith("+pca")
    graph = pca_embedder.embed(clip)
    assert graph.shape == (1, 10, 128)
    assert np.all(graph == np.round(graph)) and graph.min() >= 0 and graph.max() <= 255
    assert np.abs(graph - expected).max() <= 1
    assert np.mean(graph == expected) >= 0.99
    assert len(np.unique(expected)) > 20  # not all clipped to one end
    # The release's own features for this clip: same shape, dtype range and 0.96 s frame times.
    release = json.loads((openmic_sample / params.VGGISH_DIR / "000" / "000046_3840.json").read_text())
    features = np.asarray(release["features"])
    assert features.shape == expected[0].shape == (params.RELEASE_VGGISH_FRAMES, 128)
    assert np.array_equal(features, features.astype(np.uint8))
    np.testing.assert_allclose(
        release["time_points"], np.arange(10) * params.VGGISH_EXAMPLE_HOP_SECONDS, atol=1e-9
    )


def test_postprocess_needs_pca_params(weights_dir: dict) -> None:
    with pytest.raises(ConfigError, match="pca_params"):
        VGGishEmbedder(checkpoint=str(weights_dir["root"] / "vggish_model.ckpt"), postprocess=True)


# --- unreachable weights ---------------------------------------------------------------------


def test_unreachable_default_handle_names_offline_alternatives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Empty cache, short socket timeout: the real hub download path runs and fails fast here.
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub-cache"))
    monkeypatch.setenv("DISCO_HUB_TIMEOUT_S", "10")
    with pytest.raises(EmbedderUnavailableError) as info:
        get_embedder("vggish", precision="float32")
    message = str(info.value)
    assert params.VGGISH_DEFAULT_HANDLE in message
    assert "local directory" in message and "gs://" in message
    assert "--vggish-checkpoint" in message


def test_missing_local_handle_and_checkpoint(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(EmbedderUnavailableError, match="no-such-model.*--vggish-checkpoint"):
        get_embedder("vggish", handle=str(missing), precision="float32")
    with pytest.raises(EmbedderUnavailableError, match="nope.ckpt: VGGish checkpoint not found"):
        get_embedder("vggish", checkpoint=str(tmp_path / "nope.ckpt"), precision="float32")


def test_checkpoint_missing_a_variable_is_refused(tmp_path: Path) -> None:
    weights = fx.random_weights(WEIGHT_SEED)
    del weights["vggish/conv4/conv4_2/biases"]
    weights["vggish/fc2/weights"] = weights["vggish/fc2/weights"][:, :64]
    path = fx.write_v1_checkpoint(tmp_path / "broken.ckpt", weights)
    with pytest.raises(EmbedderUnavailableError) as info:
        get_embedder("vggish", checkpoint=str(path), precision="float32")
    assert "missing vggish/conv4/conv4_2/biases" in str(info.value)
    assert "vggish/fc2/weights [4096, 64]" in str(info.value)
