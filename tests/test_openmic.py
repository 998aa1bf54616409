"""The OpenMIC-2018 data layer on the real release excerpt, the full official lists, a tarball,
and malformed inputs."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from disco import params
from disco.data.openmic import dequantize, open_dataset, split_validation
from disco.errors import DatasetError

KEY = "000046_3840"


@pytest.fixture
def consistent_sample(openmic_sample: Path, tmp_path: Path) -> Path:
    """The real excerpt with its partitions cut to the keys whose labels the excerpt holds (the
    excerpt keeps only the first rows of each file, so its partitions name unlabelled keys)."""
    root = tmp_path / "openmic-2018"
    shutil.copytree(openmic_sample, root)
    (root / "partitions" / "split01_train.csv").write_text(KEY + "\n")
    (root / "partitions" / "split01_test.csv").write_text("")
    return root


def _release_rows(path: Path) -> list[dict]:
    with open(path / params.AGGREGATED_LABELS_FILE) as fh:
        return list(csv.DictReader(fh))


def test_labels_match_release_csv(openmic_sample: Path):
    labels = open_dataset(openmic_sample).labels()
    rows = _release_rows(openmic_sample)
    assert list(labels.keys) == sorted({r["sample_key"] for r in rows})
    assert labels.y_mask.sum() == len(rows)
    for r in rows:
        i = list(labels.keys).index(r["sample_key"])
        c = params.CLASS_INDEX[r["instrument"]]
        assert labels.y_mask[i, c]
        assert labels.y_true[i, c] == pytest.approx(float(r["relevance"]))
    # unobserved entries are masked, and carry no relevance
    assert not labels.y_true[~labels.y_mask].any()


def test_excerpt_partitions_name_unlabelled_keys(openmic_sample: Path):
    with pytest.raises(DatasetError, match=r"split01_train.csv:2: partition key \S+ has no labels"):
        open_dataset(openmic_sample).partitions()


def test_class_map_is_release_order(openmic_sample: Path, official_lists: Path):
    assert open_dataset(openmic_sample).class_map() == params.CLASS_INDEX
    assert json.loads((official_lists / "class-map.json").read_text()) == params.CLASS_INDEX


def test_official_split_sizes_and_disjoint(official_lists: Path):
    train = (official_lists / "split01_train.csv").read_text().split()
    test = (official_lists / "split01_test.csv").read_text().split()
    assert (len(train), len(test)) == (14915, 5085)
    assert not set(train) & set(test)


def test_audio_and_vggish_features(consistent_sample: Path):
    ds = open_dataset(consistent_sample)
    blobs = list(ds.iter_audio())
    assert [b.key for b in blobs] == [KEY] and blobs[0].error is None
    assert blobs[0].data[:4] == b"OggS"
    feats = ds.vggish_json(KEY)
    assert feats.shape == (10, 128) and feats.dtype == np.uint8
    deq = dequantize(feats)
    assert deq.min() >= params.QUANTIZE_MIN_VAL and deq.max() <= params.QUANTIZE_MAX_VAL
    assert ds.audio_files() == [KEY]


def test_missing_audio_is_reported_not_raised(consistent_sample: Path):
    (consistent_sample / "audio" / KEY[:3] / f"{KEY}.ogg").unlink()
    blob = next(open_dataset(consistent_sample).iter_audio())
    assert blob.data is None and "not found" in blob.error


def test_tarball_reads_like_directory(consistent_sample: Path, tmp_path: Path):
    tgz = tmp_path / params.RELEASE_TARBALL_NAME
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(consistent_sample, arcname=params.RELEASE_ROOT_NAME)
    a, b = open_dataset(consistent_sample), open_dataset(tgz)
    np.testing.assert_array_equal(a.labels().y_true, b.labels().y_true)
    assert a.partitions() == b.partitions()
    assert next(b.iter_audio()).data == a.read_audio(KEY)


def test_truncated_tarball_is_a_clear_error(consistent_sample: Path, tmp_path: Path):
    tgz = tmp_path / "cut.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(consistent_sample, arcname=params.RELEASE_ROOT_NAME)
    tgz.write_bytes(tgz.read_bytes()[: tgz.stat().st_size // 2])
    with pytest.raises(DatasetError, match="cut.tgz: truncated or corrupt"):
        open_dataset(tgz)


@pytest.mark.parametrize(
    "row, message",
    [
        ("000046_3840,kazoo,1.0,3", "csv:5: unknown instrument class 'kazoo'"),
        ("000046_3840,flute,0.5,3", "csv:5: duplicate row for \\(000046_3840, flute\\)"),
        ("../../etc/passwd,flute,0.5,3", "would escape the dataset root"),
        ("000046_3840,banjo,1.5,3", "csv:5: relevance 1.5 outside"),
    ],
)
def test_malformed_labels(consistent_sample: Path, row: str, message: str):
    path = consistent_sample / params.AGGREGATED_LABELS_FILE
    path.write_text(path.read_text().rstrip("\n") + "\n" + row + "\n")
    with pytest.raises(DatasetError, match=message):
        open_dataset(consistent_sample).labels()


def test_missing_required_file(consistent_sample: Path):
    (consistent_sample / params.AGGREGATED_LABELS_FILE).unlink()
    with pytest.raises(DatasetError, match="required file is missing"):
        open_dataset(consistent_sample).labels()


def test_validation_split_groups_artists(rng):
    keys = [f"{i:06d}_0" for i in range(300)]
    artists = {k: str(int(rng.integers(0, 40))) for k in keys}
    val = split_validation(keys, artists, fraction=0.2, seed=1)
    assert 0.15 * len(keys) <= len(val) <= 0.35 * len(keys)
    val_artists = {artists[k] for k in val}
    train_artists = {artists[k] for k in keys if k not in val}
    assert not val_artists & train_artists
    assert val == split_validation(keys, artists, fraction=0.2, seed=1)
    assert val != split_validation(keys, artists, fraction=0.2, seed=2)


def test_info_cli_json(consistent_sample: Path, capsys):
    from disco.cli import main

    assert main(["info", str(consistent_sample), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["clips"] == 1 and info["splits"] == {"train": 1, "test": 0}
    assert info["missing_audio"] == [] and info["classes"]["flute"]["labelled"] == 1


def test_info_cli_malformed_exits_2(openmic_sample: Path, capsys):
    from disco.cli import main

    assert main(["info", str(openmic_sample)]) == 2
    assert "has no labels" in capsys.readouterr().err
