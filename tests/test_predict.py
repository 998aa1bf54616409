"""`disco predict` over whole recordings: windows, padding, inputs, outputs, and a real exported
model (musicnn + a classifier trained here on synthetic instruments) finding both instruments of a
35 s recording whose instrument changes half way, each in the right windows."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from disco import params
from disco.errors import ConfigError
from disco.predict import expand_inputs, window_starts, windows_of

SR = params.SAMPLE_RATE
LOW, HIGH = "piano", "flute"  # labels of the two synthetic instruments


def test_windows_cover_the_recording_and_pad_the_last():
    clip = params.CLIP_SAMPLES
    assert window_starts(clip, clip) == [0]
    assert window_starts(3 * SR, clip) == [0]  # shorter than a window: one, padded
    assert window_starts(clip + SR // 2, clip) == [0]  # a tail under MIN_TAIL_SECONDS
    assert window_starts(clip + SR, clip) == [0, clip]
    assert window_starts(35 * SR, clip) == [0, 10 * SR, 20 * SR, 30 * SR]
    assert window_starts(35 * SR, 5 * SR) == [i * 5 * SR for i in range(6)]  # last is 25-35 s
    wave = np.arange(35 * SR, dtype=np.float32) + 1
    starts, batch = windows_of(wave, 10.0)
    assert batch.shape == (4, clip)
    np.testing.assert_array_equal(batch[1], wave[10 * SR : 20 * SR])
    np.testing.assert_array_equal(batch[3, : 5 * SR], wave[30 * SR :])
    assert not batch[3, 5 * SR :].any()  # the padding is silence


def test_inputs_are_files_folders_and_globs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "deep").mkdir()
    for name in ("a/x.ogg", "a/deep/y.WAV", "a/notes.txt", "z.flac"):
        (tmp_path / name).write_bytes(b"")
    found = expand_inputs([str(tmp_path / "a"), str(tmp_path / "*.flac"), str(tmp_path / "a" / "x.ogg")])
    assert [Path(f).relative_to(tmp_path).as_posix() for f in found] == ["a/deep/y.WAV", "a/x.ogg", "z.flac"]
    with pytest.raises(ConfigError, match="nothing.mp3: no such file"):
        expand_inputs([str(tmp_path / "nothing.mp3")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty: no audio files"):
        expand_inputs([str(tmp_path / "empty")])


@pytest.mark.parametrize("hop", [0.0, 2e-5, 10.5])
def test_a_hop_below_one_sample_or_above_a_clip_is_refused(tmp_path, hop):
    """A hop that rounds to 0 samples would cut windows forever, never reaching the file's end."""
    from disco.predict import predict_file

    with pytest.raises(ConfigError, match="hop must be in"):
        predict_file(lambda x: x, [0.5] * params.NUM_CLASSES, str(tmp_path / "x.wav"), hop_s=hop)


