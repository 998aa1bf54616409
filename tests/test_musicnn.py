"""musicnn (MTT_musicnn) port: frontend against librosa (what the original computes), weight
loading from the wheel's real checkpoint, shapes / any length / overlap, and a golden comparison
with the ORIGINAL implementation run in a subprocess (TF1 graph mode, TF_USE_LEGACY_KERAS=1) on
real clips from ../shared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from scipy.signal import resample_poly

from disco import params
from disco.embedders import musicnn
from disco.embedders.base import available_embedders, get_embedder
from disco.errors import ConfigError, EmbedderUnavailableError

# Documented in docs/musicnn.md. Port vs original on the original's own (float16-rounded) input:
# |port - original| <= GOLDEN_TOLERANCE * max(1, |original|), i.e. absolute below 1, relative
# above (max_pool reaches ~25; float32 convolutions summed in a different order differ by ~1e-6
# relative).
GOLDEN_TOLERANCE = 1e-4
# Waveform -> embedding, port (float32 log-mel) vs original (float16 log-mel): the original's
# float16 rounding of its input, not the port, makes this difference.
END_TO_END_TOLERANCE = 0.05
# librosa float32 mel -> log10 in float64 vs the port's TF float32 frontend.
LOG_MEL_TOLERANCE = 1e-4
# float16's largest finite value / 10000: above this mel power the original's input is inf.
FLOAT16_MEL_LIMIT = 65504.0 / params.MUSICNN_LOG_SCALE
# bfloat16 vs float32 embeddings of a real clip, per frame (measured: 0.9999).
BF16_MIN_COSINE = 0.999
SAFE_MEL = 2.0  # scale golden inputs so the original's largest mel power stays well below it


def _load_16k_mono(path: Path) -> np.ndarray:
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if sr != params.SAMPLE_RATE:
        gcd = np.gcd(sr, params.SAMPLE_RATE)
        mono = resample_poly(mono, params.SAMPLE_RATE // gcd, sr // gcd)
    return mono.astype(np.float32)


def _librosa_mel_power(wave: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.feature.melspectrogram(
        y=wave, sr=params.SAMPLE_RATE, n_fft=512, hop_length=256, n_mels=96
    ).T


@pytest.fixture(scope="module")
def embedder() -> musicnn.MusicnnEmbedder:
    return musicnn.MusicnnEmbedder(precision="float32")


@pytest.fixture(scope="module")
def openmic_clip(openmic_sample: Path) -> np.ndarray:
    return _load_16k_mono(openmic_sample / "audio" / "000" / "000046_3840.ogg")


# --- frontend --------------------------------------------------------------------------------


def test_slaney_mel_matrix_matches_librosa() -> None:
    import librosa

    ours = musicnn.slaney_mel_matrix()
    reference = librosa.filters.mel(sr=params.SAMPLE_RATE, n_fft=512, n_mels=96).T
    assert ours.shape == (257, 96)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-7)


def test_patch_arithmetic_matches_librosa() -> None:
    import librosa

    expected = librosa.time_to_frames(3, sr=params.SAMPLE_RATE, n_fft=512, hop_length=256) + 1
    assert musicnn.PATCH_FRAMES == expected == 187
    assert musicnn.hop_frames(1.0) == librosa.time_to_frames(
        1.0, sr=params.SAMPLE_RATE, n_fft=512, hop_length=256
    )
    assert musicnn.num_stft_frames(params.CLIP_SAMPLES) == 626
    assert musicnn.num_patches(params.CLIP_SAMPLES) == 3
    assert musicnn.num_patches(params.CLIP_SAMPLES, hop=musicnn.hop_frames(1.0)) == 8
    assert musicnn.num_patches(100) == 1  # shorter than a patch: padded to one


def test_log_mel_matches_librosa_on_real_clip(openmic_clip: np.ndarray) -> None:
    ours = musicnn.log_mel_spectrogram(
        tf.constant(openmic_clip[np.newaxis]), musicnn.slaney_mel_matrix()
    ).numpy()[0]
    reference = np.log10(10000.0 * _librosa_mel_power(openmic_clip).astype(np.float64) + 1.0)
    assert ours.shape == reference.shape == (626, 96)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=LOG_MEL_TOLERANCE)
    # The point of computing in float32: this real clip at its own level overflows float16.
    assert _librosa_mel_power(openmic_clip).max() > FLOAT16_MEL_LIMIT
    assert np.isfinite(ours).all()


# --- the embedder ----------------------------------------------------------------------------


def test_registry_and_describe(embedder: musicnn.MusicnnEmbedder) -> None:
    assert "musicnn" in available_embedders()
    info = embedder.describe()
    assert info["embedder"] == "musicnn"
    assert info["embedder_version"].startswith("MTT_musicnn@musicnn-0.1.0")
    assert (info["frames"], info["dim"], info["precision"]) == (3, 753, "float32")
    assert info["musicnn_layer"] == "max_pool"


def test_embed_shapes_and_finite_on_loud_input(
    embedder: musicnn.MusicnnEmbedder, openmic_clip: np.ndarray, rng: np.random.Generator
) -> None:
    loud = np.clip(rng.standard_normal(params.CLIP_SAMPLES), -1, 1).astype(np.float32)
    batch = np.stack([openmic_clip, loud, np.zeros(params.CLIP_SAMPLES, np.float32)])
    out = embedder.embed(batch, batch_size=2)
    assert out.shape == (3, 3, 753) and out.dtype == np.float32
    assert np.isfinite(out).all()
    # max_pool includes post-ReLU/BN maps: different clips must give different embeddings.
    assert not np.allclose(out[0], out[1])
    # batching must not change a clip's embedding
    alone = embedder.embed(openmic_clip[np.newaxis])
    np.testing.assert_allclose(alone[0], out[0], rtol=1e-5, atol=1e-5)
    assert embedder.keras_model().output_shape == (None, 3, 753)


def test_embed_rejects_wrong_length(embedder: musicnn.MusicnnEmbedder) -> None:
    with pytest.raises(ConfigError, match="musicnn"):
        embedder.embed(np.zeros((1, 1000), np.float32))


def test_any_length_and_overlap(embedder: musicnn.MusicnnEmbedder, openmic_clip: np.ndarray) -> None:
    # 1 s: the original fails (no whole patch); the port pads with silence to one patch.
    short = musicnn.build_musicnn_model(embedder.network, input_samples=params.SAMPLE_RATE)
    out = short(openmic_clip[np.newaxis, : params.SAMPLE_RATE]).numpy()
    assert out.shape == (1, 1, 753) and np.isfinite(out).all()
    # 1 s hop: 8 overlapping patches; patch k starts at frame 61 k, so patch 3 (frame 183) of
    # the overlapping model is not patch 1 (frame 187) of the default model, but patch 0 is.
    hop = musicnn.hop_frames(1.0)
    overlapping = musicnn.build_musicnn_model(embedder.network, hop=hop)
    dense = overlapping(openmic_clip[np.newaxis]).numpy()
    sparse = embedder.embed(openmic_clip[np.newaxis])
    assert dense.shape == (1, 8, 753)
    np.testing.assert_allclose(dense[0, 0], sparse[0, 0], rtol=1e-5, atol=1e-5)


def test_other_layers(embedder: musicnn.MusicnnEmbedder, openmic_clip: np.ndarray) -> None:
    for layer, dim in (("penultimate", 200), ("taggram", 50), ("mean_pool", 753)):
        model = musicnn.build_musicnn_model(embedder.network, layer=layer)
        out = model(openmic_clip[np.newaxis]).numpy()
        assert out.shape == (1, 3, dim)
    taggram = musicnn.build_musicnn_model(embedder.network, layer="taggram")(openmic_clip[np.newaxis]).numpy()
    assert ((taggram > 0) & (taggram < 1)).all()


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="layer"):
        get_embedder("musicnn", layer="cnn9", precision="float32")
    missing = str(tmp_path / "nowhere") + os.sep
    with pytest.raises(EmbedderUnavailableError, match="nowhere"):
        get_embedder("musicnn", checkpoint=missing, precision="float32")


def test_wrong_checkpoint_is_refused(embedder: musicnn.MusicnnEmbedder) -> None:
    weights = musicnn.read_checkpoint(musicnn.checkpoint_prefix())
    del weights["conv2d_3/kernel"]
    weights["dense/bias"] = np.zeros(7, np.float32)
    with pytest.raises(EmbedderUnavailableError, match=r"conv2d_3/kernel.*dense/bias"):
        musicnn.assign_checkpoint_weights(embedder.network, weights, source="test")


# --- golden comparison with the original implementation -------------------------------------


def _golden_inputs(openmic_clip: np.ndarray, real_clips: Path) -> dict[str, np.ndarray]:
    """Real clips at 16 kHz mono, at least one patch long (the original fails on shorter input):
    the OpenMIC clip, TinySOL notes, an IRMAS excerpt, and 1 s PHENICX stems joined end to end."""
    phenicx = sorted((real_clips / "phenicx_anechoic" / "audio" / "beethoven").glob("*.wav"))
    clips = {
        "openmic": openmic_clip,
        "tinysol_contrabass": _load_16k_mono(next(real_clips.glob("tinysol/**/Cb-ord-*.wav"))),
        "tinysol_flute": _load_16k_mono(next(real_clips.glob("tinysol/**/Fl-ord-*.wav"))),
        "irmas_clarinet": _load_16k_mono(next(real_clips.glob("irmas/IRMAS-TrainingData/**/*.wav"))),
        "phenicx_joined": np.concatenate([_load_16k_mono(p) for p in phenicx[:10]]),
    }
    scaled = {}
    for name, wave in clips.items():
        assert musicnn.num_stft_frames(wave.size) >= musicnn.PATCH_FRAMES, name
        peak_mel = float(_librosa_mel_power(wave).max())
        # Keep the original's float16 mel finite: mel power scales with amplitude squared.
        gain = min(1.0, float(np.sqrt(SAFE_MEL / peak_mel)))
        scaled[name] = (wave * gain).astype(np.float32)
    return scaled


@pytest.mark.slow
def test_golden_against_original(
    embedder: musicnn.MusicnnEmbedder,
    openmic_clip: np.ndarray,
    real_clips: Path,
    repo_root: Path,
    tmp_path: Path,
) -> None:
    inputs = _golden_inputs(openmic_clip, real_clips)
    names = [*inputs, "openmic_unscaled"]
    waves = [*inputs.values(), openmic_clip]
    paths = []
    for name, wave in zip(names, waves):
        path = tmp_path / f"{name}.wav"
        sf.write(str(path), wave, params.SAMPLE_RATE, subtype="FLOAT")  # bit-exact float32
        paths.append(str(path))
    out = tmp_path / "golden.npz"
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, str(repo_root / "tests" / "helpers" / "musicnn_golden.py"), str(out), *paths],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    golden = np.load(out)

    # The harness runs the original as its public extractor() does (extractor feeds one patch per
    # session call, so float32 sums differ by rounding only).
    for layer in ("taggram", "max_pool"):
        got, expected = golden[f"extractor_{layer}"], golden[f"0/{layer}"]
        error = np.abs(got - expected) / np.maximum(1.0, np.abs(expected))
        assert error.max() <= GOLDEN_TOLERANCE, (layer, float(error.max()))

    for index, (name, wave) in enumerate(zip(names, waves)):
        batch = golden[f"{index}/batch"]
        if name == "openmic_unscaled":
            # The original's quirk: float16 mel -> inf on this real clip at its own level; the
            # port stays finite on the same waveform.
            assert not np.isfinite(batch).all()
            assert not np.isfinite(golden[f"{index}/max_pool"]).all()
            assert np.isfinite(embedder.embed(wave[np.newaxis])).all()
            continue
        assert np.isfinite(batch).all(), name
        # 1. frontend: port (TF float32) vs librosa float32 spectrogram, as the original minus
        #    its float16 cast
        log_mel = musicnn.log_mel_spectrogram(
            tf.constant(wave[np.newaxis]), musicnn.slaney_mel_matrix()
        ).numpy()[0]
        np.testing.assert_allclose(log_mel, golden[f"{index}/log_mel32"], rtol=0, atol=LOG_MEL_TOLERANCE)
        # 2. network: port on the original's exact input, every output within GOLDEN_TOLERANCE
        ported = embedder.network(batch, training=False)
        for layer in ("max_pool", "mean_pool", "penultimate", "taggram"):
            expected = golden[f"{index}/{layer}"]
            got = ported[layer].numpy()
            assert got.shape == expected.shape, (name, layer)
            error = np.abs(got - expected) / np.maximum(1.0, np.abs(expected))
            assert error.max() <= GOLDEN_TOLERANCE, (name, layer, float(error.max()))
        # 3. end to end from the waveform (float32 port vs float16 original)
        model = musicnn.build_musicnn_model(embedder.network, input_samples=wave.size)
        end_to_end = model(wave[np.newaxis]).numpy()[0]
        expected = golden[f"{index}/max_pool"]
        assert end_to_end.shape == expected.shape, name
        error = np.abs(end_to_end - expected) / np.maximum(1.0, np.abs(expected))
        assert error.max() <= END_TO_END_TOLERANCE, (name, float(error.max()))


def test_bfloat16_close_to_float32(embedder: musicnn.MusicnnEmbedder, openmic_clip: np.ndarray) -> None:
    half = musicnn.MusicnnEmbedder(precision="bfloat16")
    assert half.describe()["precision"] == "bfloat16"
    wide = embedder.embed(openmic_clip[np.newaxis])[0]
    narrow = half.embed(openmic_clip[np.newaxis])[0]
    assert narrow.dtype == np.float32
    norms = np.linalg.norm(wide, axis=-1) * np.linalg.norm(narrow, axis=-1)
    cosine = (wide * narrow).sum(-1) / norms
    assert cosine.min() >= BF16_MIN_COSINE, cosine


def test_keras_file_round_trip(
    embedder: musicnn.MusicnnEmbedder, openmic_clip: np.ndarray, tmp_path: Path
) -> None:
    # The export step saves models that contain this one: the custom frontend must serialise.
    import keras

    path = tmp_path / "musicnn.keras"
    embedder.keras_model().save(path)
    loaded = keras.models.load_model(path)
    clip = openmic_clip[np.newaxis]
    # both eager: eager and tf.function calls may pick different oneDNN kernels (~1e-5 apart)
    expected = embedder.keras_model()(clip).numpy()
    np.testing.assert_allclose(loaded(clip).numpy(), expected, atol=1e-6)
