"""The offline demo dataset: OpenMIC's layout and formats, partial labels, artist split, seeds."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import soundfile as sf

from disco import params
from disco.data.demo import VOICES, generate_demo_dataset, plan_clips
from disco.data.openmic import audio_relpath, open_dataset
from disco.errors import AudioDecodeError


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "openmic-2018"
    summary = generate_demo_dataset(root, clips=12, seed=7, corrupt=2, workers=2)
    return root, summary


def test_layout_and_audio_format(demo):
    root, summary = demo
    corrupt = {c["key"] for c in summary["corrupt"]}
    ds = open_dataset(root)
    keys = [str(k) for k in ds.labels().keys]
    assert len(keys) == 12
    for key in keys:
        path = root / audio_relpath(key)
        assert path.exists()
        if key in corrupt:
            continue
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.format) == (44100, 2, "OGG")
        assert abs(info.duration - params.CLIP_SECONDS) < 0.01
        x, _ = sf.read(str(path))
        assert np.sqrt(np.mean(x**2)) > 0.01  # not silence


def test_partial_labels(demo):
    root, _ = demo
    labels = open_dataset(root).labels()
    pos = (labels.y_true >= 0.5) & labels.y_mask
    neg = (labels.y_true < 0.5) & labels.y_mask
    assert pos.sum(1).min() >= 1 and neg.sum(1).min() >= 1
    assert (~labels.y_mask).sum(1).min() > 0  # every clip has unobserved classes


def test_artist_grouped_split(demo):
    root, _ = demo
    ds = open_dataset(root)
    parts = ds.partitions()
    meta = ds.metadata()
    train_artists = {meta.loc[k, "artist_id"] for k in parts["train"]}
    test_artists = {meta.loc[k, "artist_id"] for k in parts["test"]}
    assert parts["train"] and parts["test"] and not train_artists & test_artists


def test_corrupt_clips_fail_to_decode(demo):
    from disco.audio.decode import load_clip

    root, summary = demo
    assert len(summary["corrupt"]) == 2
    for c in summary["corrupt"]:
        with pytest.raises(AudioDecodeError):
            load_clip((root / audio_relpath(c["key"])).read_bytes(), name=c["key"])


def test_same_seed_same_dataset(tmp_path):
    a = generate_demo_dataset(tmp_path / "a", clips=4, seed=3, workers=1)
    b = generate_demo_dataset(tmp_path / "b", clips=4, seed=3, workers=1)
    assert a["splits"] == b["splits"]
    for name in (params.AGGREGATED_LABELS_FILE, "checksums-audio.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert plan_clips(4, seed=3) != plan_clips(4, seed=4)


def test_every_class_has_a_voice():
    assert set(VOICES) == set(params.CLASSES)
    specs = plan_clips(60, seed=1)
    seen = {c for s in specs for c in s.instruments}
    assert seen == set(params.CLASSES)


def test_checksums_match_files(demo):
    root, _ = demo
    lines = (root / "checksums-audio.csv").read_text().splitlines()[1:]
    for line in lines:
        key, md5 = line.split(",")
        assert hashlib.md5((root / audio_relpath(key)).read_bytes()).hexdigest() == md5


def test_cli_demo_data(tmp_path: Path, capsys) -> None:
    from disco.cli import main

    assert main(["demo-data", "--out", str(tmp_path / "d"), "--clips", "4", "--workers", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["clips"] == 4 and sum(summary["splits"].values()) == 4
    assert len(list((tmp_path / "d").glob("audio/*/*.ogg"))) == 4
    assert main(["demo-data", "--out", str(tmp_path / "e"), "--clips", "2"]) == 2  # typed error, not a crash