def _tone(f0: float, seconds: float, rng: np.random.Generator, *, bright: bool) -> np.ndarray:
    """A harmonic tone with a little vibrato: dark (fast-decaying harmonics) or bright."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * f0 * (t + 0.002 * np.sin(2 * np.pi * rng.uniform(4, 6) * t))
    decay = 0.3 if bright else 0.8
    wave = sum((decay if bright else 1.0) ** k * np.sin((k + 1) * phase) / (k + 1) ** decay for k in range(6))
    return (0.3 * wave / np.max(np.abs(wave))).astype(np.float32)


def _instrument(which: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    if which == LOW:
        return _tone(rng.uniform(90, 140), seconds, rng, bright=False)
    return _tone(rng.uniform(1200, 1800), seconds, rng, bright=True)


def _training_clip(kind: tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
    """10 s with each instrument of ``kind`` playing for 1 s or more somewhere in it at some level,
    over faint noise; a third are shorter recordings zero-padded to 10 s, as resample pads them."""
    seconds = params.CLIP_SECONDS if rng.random() < 0.67 else rng.uniform(4.5, 9.5)
    clip = np.zeros(params.CLIP_SAMPLES, np.float32)
    clip[: int(seconds * SR)] = rng.normal(0, 0.003, int(seconds * SR))
    for which in kind:
        # Quiet and short examples too: the thresholds tuned on validation then sit below what a
        # full-length, full-level tone scores, rather than at a saturated 1.0.
        length = rng.uniform(1, seconds)
        start = int(rng.uniform(0, seconds - length) * SR)
        part = _instrument(which, length, rng) * rng.uniform(0.05, 1.0)
        clip[start : start + len(part)] += part
    return clip


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """Embedding records of synthetic clips (musicnn, float32), a classifier trained on them, and
    the exported waveform -> probabilities model."""
    from disco import records
    from disco.embedders import get_embedder
    from disco.train import run_train
    from disco.train.export import run_export

    base = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(35)
    kinds = [(LOW,), (HIGH,), (LOW, HIGH), ()]
    labelled = [kinds[i % 4] for i in range(64)]
    clips = np.stack([_training_clip(k, rng) for k in labelled])
    emb = get_embedder("musicnn", precision="float32")
    x = emb.embed(clips, batch_size=8)
    low, high = params.CLASSES.index(LOW), params.CLASSES.index(HIGH)
    features = base / "features"
    features.mkdir()
    with records.AtomicShardWriter(str(features / records.shard_name(params.EMBEDDING_PREFIX, 0, 1))) as w:
        for i, kind in enumerate(labelled):
            y_true = np.zeros(params.NUM_CLASSES, np.float32)
            y_mask = np.zeros(params.NUM_CLASSES, np.int64)
            y_true[low], y_true[high] = float(LOW in kind), float(HIGH in kind)
            y_mask[[low, high]] = 1
            split = params.SPLIT_VALIDATION if i % 4 == i // 4 % 4 else params.SPLIT_TRAIN
            w.write(
                records.encode_embedding(
                    records.EmbeddingRecord(
                        key=f"{i:06d}_0",
                        split=split,
                        embedding=x[i],
                        y_true=y_true,
                        y_mask=y_mask,
                        embedder="musicnn",
                        embedder_version=emb.describe()["embedder_version"],
                    )
                )
            )
    run_train(
        str(features),
        str(base / "model"),
        epochs=40,
        patience=10,
        learning_rate=1e-3,
        l2=1e-2,
        dropout=0.5,
        seed=3,
    )
    run_export(str(base / "model"), str(base / "export"))
    return base / "export"


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """35 s at 44.1 kHz stereo: the low instrument for the first half, the high one after."""
    rng = np.random.default_rng(7)
    half = 17.5
    wave = np.concatenate([_instrument(LOW, half, rng), _instrument(HIGH, half, rng)])
    wave += rng.normal(0, 0.003, wave.shape).astype(np.float32)
    from disco.audio.decode import resample

    stereo = np.stack([resample(wave, SR, 44_100)] * 2, axis=1)
    path = tmp_path_factory.mktemp("song") / "change-half-way.wav"
    sf.write(path, stereo, 44_100)
    return path


@pytest.mark.slow
def test_both_instruments_are_found_in_the_right_windows(exported, recording, capsys):
    from disco.cli import main

    assert main(["predict", str(exported), str(recording), "--hop", "5", "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["duration_s"] == pytest.approx(35.0, abs=0.01)
    windows = {(w["start_s"], w["end_s"]): set(w["present"]) for w in result["windows"]}
    assert list(windows) == [(0.0, 10.0), (5.0, 15.0), (10.0, 20.0), (15.0, 25.0), (20.0, 30.0), (25.0, 35.0)]
    for first_half in ((0.0, 10.0), (5.0, 15.0)):
        assert LOW in windows[first_half] and HIGH not in windows[first_half], (first_half, result)
    for second_half in ((20.0, 30.0), (25.0, 35.0)):
        assert HIGH in windows[second_half] and LOW not in windows[second_half], (second_half, result)
    assert {LOW, HIGH} <= set(result["present"])  # file level: max over windows
    low_scores = [w["scores"][LOW] for w in result["windows"]]
    assert result["scores"][LOW] == pytest.approx(max(low_scores), abs=1e-4)


@pytest.mark.slow
def test_last_window_is_padded_and_mean_aggregates(exported, recording, capsys):
    from disco.cli import main

    assert main(["predict", str(exported), str(recording), "--aggregate", "mean", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [(w["start_s"], w["end_s"]) for w in result["windows"]] == [(0, 10), (10, 20), (20, 30), (30, 35)]
    assert HIGH in result["windows"][-1]["present"]  # 5 s of audio, 5 s of padding
    high = [w["scores"][HIGH] for w in result["windows"]]
    assert result["scores"][HIGH] == pytest.approx(float(np.mean(high)), abs=1e-3)


@pytest.mark.slow
def test_many_files_to_csv_and_a_bad_file_fails_after_the_others(exported, recording, tmp_path, capsys):
    import shutil

    from disco.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(recording, folder / "a.wav")
    shutil.copy(recording, folder / "b.wav")
    (folder / "broken.ogg").write_bytes(b"OggS" + bytes(40))
    os.mkfifo(folder / "pipe.wav")  # would block a read: reported, not waited on
    out = tmp_path / "pred.csv"
    assert main(["predict", str(exported), str(folder), "--format", "csv", "--out", str(out)]) == 1
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    by_file: dict[str, list[dict]] = {}
    for row in rows:
        by_file.setdefault(Path(row["file"]).name, []).append(row)
    assert set(by_file) == {"a.wav", "b.wav", "broken.ogg", "pipe.wav"}
    assert "FIFO" in by_file["pipe.wav"][0]["present"]  # decode refuses it rather than block
    assert [r["start_s"] for r in by_file["a.wav"]] == ["0.0", "10.0", "20.0", "30.0", "max"]
    assert set(by_file["a.wav"][-1]["present"].split(";")) >= {LOW, HIGH}
    assert by_file["broken.ogg"][0]["present"].startswith("error: ")
    assert 0.0 <= float(by_file["a.wav"][0][LOW]) <= 1.0
    assert capsys.readouterr().out == ""  # written to the file, not stdout


@pytest.mark.slow
def test_text_output_shows_the_file_result_and_each_window(exported, recording, capsys):
    from disco.cli import main

    assert main(["predict", str(exported), str(recording)]) == 0
    out = capsys.readouterr().out
    assert "35 s, 4 windows of 10 s every 10 s; file score = max over windows" in out
    assert f"* {LOW}" in out and f"* {HIGH}" in out
    assert "0:30-0:35" in out
