"""Decode, resample and fit: properties on synthetic signals, real recordings, typed errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from disco import params
from disco.audio.augment import augment_clip
from disco.audio.decode import decode_audio, fit_length, load_clip, resample, to_clip
from disco.errors import AudioDecodeError


def tone(freq: float, sr: int, seconds: float = 2.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000, 96000])
def test_resample_length_pitch_energy(sr):
    x = tone(1000.0, sr)
    y = resample(x, sr)
    assert abs(len(y) - len(x) * params.SAMPLE_RATE / sr) <= 1
    assert peak_hz(y, params.SAMPLE_RATE) == pytest.approx(1000.0, abs=2.0)
    rms = lambda v: float(np.sqrt(np.mean(v[len(v) // 10 : -len(v) // 10] ** 2)))  # noqa: E731
    assert rms(y) == pytest.approx(rms(x), rel=0.02)


def test_identity_at_equal_rate(rng):
    x = rng.standard_normal(16000).astype(np.float32) * 0.1
    np.testing.assert_array_equal(resample(x, params.SAMPLE_RATE), x)


def test_fit_length_pads_and_trims(rng):
    short = rng.standard_normal(1000).astype(np.float32)
    long = rng.standard_normal(params.CLIP_SAMPLES + 5).astype(np.float32)
    assert len(fit_length(short)) == len(fit_length(long)) == params.CLIP_SAMPLES
    np.testing.assert_array_equal(fit_length(short)[:1000], short)
    assert not fit_length(short)[1000:].any()


def test_stereo_mixdown_and_duration():
    x = np.stack([tone(440, 44100, 3.0), tone(440, 44100, 3.0)], axis=1)
    clip, duration = to_clip(x, 44100)
    assert clip.shape == (params.CLIP_SAMPLES,) and duration == pytest.approx(3.0)
    assert peak_hz(clip[: 3 * params.SAMPLE_RATE], params.SAMPLE_RATE) == pytest.approx(440, abs=2)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_formats_from_bytes(fmt):
    buf = io.BytesIO()
    sf.write(buf, tone(1000, 22050), 22050, format=fmt)
    clip, duration = load_clip(buf.getvalue(), name=f"x.{fmt.lower()}")
    assert duration == pytest.approx(2.0, abs=0.01)
    assert peak_hz(clip[: 2 * params.SAMPLE_RATE], params.SAMPLE_RATE) == pytest.approx(1000, abs=2)


def test_real_recordings(real_clips, openmic_sample):
    files = sorted(p for p in real_clips.rglob("*") if p.suffix.lower() in {".wav", ".flac", ".mp3", ".ogg"})
    files.append(next((openmic_sample / "audio").rglob("*.ogg")))
    assert len(files) >= 5
    for path in files:
        audio, sr = decode_audio(path)
        clip, duration = to_clip(audio, sr)
        assert clip.shape == (params.CLIP_SAMPLES,) and clip.dtype == np.float32
        assert duration == pytest.approx(audio.shape[0] / sr)
        # Energy is preserved over the clip's own span (some recordings are nearly silent).
        n = min(params.CLIP_SAMPLES, int(duration * params.SAMPLE_RATE))
        rms_in = float(np.sqrt(np.mean(audio.mean(axis=1)[: int(n * sr / params.SAMPLE_RATE)] ** 2)))
        rms_out = float(np.sqrt(np.mean(clip[:n] ** 2)))
        if rms_in > 1e-3:  # below that a file is mostly noise above 8 kHz, which resampling removes
            assert rms_out == pytest.approx(rms_in, rel=0.1), path


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"\x00" * 1000, "cannot decode"),
        (b"OggS" + b"\x01" * 200, "Ogg page expected at byte 29"),
    ],
)
def test_bad_input_is_typed(data, reason):
    with pytest.raises(AudioDecodeError, match=f"bad.ogg: {reason}"):
        load_clip(data, name="bad.ogg")


def _encoded(fmt: str, seconds: float = 10.0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.stack([tone(440, 44100, seconds), tone(660, 44100, seconds)], axis=1), 44100, format=fmt)
    return buf.getvalue()


def _ogg_page_starts(data: bytes) -> list[int]:
    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        segments = data[pos + 26]
        pos += 27 + segments + sum(data[pos + 27 : pos + 27 + segments])
    return starts


@pytest.mark.parametrize(
    "fmt, cut, reason",
    [
        ("OGG", "half", "truncated: last Ogg page needs"),
        ("OGG", "page", "ends without its end-of-stream page"),
        ("OGG", "header", "Ogg page header cut off"),
        ("WAV", "half", "WAV data chunk declares"),
        ("AIFF", "half", "AIFF FORM chunk declares"),
        ("MP3", "half", "MP3 frame [0-9]+ at byte [0-9]+ needs"),
        ("MP3", "id3", "MP3 frame [0-9]+ at byte [0-9]+ needs"),
    ],
)
def test_truncated_files_are_errors_not_shorter_clips(fmt, cut, reason):
    """libsndfile itself decodes these as shorter clips without complaint."""
    data = _encoded(fmt)
    assert load_clip(data, name="whole")[1] == pytest.approx(10.0, abs=1e-3)
    if cut == "half":
        bad = data[: len(data) // 2]
    elif cut == "id3":  # behind an ID3v2 tag (a 10-byte header, a 20-byte body), with an ID3v1 tag after
        tagged = b"ID3\x03\x00\x00\x00\x00\x00\x14" + bytes(20) + data
        assert load_clip(tagged + b"TAG" + bytes(125), name="tagged")[1] == pytest.approx(10.0, abs=1e-3)
        bad = tagged[: len(tagged) * 2 // 3]
    else:
        start = _ogg_page_starts(data)[-1]  # cut at the last page boundary, or inside its header
        bad = data[:start] if cut == "page" else data[: start + 20]
    with pytest.raises(AudioDecodeError, match=f"cut.{fmt.lower()}: .*{reason}"):
        load_clip(bad, name=f"cut.{fmt.lower()}")


def test_corrupt_ogg_page_is_an_error_not_a_shorter_clip(openmic_sample):
    """libvorbis drops a page whose CRC does not match without complaint, so a real OpenMIC clip
    with a few bytes flipped inside one page body decoded as a shorter clip, padded to 10 s."""
    path = openmic_sample / "audio" / "000" / "000046_3840.ogg"
    data = path.read_bytes()
    assert load_clip(data, name=path.name)[1] == pytest.approx(10.0, abs=1e-3)
    starts = _ogg_page_starts(data)
    page = starts[len(starts) // 2]
    body = page + 27 + data[page + 26]  # past the header and lacing table: framing stays intact
    bad = bytearray(data)
    for i in range(body, body + 64):
        bad[i] ^= 0x5A
    with pytest.raises(AudioDecodeError, match=f"{path.name}: Ogg page at byte {page}: CRC mismatch"):
        load_clip(bytes(bad), name=path.name)


def test_augment_deterministic_and_length(rng):
    x = rng.standard_normal(params.CLIP_SAMPLES).astype(np.float32) * 0.1
    a = augment_clip(x, seed=1, key="k", copy=1)
    assert a.shape == x.shape
    np.testing.assert_array_equal(a, augment_clip(x, seed=1, key="k", copy=1))
    assert not np.array_equal(a, augment_clip(x, seed=1, key="k", copy=2))
