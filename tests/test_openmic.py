"""The OpenMIC-2018 data layer against the real release excerpt, the full official split lists,
generated release-layout datasets, tarballs, and malformed input."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import helpers.openmic_fixtures as fx
import numpy as np
import pytest

from disco import params
from disco.data.openmic import dequantize, open_dataset
from disco.errors import DatasetError

REAL_KEY = "000046_3840"


@pytest.fixture
def dataset(tmp_path: Path, openmic_sample: Path) -> Path:
    return fx.make_dataset(tmp_path / "openmic-2018", openmic_sample)


def _cli(*argv: str) -> tuple[int, str]:
    from disco.cli import main

    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(list(argv))
    return rc, buf.getvalue()


# --- the real release excerpt ----------------------------------------------------------------
def test_real_sample_labels_match_release_csv(openmic_sample: Path) -> None:
    ds = open_dataset(openmic_sample, partial=True)
    labels = ds.labels()
    assert labels.keys.tolist() == [REAL_KEY]
    assert labels.y_true.dtype == np.float32 and labels.y_mask.dtype == bool
    assert labels.y_true.shape == labels.y_mask.shape == (1, params.NUM_CLASSES)
    rows = [
        line.split(",")
        for line in (openmic_sample / params.AGGREGATED_LABELS_FILE).read_text().splitlines()[1:]
    ]
    observed = {params.CLASS_INDEX[r[1]]: np.float32(r[2]) for r in rows}
    assert set(np.flatnonzero(labels.y_mask[0])) == set(observed)
    for cls, rel in observed.items():
        assert labels.y_true[0, cls] == rel
    # unobserved entries are masked, and zero here (the release npz holds 0.5 there; masked all the same)
    assert not labels.y_true[0, ~labels.y_mask[0]].any()
    assert ds.class_map() == params.CLASS_INDEX
    assert ds.metadata().loc[REAL_KEY, "artist_id"] == "4"


def test_real_sample_audio_and_vggish(openmic_sample: Path) -> None:
    ds = open_dataset(openmic_sample, partial=True)
    assert hashlib.md5(ds.read_audio(REAL_KEY)).hexdigest() == "c72d759c5347ecf30bf3783c7ae039cf"
    assert ds.audio_path(REAL_KEY).endswith("audio/000/000046_3840.ogg")
    blobs = list(ds.iter_audio([REAL_KEY, "000135_483840"]))
    assert blobs[0].error is None and len(blobs[0].data) == 136617
    assert (
        blobs[1].data is None and "not found" in blobs[1].error and "000135_483840.ogg" in blobs[1].location
    )
    with pytest.raises(DatasetError, match="000135_483840.ogg"):
        ds.read_audio("000135_483840")
    X = ds.vggish_json(REAL_KEY)
    assert X.shape == (10, 128) and X.dtype == np.uint8
    feats = dequantize(X)
    assert feats.dtype == np.float32
    assert params.QUANTIZE_MIN_VAL <= feats.min() and feats.max() <= params.QUANTIZE_MAX_VAL
    np.testing.assert_allclose(
        dequantize(np.array([0, 255], np.uint8)), [params.QUANTIZE_MIN_VAL, params.QUANTIZE_MAX_VAL]
    )


def test_real_sample_is_strictly_an_excerpt(openmic_sample: Path, caplog) -> None:
    # Its partition lists name clips its cut-down label CSV lacks: an error unless opened as partial.
    with pytest.raises(DatasetError) as err:
        open_dataset(openmic_sample).partitions()
    assert err.value.path.endswith("split01_train.csv") and err.value.line == 2
    with caplog.at_level(logging.WARNING):
        ds = open_dataset(openmic_sample, partial=True)
        assert ds.partitions() == {"train": [REAL_KEY], "test": []}
    assert ds.unlabelled_partition_keys == {
        "train": ds.unlabelled_partition_keys["train"],
        "test": ds.unlabelled_partition_keys["test"],
    }
    assert len(ds.unlabelled_partition_keys["train"]) == 9 and len(ds.unlabelled_partition_keys["test"]) == 10
    assert "no labels" in caplog.text


def test_official_split_lists(tmp_path: Path, openmic_sample: Path, official_lists: Path) -> None:
    """All 20,000 official keys labelled: the official split01 reads as 14,915 / 5,085, disjoint."""
    root = tmp_path / "full"
    (root / params.PARTITIONS_DIR).mkdir(parents=True)
    for name in (params.PARTITION_TRAIN_FILE, params.PARTITION_TEST_FILE):
        shutil.copy(official_lists / name, root / params.PARTITIONS_DIR / name)
    shutil.copy(official_lists / "class-map.json", root / params.CLASS_MAP_FILE)
    keys = [
        line.split(",")[0] for line in (official_lists / "checksums-audio.csv").read_text().splitlines()[1:]
    ]
    assert len(keys) == 20000
    (root / params.AGGREGATED_LABELS_FILE).write_text(
        "sample_key,instrument,relevance,num_responses\n" + "".join(f"{k},piano,1.0,1\n" for k in keys)
    )
    ds = open_dataset(root)
    parts = ds.partitions()
    assert (len(parts["train"]), len(parts["test"])) == (14915, 5085)
    assert not set(parts["train"]) & set(parts["test"])
    clips = ds.clips(validation_fraction=0.1, seed=1)  # no metadata: seeded by key
    counts = {s: sum(c.split == s for c in clips) for s in params.SPLITS}
    assert counts == {"train": 14915 - 1492, "validation": 1492, "test": 5085}


# --- generated release-layout datasets --------------------------------------------------------
def test_validation_grouped_by_artist_and_seeded(dataset: Path) -> None:
    ds = open_dataset(dataset)
    clips = ds.clips(validation_fraction=0.25, seed=7)
    by_split: dict[str, set[str]] = {}
    for c in clips:
        by_split.setdefault(c.split, set()).add(c.artist_id)
    assert set(by_split) == {"train", "validation", "test"}
    assert not by_split["train"] & by_split["validation"]
    assert not by_split["test"] & (by_split["train"] | by_split["validation"])
    n_val = sum(c.split == "validation" for c in clips)
    assert 12 <= n_val <= 24  # ~25 % of 48, whole artists at a time
    assert [c.split for c in ds.clips(validation_fraction=0.25, seed=7)] == [c.split for c in clips]
    others = {tuple(c.split for c in ds.clips(validation_fraction=0.25, seed=s)) for s in range(5)}
    assert len(others) > 1
    assert all(c.split in ("train", "test") for c in ds.clips(validation_fraction=0.0))
    # each clip carries its label row
    labels = ds.labels()
    row = labels.index()[clips[0].key]
    np.testing.assert_array_equal(clips[0].y_mask, labels.y_mask[row])


def test_validation_without_metadata_warns(tmp_path: Path, openmic_sample: Path, caplog) -> None:
    ds = open_dataset(fx.make_dataset(tmp_path / "d", openmic_sample, with_metadata=False))
    assert ds.metadata() is None
    with caplog.at_level(logging.WARNING):
        clips = ds.clips(validation_fraction=0.25, seed=3)
    assert "not grouped by artist" in caplog.text
    assert sum(c.split == "validation" for c in clips) == 12
    assert all(c.artist_id is None for c in clips)


def test_clips_without_artist_id_are_each_their_own_group(tmp_path: Path, openmic_sample: Path) -> None:
    """pandas reads an empty artist_id as NaN; as the string "nan" it made every artist-less clip
    one group, moved to validation or kept in train all together."""
    import csv

    root = fx.make_dataset(tmp_path / "d", openmic_sample)
    train = set((root / params.PARTITIONS_DIR / params.PARTITION_TRAIN_FILE).read_text().split())
    with open(root / params.METADATA_FILE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        if row["sample_key"] in train:
            row["artist_id"] = ""
    with open(root / params.METADATA_FILE, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    clips = open_dataset(root).clips(validation_fraction=0.25, seed=3)
    assert all(c.artist_id is None for c in clips if c.key in train)
    assert all(c.artist_id is not None for c in clips if c.split == "test")
    assert sum(c.split == "validation" for c in clips) == 12  # 25 % of 48 single-clip groups


def test_tarball_matches_directory(dataset: Path, tmp_path: Path) -> None:
    tgz = fx.make_tgz(dataset, tmp_path / "openmic-2018-v1.0.0.tgz")
    a, b = open_dataset(dataset), open_dataset(tgz)
    for x, y in zip(a.labels(), b.labels()):
        np.testing.assert_array_equal(x, y)
    assert a.partitions() == b.partitions()
    assert [(c.key, c.split, c.artist_id) for c in a.clips()] == [
        (c.key, c.split, c.artist_id) for c in b.clips()
    ]
    keys = a.partitions()["test"][:3] + ["999999_0"]
    blobs = list(b.iter_audio(keys))
    assert sorted(x.key for x in blobs) == sorted(keys)
    assert {x.key: x.error for x in blobs}["999999_0"] == "file not found in the tarball"
    assert all(x.data == a.read_audio(x.key) for x in blobs if x.error is None)
    assert b.read_audio(keys[0]) == a.read_audio(keys[0])
    assert "!openmic-2018/audio/" in b.audio_path(keys[0])
    assert sorted(b.audio_files()) == sorted(a.audio_files())


def test_truncated_tarball(dataset: Path, tmp_path: Path) -> None:
    tgz = fx.make_tgz(dataset, tmp_path / "full.tgz")
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(tgz.read_bytes()[: tgz.stat().st_size // 2])
    with pytest.raises(DatasetError, match="truncated or corrupt") as err:
        open_dataset(cut)
    assert err.value.path == str(cut)
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"not a tarball at all" * 10)
    with pytest.raises(DatasetError, match="junk.tgz"):
        open_dataset(junk)


def test_npz_features(dataset: Path) -> None:
    ds = open_dataset(dataset)
    assert not ds.has_npz()
    with pytest.raises(DatasetError, match="openmic-2018.npz"):
        ds.load_npz()
    labels = ds.labels()
    n = len(labels.keys)
    X = np.random.default_rng(0).integers(0, 256, (n, 10, 128), dtype=np.uint8)
    np.savez(
        dataset / params.NPZ_FILE, X=X, Y_true=labels.y_true, Y_mask=labels.y_mask, sample_key=labels.keys
    )
    feats = ds.load_npz()
    np.testing.assert_array_equal(feats.X, X)
    np.testing.assert_array_equal(feats.y_mask, labels.y_mask)
    assert feats.sample_key.tolist() == labels.keys.tolist()
    np.savez(
        dataset / params.NPZ_FILE,
        X=X[:-1],
        Y_true=labels.y_true,
        Y_mask=labels.y_mask,
        sample_key=labels.keys,
    )
    with pytest.raises(DatasetError, match="inconsistent shapes"):
        ds.load_npz()


def test_npz_in_the_release_builders_layout_reads_as_its_vggish_json(dataset: Path) -> None:
    """The release's builder (cosmir/openmic-2018 scripts/helper_numpy.py) saved X as int64 levels,
    sample_key as ``np.unique`` of a pandas column (an object array, stored pickled) and Y_true 0.5
    where unobserved. Such an npz loads, and trains on the same dequantised values as the release's
    vggish/*.json files: the same clips, features and labels through either source."""
    import pandas as pd

    from disco.train.features import load_features

    labels = open_dataset(dataset).labels()
    n = len(labels.keys)
    levels = np.random.default_rng(1).integers(0, 256, (n, 10, 128))
    for key, x in zip(labels.keys, levels):
        path = dataset / "vggish" / key[:3] / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"features": x.tolist()}))
    from_json = load_features(str(dataset), seed=3)

    keys = np.unique(pd.Series([str(k) for k in labels.keys], dtype=object))
    assert keys.dtype == object
    y_true = np.where(labels.y_mask, labels.y_true, 0.5)
    np.savez(
        dataset / params.NPZ_FILE, X=levels.astype(int), Y_true=y_true, Y_mask=labels.y_mask, sample_key=keys
    )
    feats = open_dataset(dataset).load_npz()
    assert feats.X.dtype == np.uint8 and feats.sample_key.tolist() == labels.keys.tolist()
    from_npz = load_features(str(dataset), seed=3)
    assert (from_npz.kind, from_json.kind) == ("npz", "vggish_json")
    for split in ("train", "validation", "test"):
        a, b = from_npz.splits[split], from_json.splits[split]
        assert a.keys.tolist() == b.keys.tolist(), split
        np.testing.assert_array_equal(a.x, b.x)
        assert -2.0 <= a.x.min() and a.x.max() <= 2.0
        np.testing.assert_array_equal(a.y_mask, b.y_mask)
        observed = a.y_mask > 0
        np.testing.assert_array_equal(a.y_true[observed], b.y_true[observed])

    # A pickle that is not an array of strings is refused, naming the file; so are levels
    # outside 0..255 and 0..255 saved as floats (they would train on another scale).
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad_keys = np.array([Evil()] * n, dtype=object)
    cases = {
        "sample_key holds a pickled": dict(X=levels, sample_key=bad_keys),
        "outside 0..255": dict(X=levels + 1, sample_key=keys),
        "outside the dequantised range": dict(X=levels.astype(np.float32), sample_key=keys),
    }
    for reason, arrays in cases.items():
        np.savez(dataset / params.NPZ_FILE, Y_true=y_true, Y_mask=labels.y_mask, **arrays)
        with pytest.raises(DatasetError, match=reason) as err:
            open_dataset(dataset).load_npz()
        assert params.NPZ_FILE in str(err.value)


def test_folder_holding_the_release_root(dataset: Path) -> None:
    assert open_dataset(dataset.parent).labels().keys.tolist() == open_dataset(dataset).labels().keys.tolist()


# --- malformed input: typed error naming file and line ----------------------------------------
def _labels_path(root: Path) -> Path:
    return root / params.AGGREGATED_LABELS_FILE


def _append(root: Path, line: str) -> int:
    path = _labels_path(root)
    text = path.read_text()
    path.write_text(text + line + "\n")
    return len(text.splitlines()) + 1


@pytest.mark.parametrize(
    "row, reason",
    [
        ("100000_3840,kazoo,0.5,1", "unknown instrument class 'kazoo'"),
        ("100001_7680,piano,1.5,1", "outside [0, 1]"),
        ("100001_7680,piano,abc,1", "not a number"),
        ("../../etc/passwd,piano,1.0,1", "escape"),
        ("/abs/key,piano,1.0,1", "escape"),
        ("100001_7680,piano,1.0", "expected 4 columns"),
    ],
)
def test_bad_label_rows(dataset: Path, row: str, reason: str) -> None:
    line = _append(dataset, row)
    with pytest.raises(DatasetError) as err:
        open_dataset(dataset).labels()
    assert reason in err.value.reason
    assert err.value.path.endswith(params.AGGREGATED_LABELS_FILE) and err.value.line == line


def test_duplicate_label_row(dataset: Path) -> None:
    first = _labels_path(dataset).read_text().splitlines()[1]
    line = _append(dataset, first)
    with pytest.raises(DatasetError, match="duplicate row.*first at line 2") as err:
        open_dataset(dataset).labels()
    assert err.value.line == line


def test_partition_errors(dataset: Path) -> None:
    test_csv = dataset / params.PARTITIONS_DIR / params.PARTITION_TEST_FILE
    lines = test_csv.read_text().splitlines()
    test_csv.write_text("\n".join(lines + ["424242_0"]) + "\n")
    with pytest.raises(DatasetError, match="424242_0 has no labels") as err:
        open_dataset(dataset).partitions()
    assert err.value.path == str(test_csv) and err.value.line == len(lines) + 1
    train_key = (dataset / params.PARTITIONS_DIR / params.PARTITION_TRAIN_FILE).read_text().split()[0]
    test_csv.write_text("\n".join(lines + [train_key]) + "\n")
    with pytest.raises(DatasetError, match="also in the train partition"):
        open_dataset(dataset).partitions()
    test_csv.write_text("\n".join(lines + ["../x"]) + "\n")
    with pytest.raises(DatasetError, match="escape|not a plain name"):
        open_dataset(dataset).partitions()


def test_missing_and_malformed_files(dataset: Path, tmp_path: Path) -> None:
    (dataset / params.CLASS_MAP_FILE).write_text('{"piano": 0}')
    with pytest.raises(DatasetError, match="class map differs"):
        open_dataset(dataset).class_map()
    (dataset / params.CLASS_MAP_FILE).write_text("{not json")
    with pytest.raises(DatasetError, match="invalid JSON"):
        open_dataset(dataset).class_map()
    # Labels are indexed by class position, so reading them checks the class map first.
    with pytest.raises(DatasetError, match="invalid JSON"):
        open_dataset(dataset).labels()
    (dataset / params.CLASS_MAP_FILE).write_text(json.dumps(params.CLASS_INDEX))
    (dataset / params.PARTITIONS_DIR / params.PARTITION_TRAIN_FILE).unlink()
    with pytest.raises(DatasetError, match="required file is missing") as err:
        open_dataset(dataset).partitions()
    assert err.value.path.endswith(params.PARTITION_TRAIN_FILE)
    _labels_path(dataset).unlink()
    with pytest.raises(DatasetError, match="required file is missing"):
        open_dataset(dataset).labels()
    with pytest.raises(DatasetError, match="no such dataset"):
        open_dataset(tmp_path / "nope")


# --- disco info -------------------------------------------------------------------------------
def test_info_json_counts_missing_and_extra_audio(dataset: Path) -> None:
    ds = open_dataset(dataset)
    gone = ds.partitions()["train"][0]
    (dataset / "audio" / gone[:3] / f"{gone}.ogg").unlink()
    extra = dataset / "audio" / "777" / "777777_0.ogg"
    extra.parent.mkdir()
    extra.write_bytes(b"x")
    rc, out = _cli("info", str(dataset), "--json", "--validation-fraction", "0.25", "--seed", "7")
    info = json.loads(out)
    assert rc == 0
    assert info["clips"] == 60 and info["splits"] == {"train": 48, "test": 12}
    assert (
        sum(info["splits_with_validation"].values()) == 60
        and info["splits_with_validation"]["validation"] > 0
    )
    assert info["missing_audio"] == [gone] and info["extra_audio"] == ["777777_0"]
    labels = ds.labels()
    assert info["classes"]["piano"]["labelled"] == int(labels.y_mask[:, params.CLASS_INDEX["piano"]].sum())
    assert (
        sum(c["labelled"] for c in info["classes"].values())
        == info["labelled_pairs"]
        == int(labels.y_mask.sum())
    )
    rc, out = _cli("info", str(dataset))
    assert rc == 0 and "piano" in out and "missing 1" in out


def test_info_malformed_exits_2(dataset: Path, capsys) -> None:
    line = _append(dataset, "100000_3840,kazoo,0.5,1")
    rc, _ = _cli("info", str(dataset))
    assert rc == 2
    assert (
        f"{params.AGGREGATED_LABELS_FILE}:{line}: unknown instrument class 'kazoo'" in capsys.readouterr().err
    )
