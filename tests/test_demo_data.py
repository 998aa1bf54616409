"""The offline demo dataset: layout, formats, partial labels, artist split, determinism, corrupt clips."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from disco import params
from disco.data import demo
from disco.errors import ConfigError

N_CLIPS = 8


def _pcm(root: Path, key: str) -> np.ndarray:
    data, _ = sf.read(str(root / "audio" / key[:3] / f"{key}.ogg"), dtype="float32")
    return data


def _labels(root: Path) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(dict)
    with open(root / params.AGGREGATED_LABELS_FILE, newline="") as fh:
        for row in csv.DictReader(fh):
            out[row["sample_key"]][row["instrument"]] = float(row["relevance"])
    return dict(out)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    demo.generate_demo_dataset(root, clips=N_CLIPS, seed=7, corrupt=1, workers=2)
    return root


@pytest.fixture(scope="module")
def demo_summary(demo_dir: Path) -> dict:
    return json.loads((demo_dir / params.SUMMARY_FILE).read_text())


def _good_keys(root: Path, summary: dict) -> list[str]:
    bad = {c["key"] for c in summary["corrupt"]}
    return sorted(k for k in _labels(root) if k not in bad)


def test_layout_matches_release(demo_dir: Path, openmic_sample: Path, demo_summary: dict) -> None:
    for name in (
        params.AGGREGATED_LABELS_FILE,
        params.CLASS_MAP_FILE,
        params.METADATA_FILE,
        "checksums-audio.csv",
        params.RUN_INFO_FILE,
        params.SUMMARY_FILE,
    ):
        assert (demo_dir / name).is_file(), name
    assert json.loads((demo_dir / params.CLASS_MAP_FILE).read_text()) == params.CLASS_INDEX
    oggs = sorted(demo_dir.glob("audio/*/*.ogg"))
    assert len(oggs) == N_CLIPS
    for p in oggs:
        assert p.parent.name == p.stem[:3]
        track, start = p.stem.split("_")
        assert len(track) == 6 and track.isdigit() and start.isdigit()
    # Same header as the real metadata file, same partition format (one key per line, no header).
    real_header = (openmic_sample / params.METADATA_FILE).read_text().splitlines()[0]
    assert (demo_dir / params.METADATA_FILE).read_text().splitlines()[0] == real_header
    real_part = (openmic_sample / params.PARTITIONS_DIR / params.PARTITION_TRAIN_FILE).read_text()
    ours = (demo_dir / params.PARTITIONS_DIR / params.PARTITION_TRAIN_FILE).read_text()
    assert ours.endswith("\n") and real_part.endswith("\n")
    assert all(line.count("_") == 1 for line in ours.splitlines())
    # checksums list the intact files: the clips damaged on purpose differ from their entry
    # (so `disco verify` names them), every other file matches
    import hashlib

    with open(demo_dir / "checksums-audio.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["", "md5"]
    sums = {k: v for k, v in rows[1:]}
    assert set(sums) == {p.stem for p in oggs}
    damaged = {c["key"] for c in demo_summary["corrupt"]}
    assert damaged
    for p in oggs:
        assert (hashlib.md5(p.read_bytes()).hexdigest() == sums[p.stem]) == (p.stem not in damaged), p.stem


def test_audio_is_release_format(demo_dir: Path, demo_summary: dict) -> None:
    for key in _good_keys(demo_dir, demo_summary):
        info = sf.info(str(demo_dir / "audio" / key[:3] / f"{key}.ogg"))
        assert info.samplerate == params.RELEASE_SAMPLE_RATE == 44100
        assert info.channels == 2
        assert info.format == "OGG" and info.subtype == "VORBIS"
        assert abs(info.duration - params.CLIP_SECONDS) < 0.01


def test_labels_are_partial(demo_dir: Path) -> None:
    labels = _labels(demo_dir)
    assert len(labels) == N_CLIPS
    for key, obs in labels.items():
        pos = [c for c, r in obs.items() if r >= 0.5]
        neg = [c for c, r in obs.items() if r < 0.5]
        assert 1 <= len(pos) <= 3, key
        assert 1 <= len(neg) <= 3, key
        assert len(obs) < len(params.CLASSES)  # the rest unobserved
        assert set(obs) <= set(params.CLASSES)


def test_partitions_disjoint_and_artist_grouped(demo_dir: Path) -> None:
    parts = {}
    for name, fname in (("train", params.PARTITION_TRAIN_FILE), ("test", params.PARTITION_TEST_FILE)):
        parts[name] = (demo_dir / params.PARTITIONS_DIR / fname).read_text().split()
    assert parts["train"] and parts["test"]
    assert not set(parts["train"]) & set(parts["test"])
    assert set(parts["train"]) | set(parts["test"]) == set(_labels(demo_dir))
    with open(demo_dir / params.METADATA_FILE, newline="") as fh:
        artist = {r["sample_key"]: r["artist_id"] for r in csv.DictReader(fh)}
    assert not {artist[k] for k in parts["train"]} & {artist[k] for k in parts["test"]}


def test_corrupt_clips_fail_to_decode_and_keep_labels(demo_dir: Path, demo_summary: dict) -> None:
    assert len(demo_summary["corrupt"]) == 1
    key = demo_summary["corrupt"][0]["key"]
    assert key in _labels(demo_dir)
    with pytest.raises(Exception):  # noqa: B017 - libsndfile raises different types per damage
        _pcm(demo_dir, key)


@pytest.mark.parametrize("kind", demo.CORRUPTION_KINDS)
def test_every_corruption_kind_is_undecodable(
    demo_dir: Path, demo_summary: dict, tmp_path: Path, kind: str
) -> None:
    key = _good_keys(demo_dir, demo_summary)[0]
    path = tmp_path / "x.ogg"
    path.write_bytes((demo_dir / "audio" / key[:3] / f"{key}.ogg").read_bytes())
    demo._corrupt(path, kind, np.random.default_rng(0))
    with pytest.raises(Exception):  # noqa: B017 - libsndfile raises different types per damage
        sf.read(str(path))


def test_same_seed_same_data_different_seed_differs(
    demo_dir: Path, demo_summary: dict, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    demo.generate_demo_dataset(again, clips=N_CLIPS, seed=7, corrupt=1, workers=1)
    assert _labels(again) == _labels(demo_dir)
    for name in (params.PARTITIONS_DIR + "/" + params.PARTITION_TEST_FILE, params.METADATA_FILE):
        assert (again / name).read_bytes() == (demo_dir / name).read_bytes()
    # byte-identical files (the Ogg serial number is fixed per clip), so the checksums match too
    assert (again / "checksums-audio.csv").read_bytes() == (demo_dir / "checksums-audio.csv").read_bytes()
    for key in _good_keys(demo_dir, demo_summary):
        np.testing.assert_array_equal(_pcm(again, key), _pcm(demo_dir, key))
    other = demo.plan_clips(N_CLIPS, seed=8)
    assert [s.key for s in other] != [s.key for s in demo.plan_clips(N_CLIPS, seed=7)]


def test_plan_is_seeded_and_balanced() -> None:
    a, b, c = demo.plan_clips(200, seed=1), demo.plan_clips(200, seed=1), demo.plan_clips(200, seed=2)
    assert a == b and a != c
    counts = {cls: sum(cls in s.instruments for s in a) for cls in params.CLASSES}
    assert min(counts.values()) >= 0.6 * max(counts.values()), counts
    assert len({s.key for s in a}) == 200


def test_single_instrument_is_audible_and_distinct() -> None:
    def spec(name: str) -> demo.ClipSpec:
        return demo.ClipSpec(0, "000001_0", "1", (name,), (), 123)

    flute = demo.render_clip(spec("flute"), sample_rate=16000)
    bass = demo.render_clip(spec("bass"), sample_rate=16000)
    drums = demo.render_clip(spec("drums"), sample_rate=16000)
    for audio in (flute, bass, drums):
        assert audio.shape == (16000 * params.CLIP_SECONDS, 2)
        assert np.sqrt(np.mean(audio**2)) > 0.01

    def centroid(x: np.ndarray) -> float:
        mag = np.abs(np.fft.rfft(x.mean(axis=1)))
        freqs = np.fft.rfftfreq(len(x), 1 / 16000)
        return float((mag * freqs).sum() / mag.sum())

    assert centroid(bass) < centroid(flute)


def test_bad_arguments_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        demo.generate_demo_dataset(tmp_path, clips=2)
    with pytest.raises(ConfigError):
        demo.generate_demo_dataset(tmp_path, clips=8, corrupt=5)


def test_open_dataset_round_trip(demo_dir: Path) -> None:
    from disco.data.openmic import open_dataset

    ds = open_dataset(str(demo_dir))
    labels = ds.labels()
    ours = _labels(demo_dir)
    assert sorted(labels.keys.tolist()) == sorted(ours)
    idx = params.CLASS_INDEX
    for i, key in enumerate(labels.keys):
        for cls, rel in ours[str(key)].items():
            assert labels.y_mask[i, idx[cls]]
            assert labels.y_true[i, idx[cls]] == pytest.approx(rel, abs=1e-4)
        assert labels.y_mask[i].sum() == len(ours[str(key)])
    parts = ds.partitions()
    assert set(parts["train"]) | set(parts["test"]) == set(ours)
    md = ds.metadata()
    assert md is not None and "artist_id" in md.columns


def test_fix_ogg_serial_recomputes_valid_crcs(tmp_path: Path) -> None:
    path = tmp_path / "tone.ogg"
    tone = 0.3 * np.sin(np.linspace(0, 2000, 44100 * 2, dtype=np.float32))[:, None].repeat(2, axis=1)
    sf.write(str(path), tone, 44100, format="OGG", subtype="VORBIS")
    data = path.read_bytes()
    decoded = sf.read(str(path))[0]
    original_serial = int.from_bytes(data[14:18], "little")
    # With the file's own serial the rewrite must reproduce libogg's CRCs exactly.
    assert demo.fix_ogg_serial(data, original_serial) == data
    fixed = demo.fix_ogg_serial(data, 12345)
    assert fixed != data and int.from_bytes(fixed[14:18], "little") == 12345
    path.write_bytes(fixed)
    np.testing.assert_array_equal(sf.read(str(path))[0], decoded)
    with pytest.raises(ValueError):
        demo.fix_ogg_serial(b"garbage" * 10, 1)


def test_corrupt_clips_raise_typed_decode_error(demo_dir: Path, demo_summary: dict) -> None:
    from disco.audio.decode import load_clip
    from disco.errors import AudioDecodeError

    for c in demo_summary["corrupt"]:
        path = demo_dir / "audio" / c["key"][:3] / f"{c['key']}.ogg"
        with pytest.raises(AudioDecodeError):
            load_clip(path.read_bytes(), name=c["key"])


def test_every_class_has_a_voice() -> None:
    assert set(demo.VOICES) == set(params.CLASSES)
    assert {c for s in demo.plan_clips(60, seed=1) for c in s.instruments} == set(params.CLASSES)


def test_cli_demo_data(tmp_path: Path, capsys) -> None:
    from disco.cli import main

    assert main(["demo-data", "--out", str(tmp_path / "d"), "--clips", "4", "--workers", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["clips"] == 4 and sum(summary["splits"].values()) == 4
    assert len(list((tmp_path / "d").glob("audio/*/*.ogg"))) == 4
    assert main(["demo-data", "--out", str(tmp_path / "e"), "--clips", "2"]) == 2  # typed error, not a crash
    # A non-empty folder is refused (its old clips would join the dataset); --overwrite replaces
    # an earlier demo dataset, never a folder that is not one.
    assert (
        main(["demo-data", "--out", str(tmp_path / "d"), "--clips", "4", "--workers", "1", "--seed", "5"])
        == 2
    )
    assert (
        main(["demo-data", "--out", str(tmp_path / "d"), "--clips", "4", "--workers", "1", "--overwrite"])
        == 0
    )
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["demo-data", "--out", str(other), "--clips", "4", "--workers", "1", "--overwrite"]) == 2
    assert (other / "notes.txt").read_text() == "mine"


def test_a_benchmarks_rerun_reuses_its_demo_dataset_and_refuses_a_partial_one(tmp_path: Path) -> None:
    """The benchmarks generated their demo data unconditionally: a rerun failed ("not empty"),
    `make bench-quality` only after its hour-long dev table. Now the same settings reuse it, other
    settings replace it, and a folder without the demo summary is refused at once."""
    import os

    from disco.data.demo import DEMO_SUMMARY_FILE, ensure_demo_dataset
    from disco.errors import ConfigError

    root = tmp_path / "openmic-2018"
    ensure_demo_dataset(root, clips=6, seed=4)
    first = (root / DEMO_SUMMARY_FILE).stat().st_mtime_ns
    os.utime(root / DEMO_SUMMARY_FILE, ns=(first - 10**9, first - 10**9))
    ensure_demo_dataset(root, clips=6, seed=4)  # reused: not rewritten
    assert (root / DEMO_SUMMARY_FILE).stat().st_mtime_ns == first - 10**9
    ensure_demo_dataset(root, clips=8, seed=4)  # other settings: replaced
    assert json.loads((root / DEMO_SUMMARY_FILE).read_text())["clips"] == 8
    partial = tmp_path / "partial"
    (partial / "audio").mkdir(parents=True)
    with pytest.raises(ConfigError, match="interrupted generation"):
        ensure_demo_dataset(partial, clips=6, seed=4)
