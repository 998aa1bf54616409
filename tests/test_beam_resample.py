"""The resample Beam step end to end: mixed encodings, rates and channel counts behind `.ogg`
names, real recordings, bad files dead-lettered in the same run, shards that a killed run leaves
whole or not at all, and a release tarball read in place giving the same records as its folder.

Decoding functions have their own unit tests (test_audio.py); here every check goes through
``run_resample`` (or the ``disco resample`` command) and reads back what it wrote."""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers.resample_fixtures import clip_key, encode, peak_hz, rms_db, tone, write_dataset

from disco import params
from disco.beam.sinks import PARTIAL_MARK
from disco.records import iter_resampled, list_shards

SEED = 7
VALIDATION_FRACTION = 0.3
NUM_SHARDS = 2
SR = params.SAMPLE_RATE

# Synthetic clips: (container, subtype, source rate, channel amplitudes, tone Hz, seconds). The
# channels of a clip share one phase, so the mono mix is a tone of amplitude mean(amps); unequal
# (and one inverted) channels tell a mean mix-down from "first channel" or "loudest channel".
SYNTHETIC = {
    "ogg_vorbis_44k1_stereo": ("OGG", "VORBIS", 44100, (0.6, 0.2), 1000.0, 10.0),
    "flac_48k_mono": ("FLAC", "PCM_16", 48000, (0.5,), 440.0, 10.0),
    "wav_22k05_4ch": ("WAV", "PCM_16", 22050, (0.8, 0.4, 0.2, -0.2), 660.0, 10.0),
    "ogg_vorbis_32k_mono_3s": ("OGG", "VORBIS", 32000, (0.5,), 880.0, 3.0),
    "ogg_vorbis_44k1_mono_12s": ("OGG", "VORBIS", 44100, (0.5,), 550.0, 12.0),
}
IDENTITY = "wav_16k_mono_identity"

REAL = {  # relative to ../shared/data/real-instrument-clips, except the OpenMIC clip
    "irmas_stereo_3s": "irmas/IRMAS-TrainingData/cla/[cla][cla]0189__2.wav",
    "medley_float_wav": "medley_solos_db/audio/Medley-solos-DB_validation-3_d07b1fc0-567d-52c2-fef4-239f31c9d40e.wav",
    "tinysol_flute_6s": "tinysol/audio/Winds/Flute/ordinario/Fl-ord-C4-mf-N-T14d.wav",
    "phenicx_violin_1s": "phenicx_anechoic/audio/beethoven/violin1.wav",
    "irmas_full_scale_stereo_2s": "irmas/IRMAS-TestingData-Part1/Part1/02 - And The Body Will Die-8.wav",
    # Digital near-silence (about -84 dBFS of 16-bit dither, mostly above 8 kHz).
    "good_sounds_near_silent_1s": "good_sounds/good-sounds/sound_files/flute_almudena_reference/akg/0000.wav",
    "openmic_release_clip": None,
}

# Bad files and what their dead-letter reason must say. None: labelled and partitioned, file absent.
BAD_REASONS = {
    "empty_file": r"empty file",
    "truncated_ogg_header": r"malformed|truncated|cannot decode",
    "random_bytes": r"cannot decode.*not recognised",
    "text_file": r"cannot decode.*not recognised",
    "wav_header_only": r"no audio samples|zero-length",
    "missing_file": r"not found",
    # Would be padded into 10 s of labelled near-silence (params.MIN_CLIP_SECONDS and the rate range).
    "one_sample_wav": r"too short",
    "clip_0_05s": r"too short: 0\.050 s",
    "wav_at_1hz": r"sample rate 1 Hz outside",
}
# An Ogg Vorbis file cut mid-stream (a 10 s clip losing its last half): see
# test_stream_truncated_ogg_is_dead_lettered.
TRUNCATED_STREAM = "truncated_ogg_stream"


def _names() -> list[str]:
    return [*SYNTHETIC, IDENTITY, *REAL, *BAD_REASONS, TRUNCATED_STREAM]


KEYS = {name: clip_key(i) for i, name in enumerate(_names())}
NAMES = {key: name for name, key in KEYS.items()}
GOOD = {KEYS[n] for n in [*SYNTHETIC, IDENTITY, *REAL]}
BAD = {KEYS[n] for n in BAD_REASONS}


def _mono(audio: np.ndarray) -> np.ndarray:
    return audio.astype(np.float64).mean(axis=1)


def _build_audio(rng: np.random.Generator, real_clips: Path, openmic_sample: Path):
    """(bytes per key, expectations per key) for every clip of the mixed dataset."""
    audio: dict[str, bytes | None] = {}
    expect: dict[str, dict] = {}
    for name, (fmt, subtype, sr, amps, freq, seconds) in SYNTHETIC.items():
        wave = tone(freq, sr, seconds, amps)
        audio[KEYS[name]] = encode(wave, sr, fmt=fmt, subtype=subtype)
        expect[KEYS[name]] = {
            "sr": sr,
            "duration": wave.shape[0] / sr,
            "freq": freq,
            "rms_db": rms_db(_mono(wave)),
        }
    # Exactly representable at 16 kHz: the step must hand these samples through untouched.
    pcm = np.round(
        tone(1234.0, SR, params.CLIP_SECONDS, (0.3,))[:, 0] * params.PCM_SCALE
        + rng.normal(0, 300, params.CLIP_SAMPLES)
    ).astype(np.int16)
    audio[KEYS[IDENTITY]] = encode(pcm, SR, fmt="WAV", subtype="PCM_16")
    expect[KEYS[IDENTITY]] = {"sr": SR, "duration": params.CLIP_SECONDS, "pcm": pcm}
    for name, rel in REAL.items():
        path = next((openmic_sample / "audio").rglob("*.ogg")) if rel is None else real_clips / rel
        data = path.read_bytes()
        decoded, sr = sf.read(path, dtype="float64", always_2d=True)
        audio[KEYS[name]] = data
        expect[KEYS[name]] = {"sr": sr, "duration": decoded.shape[0] / sr, "source": decoded.mean(axis=1)}

    vorbis = encode(tone(1000.0, 44100, 10.0, (0.5, 0.5)), 44100, fmt="OGG", subtype="VORBIS")
    audio[KEYS["empty_file"]] = b""
    audio[KEYS["truncated_ogg_header"]] = vorbis[:1000]  # cut inside the Vorbis header packets
    audio[KEYS["random_bytes"]] = rng.bytes(8192)
    audio[KEYS["text_file"]] = b"sample_key,instrument,relevance\n000046_3840,clarinet,0.17\n" * 20
    audio[KEYS["wav_header_only"]] = encode(np.zeros((0, 1), np.float32), 44100, fmt="WAV", subtype="PCM_16")
    audio[KEYS["missing_file"]] = None
    audio[KEYS["one_sample_wav"]] = encode(
        np.full((1, 1), 0.5, np.float32), 44100, fmt="WAV", subtype="PCM_16"
    )
    audio[KEYS["clip_0_05s"]] = encode(tone(440.0, 44100, 0.05, (0.5,)), 44100, fmt="WAV", subtype="PCM_16")
    audio[KEYS["wav_at_1hz"]] = encode(rng.uniform(-0.5, 0.5, (10, 1)), 1, fmt="WAV", subtype="PCM_16")
    audio[KEYS[TRUNCATED_STREAM]] = vorbis[: len(vorbis) // 2]
    return audio, expect


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, real_clips, openmic_sample):
    from disco.beam.resample import run_resample

    root = tmp_path_factory.mktemp("resample")
    audio, expect = _build_audio(np.random.default_rng(20180), real_clips, openmic_sample)
    keys = sorted(audio)
    test_keys = set(keys[::3])
    data = root / "openmic-2018"
    truth = write_dataset(data, audio, test_keys=test_keys, sample=openmic_sample, seed=SEED)
    out = root / "resampled"
    # Small batches so the run spans several bundles; two shards per split.
    summary = run_resample(
        str(data),
        str(out),
        seed=SEED,
        validation_fraction=VALIDATION_FRACTION,
        num_shards=NUM_SHARDS,
        batch_size=4,
        threads=2,
    )
    records = {}
    for rec in iter_resampled([str(out)]):
        assert rec.key not in records, f"{rec.key} written twice"
        records[rec.key] = rec
    return {
        "root": root,
        "data": data,
        "out": out,
        "summary": summary,
        "records": records,
        "expect": expect,
        "truth": truth,
    }


def test_every_clip_is_16k_mono_int16_of_clip_length(mixed):
    records = mixed["records"]
    assert GOOD <= set(records), f"good clips not written: {sorted(NAMES[k] for k in GOOD - set(records))}"
    assert not BAD & set(records), f"bad clips written: {sorted(NAMES[k] for k in BAD & set(records))}"
    for key, rec in records.items():
        assert rec.pcm.dtype == np.int16 and rec.pcm.shape == (params.CLIP_SAMPLES,), NAMES[key]
        assert rec.sample_rate == SR and rec.augmentation_id == 0, NAMES[key]


def test_original_duration_within_one_source_sample(mixed):
    for key in GOOD:
        e, rec = mixed["expect"][key], mixed["records"][key]
        assert abs(rec.original_duration - e["duration"]) <= 1.0 / e["sr"], (
            f"{NAMES[key]}: recorded {rec.original_duration} s, file holds {e['duration']} s"
        )


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_tone_pitch_and_energy_survive(mixed, name):
    key = KEYS[name]
    e, wave = mixed["expect"][key], mixed["records"][key].waveform()
    n = min(params.CLIP_SAMPLES, int(round(e["duration"] * SR)))
    body = wave[:n]
    assert peak_hz(body, SR) == pytest.approx(e["freq"], abs=2.0)
    # Over the clip's own span, trimming the filter's edge transients.
    edge = SR // 20
    assert rms_db(body[edge:-edge]) == pytest.approx(e["rms_db"], abs=1.0)
    if n < params.CLIP_SAMPLES:  # padded with silence, not with a repeat or a stretch
        assert not wave[n + 1 :].any()
    else:  # trimmed (or exact): the tone runs to the clip's last second
        assert rms_db(wave[-SR:]) == pytest.approx(e["rms_db"], abs=1.0)


def test_16k_mono_wav_passes_through_sample_identical(mixed):
    np.testing.assert_array_equal(
        mixed["records"][KEYS[IDENTITY]].pcm, mixed["expect"][KEYS[IDENTITY]]["pcm"]
    )


@pytest.mark.parametrize("name", list(REAL))
def test_real_recording_matches_an_independent_resampler(mixed, name):
    from scipy.signal import resample_poly

    key = KEYS[name]
    e, wave = mixed["expect"][key], mixed["records"][key].waveform()
    g = np.gcd(SR, e["sr"])
    ref = resample_poly(e["source"], SR // g, e["sr"] // g)[: params.CLIP_SAMPLES]
    n = min(len(ref), params.CLIP_SAMPLES)
    assert not wave[n + 1 :].any()
    if rms_db(e["source"]) < -80:
        # Below the int16 step once band-limited: it must stay (near) silence, not gain or noise.
        assert np.abs(mixed["records"][key].pcm).max() <= 2
        return
    got = wave[:n].astype(np.float64)
    assert rms_db(got) == pytest.approx(rms_db(ref[:n]), abs=1.0)
    assert np.corrcoef(got, ref[:n])[0, 1] > 0.99


def test_labels_and_splits_are_the_datasets(mixed):
    from disco.data.openmic import open_dataset

    truth, records = mixed["truth"], mixed["records"]
    planned = {
        c.key: c.split
        for c in open_dataset(str(mixed["data"])).clips(validation_fraction=VALIDATION_FRACTION, seed=SEED)
    }
    for key, rec in records.items():
        t = truth[key]
        np.testing.assert_array_equal(rec.y_true, t.y_true, err_msg=NAMES[key])
        np.testing.assert_array_equal(rec.y_mask.astype(bool), t.y_mask, err_msg=NAMES[key])
        allowed = (
            {params.SPLIT_TEST}
            if t.split_partition == params.SPLIT_TEST
            else {params.SPLIT_TRAIN, params.SPLIT_VALIDATION}
        )
        assert rec.split in allowed and rec.split == planned[key], NAMES[key]
    assert {r.split for r in records.values()} == set(params.SPLITS)


def test_summary_shards_and_run_info_agree_with_the_records(mixed):
    out, s, records = mixed["out"], mixed["summary"], mixed["records"]
    from disco.results import ResampleResult

    assert json.loads((out / params.SUMMARY_FILE).read_text()) == s.to_dict()
    assert ResampleResult.read(out) == s
    assert s.step == "resample" and s.clips == len(KEYS)
    assert s.ok == len(records) and s.ok + s.failed == s.clips
    assert s.splits == {sp: Counter(r.split for r in records.values())[sp] for sp in params.SPLITS}
    assert s.sample_rate == SR and s.clip_samples == params.CLIP_SAMPLES
    assert s.shards == {sp: NUM_SHARDS for sp in params.SPLITS}
    for sp in params.SPLITS:
        shards = list_shards(out, f"{params.RESAMPLED_PREFIX}-{sp}")
        assert [os.path.basename(p) for p in shards] == [
            f"{params.RESAMPLED_PREFIX}-{sp}-{i:05d}-of-{NUM_SHARDS:05d}{params.TFRECORD_SUFFIX}"
            for i in range(NUM_SHARDS)
        ]
        assert {r.split for r in iter_resampled(shards)} == {sp}
    assert not [f for f in os.listdir(out) if f.startswith("beam-temp")]
    info = json.loads((out / params.RUN_INFO_FILE).read_text())
    assert info["step"] == "resample" and info["seed"] == SEED
    assert info["parameters"]["validation_fraction"] == VALIDATION_FRACTION
    assert info["parameters"]["num_shards"] == NUM_SHARDS
    assert info["versions"]["soxr"] and info["versions"]["apache-beam"]


def test_bad_files_are_dead_lettered_with_a_reason(mixed):
    out, s, data = mixed["out"], mixed["summary"], mixed["data"]
    lines = [json.loads(x) for x in (out / params.FAILURES_FILE).read_text().splitlines() if x.strip()]
    by_key = {f["key"]: f for f in lines}
    assert len(by_key) == len(lines) == s.failed
    assert sorted(lines, key=lambda f: f["key"]) == sorted(s.failures, key=lambda f: f["key"])
    assert BAD <= set(by_key), f"not dead-lettered: {sorted(NAMES[k] for k in BAD - set(by_key))}"
    assert not GOOD & set(by_key)
    assert set(by_key) | set(mixed["records"]) == set(KEYS.values())
    planned_split = {k: r.split for k, r in mixed["records"].items()}
    for name, pattern in BAD_REASONS.items():
        f = by_key[KEYS[name]]
        assert f["path"] == str(data / "audio" / f["key"][:3] / f"{f['key']}.ogg")
        assert re.search(pattern, f["reason"], re.IGNORECASE), f"{name}: {f['reason']!r}"
        assert f["split"] in params.SPLITS and f["key"] not in planned_split


def test_stream_truncated_ogg_is_dead_lettered(mixed):
    failed = {f["key"]: f for f in mixed["summary"].failures}
    assert KEYS[TRUNCATED_STREAM] in failed, (
        f"written as a {mixed['records'][KEYS[TRUNCATED_STREAM]].original_duration:.2f} s clip"
    )


def _same_as_mixed(mixed, s, out, path_prefix: str) -> None:
    """The records, shards and dead letters of another run over the same clips equal ``mixed``'s."""
    records = {r.key: r for r in iter_resampled([str(out)])}
    assert set(records) == set(mixed["records"])
    for key, rec in records.items():
        ref = mixed["records"][key]
        np.testing.assert_array_equal(rec.pcm, ref.pcm, err_msg=NAMES[key])
        assert (rec.split, rec.original_duration) == (ref.split, ref.original_duration)
        np.testing.assert_array_equal(rec.y_true, ref.y_true)
        np.testing.assert_array_equal(rec.y_mask, ref.y_mask)
    assert s.splits == mixed["summary"].splits and s.clips == mixed["summary"].clips
    assert s.shards == mixed["summary"].shards
    failed = {f["key"]: f for f in s.failures}
    assert set(failed) == {f["key"] for f in mixed["summary"].failures}
    for name, pattern in BAD_REASONS.items():
        f = failed[KEYS[name]]
        assert f["path"].startswith(path_prefix) and re.search(pattern, f["reason"], re.IGNORECASE), f


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_release_tarball_gives_the_same_records(mixed, tmp_path, pool):
    from helpers.openmic_fixtures import make_tgz

    from disco.beam.resample import run_resample

    tgz = make_tgz(mixed["data"], tmp_path / "openmic-2018-v1.0.0.tgz")
    s = run_resample(
        str(tgz),
        str(tmp_path / "out"),
        seed=SEED,
        validation_fraction=VALIDATION_FRACTION,
        num_shards=NUM_SHARDS,
        threads=2,
        pool=pool,
    )
    _same_as_mixed(mixed, s, tmp_path / "out", f"{tgz}!")


def test_decode_processes_give_the_same_records_as_threads(mixed, tmp_path):
    """``mixed`` ran with auto's choice for two decoders (threads, params.THREAD_DECODERS_MAX);
    spawned decode processes must write the same records and dead letters."""
    from disco.beam.resample import run_resample

    assert params.THREAD_DECODERS_MAX >= 2
    s = run_resample(
        str(mixed["data"]),
        str(tmp_path / "out"),
        seed=SEED,
        validation_fraction=VALIDATION_FRACTION,
        num_shards=NUM_SHARDS,
        batch_size=4,
        threads=2,
        pool="process",
    )
    _same_as_mixed(mixed, s, tmp_path / "out", str(mixed["data"]))


@pytest.mark.slow  # Beam's GCS filesystem first waits out its credential retries (~20 s)
def test_a_shard_file_in_a_bucket_is_whole_or_absent(tmp_path, monkeypatch):
    """The writer resample's workers use (sinks.ShardFile), on an object store: the records framed
    as TFRecords, readable with their checksums; an aborted shard leaves no object, also once its
    writer is collected (it had been left open, and its upload completed then, partial). (A whole
    resample run into the emulator stops at the dead-letter sink's finalisation, which uses GCS's
    batch API that fake-gcs-server lacks.)"""
    from helpers.gcs_emulator import start_gcs_emulator

    from disco.beam.sinks import ShardFile
    from disco.records import read_tfrecord_checked

    monkeypatch.setenv("NO_GCE_CHECK", "True")
    records = [b"first", b"", bytes(range(256)) * 1000]
    with start_gcs_emulator() as emu:
        emu.make_bucket("disco-shards")
        whole = ShardFile("gs://disco-shards/run/audio-train-00000-of-00002.tfrecord")
        for r in records:
            whole.write(r)
        whole.close()
        aborted = ShardFile("gs://disco-shards/run/audio-train-00001-of-00002.tfrecord")
        aborted.write(b"never published")
        aborted.abort()
        del aborted
        gc.collect()  # an upload left open completes when its writer is collected
        names = [b.name for b in emu.client.list_blobs("disco-shards")]
        assert names == ["run/audio-train-00000-of-00002.tfrecord"]
        read = list(read_tfrecord_checked(whole.path))
    assert [r.data for r in read] == records and not [r for r in read if r.error]
    local = ShardFile(str(tmp_path / "audio-test-00000-of-00001.tfrecord"))
    local.write(b"x")
    assert [p.name for p in tmp_path.iterdir()][0].startswith(
        f"audio-test-00000-of-00001.tfrecord{PARTIAL_MARK}"
    )
    local.close()
    assert [p.name for p in tmp_path.iterdir()] == ["audio-test-00000-of-00001.tfrecord"]


# --- a killed run --------------------------------------------------------------------------------

KILL_CLIPS = 300


def _staging_dirs(out: Path) -> list[Path]:
    """The step's staging folders beside out (disco.publish), where the shards are written."""
    return sorted(out.parent.glob(f".{out.name}.staging-*"))


def _partial_data(out: Path) -> bool:
    """Whether a shard being written (``<shard>.partial-<random>`` in the staging folder) holds
    any bytes yet."""
    try:
        for staging in _staging_dirs(out):
            for f in staging.glob(f"*{PARTIAL_MARK}*"):
                if f.stat().st_size > 0:
                    return True
    except FileNotFoundError:  # not created yet, or renamed to its shard meanwhile
        pass
    return False


@pytest.mark.slow
def test_killed_run_leaves_no_partial_shard_and_a_rerun_completes(tmp_path, openmic_sample):
    import tensorflow as tf

    # A few distinct short files, many times over: enough PCM that the write phase lasts a while.
    sources = [encode(tone(f, 22050, 1.0), 22050, fmt="WAV", subtype="PCM_16") for f in (300, 500, 700, 900)]
    audio = {clip_key(i): sources[i % len(sources)] for i in range(KILL_CLIPS)}
    data, out = tmp_path / "openmic-2018", tmp_path / "resampled"
    write_dataset(data, audio, test_keys=set(sorted(audio)[::4]), sample=openmic_sample, seed=SEED)
    cmd = [sys.executable, "-m", "disco", "resample", str(data), "--out", str(out), "--num-shards", "3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while not _partial_data(out):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"the run ended (rc {proc.returncode}) before it wrote a partial shard: "
                    f"{proc.stderr.read().decode(errors='replace')[-2000:]}"
                )
            time.sleep(0.003)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    # Nothing was published: the output folder does not exist; the partial data is in staging only.
    assert not out.exists()
    stale = _staging_dirs(out)
    assert stale and any(stale[0].glob(f"*{PARTIAL_MARK}*"))

    from disco.beam.resample import run_resample

    s = run_resample(str(data), str(out), num_shards=3, threads=2)
    assert s.ok == KILL_CLIPS and s.failed == 0
    assert not any(p.exists() for p in stale)  # the rerun cleared what the killed run left
    assert not _staging_dirs(out)
    for shard in list_shards(out, params.RESAMPLED_PREFIX):
        n = sum(1 for _ in tf.data.TFRecordDataset([shard]).as_numpy_iterator())
        assert n > 0, shard
    keys = Counter(r.key for r in iter_resampled([str(out)]))
    assert set(keys) == set(audio) and set(keys.values()) == {1}


def test_auto_pool_is_threads_up_to_the_limit_and_off_the_local_runner():
    from disco.beam.resample import decode_pool
    from disco.errors import ConfigError

    limit = params.THREAD_DECODERS_MAX
    assert decode_pool("auto", limit) == "thread"
    assert decode_pool("auto", limit + 1) == "process"
    assert decode_pool("auto", limit + 1, ["--runner=DataflowRunner"]) == "thread"
    assert decode_pool("process", 1) == "process"
    with pytest.raises(ConfigError, match="pool 'fork'"):
        decode_pool("fork", 2)
