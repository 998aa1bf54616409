"""The augment step: audiomentations copies, SpecAugment-style masks and mixup, as functions and as
the Beam pipeline (train split only, deterministic in the seed, labels of mixtures)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from helpers.resample_fixtures import labelled_record

from disco import params
from disco.audio.augment import augment_clip, mix_labels, mix_waveforms, mixup_weight
from disco.records import encode_resampled, iter_resampled, shard_name

# Entries: (y, mask) for clip a and clip b → expected (y, mask) of their mixture.
P, N, U = (1.0, 1), (0.0, 1), (0.0, 0)  # observed present, observed absent, unobserved


@pytest.mark.parametrize(
    "a, b, want",
    [
        (P, P, P),
        (P, N, P),
        (P, U, P),
        (N, P, P),
        (U, P, P),  # present in either → present
        (N, N, N),  # absent in both → absent
        (N, U, U),
        (U, N, U),
        (U, U, U),  # anything else is unknown: no loss
    ],
)
def test_mix_labels_truth_table(a, b, want):
    y, m = mix_labels(np.array([a[0]]), np.array([a[1]]), np.array([b[0]]), np.array([b[1]]))
    assert (float(y[0]), int(m[0])) == want


def test_mix_labels_keeps_soft_scores_and_threshold():
    # 0.4 is observed but below the positive threshold: absent; 0.7 is present and stays 0.7.
    y, m = mix_labels(np.array([0.4, 0.7]), np.array([1, 1]), np.array([0.2, 0.0]), np.array([1, 1]))
    np.testing.assert_allclose(y, [0.4, 0.7])
    np.testing.assert_array_equal(m, [1, 1])


def test_mix_waveforms_weighted_and_never_clips(rng):
    a = rng.uniform(-0.5, 0.5, 1000).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, 1000).astype(np.float32)
    np.testing.assert_allclose(mix_waveforms(a, b, weight=0.3), 0.3 * a + 0.7 * b, atol=1e-6)
    loud = mix_waveforms(np.ones(10, np.float32), np.ones(10, np.float32), weight=0.5)
    assert np.all(np.abs(loud) < 1.0)
    w = mixup_weight(seed=1, key="k", copy=3)
    assert 0.3 <= w <= 0.7 and w == mixup_weight(seed=1, key="k", copy=3) != mixup_weight(
        seed=1, key="k", copy=4
    )


def test_masks_change_the_copy_deterministically(rng):
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(params.CLIP_SAMPLES) / params.SAMPLE_RATE)).astype(
        np.float32
    )
    differs = 0
    for copy in range(1, 9):
        plain = augment_clip(x, seed=5, key="k", copy=copy)
        masked = augment_clip(x, seed=5, key="k", copy=copy, masks=True)
        np.testing.assert_array_equal(masked, augment_clip(x, seed=5, key="k", copy=copy, masks=True))
        assert masked.shape == x.shape and np.all(np.abs(masked) < 1.0)
        differs += not np.array_equal(plain, masked)
    assert differs >= 4  # each mask fires with p=0.5: over 8 copies at least half differ


def test_copies_ignore_other_threads_drawing_from_the_global_generators():
    """Beam's sinks draw shard keys from ``random`` and a Dask worker runs other tasks on other
    threads: a copy made while they draw must equal the one made alone."""
    import random
    import threading

    x = np.random.default_rng(1).uniform(-0.5, 0.5, params.CLIP_SAMPLES).astype(np.float32)
    alone = [augment_clip(x, seed=2, key=f"k{i}", copy=1, masks=True) for i in range(6)]
    stop = threading.Event()

    def draw():
        while not stop.is_set():
            random.random()
            np.random.random()

    thread = threading.Thread(target=draw)
    thread.start()
    try:
        busy = [augment_clip(x, seed=2, key=f"k{i}", copy=1, masks=True) for i in range(6)]
    finally:
        stop.set()
        thread.join()
    for a, b in zip(alone, busy):
        np.testing.assert_array_equal(a, b)


def test_copies_do_not_depend_on_thread_scheduling():
    """audiomentations keeps each transform's drawn parameters on the transform object, so
    threads sharing one chain could apply another clip's settings: copies made concurrently must
    equal copies made one at a time."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(0)
    clips = {f"k{i}": (0.1 * rng.standard_normal(params.SAMPLE_RATE)).astype(np.float32) for i in range(24)}

    def one(key):
        return augment_clip(clips[key], seed=2018, key=key, copy=1, masks=True)

    alone = {k: one(k) for k in clips}
    interval = sys.getswitchinterval()
    # A tiny switch interval interleaves the threads inside the transforms, where the race is.
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(3):
            with ThreadPoolExecutor(4) as pool:
                together = dict(zip(clips, pool.map(one, clips)))
            assert [k for k in clips if not np.array_equal(alone[k], together[k])] == []
    finally:
        sys.setswitchinterval(interval)


def _write_resampled(path, recs):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as w:
        for r in recs:
            w.write(encode_resampled(r))


@pytest.fixture(scope="module")
def resampled(tmp_path_factory):
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("resampled")
    t = np.arange(params.CLIP_SAMPLES) / params.SAMPLE_RATE
    recs = []
    for i in range(10):
        split = "train" if i < 7 else ("validation" if i < 9 else "test")
        wave = 0.2 * np.sin(2 * np.pi * (200 + 50 * i) * t)
        rec = labelled_record(f"{i:06d}_0", split, wave, rng, observed=0.3)
        rec.group = f"artist:{i % 3}"  # as resample writes it from the metadata
        recs.append(rec)
    for split in params.SPLITS:
        _write_resampled(
            root / shard_name(f"{params.RESAMPLED_PREFIX}-{split}", 0, 1),
            [r for r in recs if r.split == split],
        )
    return root, {r.key: r for r in recs}


def _augment(src, out, **kw):
    from disco.beam.augment import run_augment

    summary = run_augment(str(src), str(out), seed=3, **kw)
    return summary, sorted(iter_resampled([str(out)]), key=lambda r: (r.key, r.augmentation_id))


@pytest.mark.slow
def test_beam_mixup_copies_and_labels(resampled, tmp_path):
    src, originals = resampled
    train = {k: r for k, r in originals.items() if r.split == "train"}
    summary, recs = _augment(src, tmp_path / "a", copies=1, mixup=2, masks=True)
    assert summary.records == len(recs) == 3 * len(train)
    assert {r.key for r in recs} == set(train) and {r.split for r in recs} == {"train"}
    assert sorted(r.augmentation_id for r in recs) == sorted([1, 2, 3] * len(train))
    assert summary.masks and summary.mixup == 2 and summary.chain

    partners: dict[str, set[str]] = {}
    for r in (r for r in recs if r.augmentation_id > 1):
        a = train[r.key]
        w = mixup_weight(seed=3, key=r.key, copy=r.augmentation_id)
        # The partner is the other train clip that reproduces this mixture.
        errors = {
            k: np.max(np.abs(r.waveform() - mix_waveforms(a.waveform(), b.waveform(), weight=w)))
            for k, b in train.items()
            if k != r.key
        }
        partner = min(errors, key=errors.get)
        assert errors[partner] <= 2.0 / params.PCM_SCALE
        partners.setdefault(r.key, set()).add(partner)
        # Grouped as its first clip, and naming its partner's group for cross-fitting.
        assert (r.group, r.partner_group) == (a.group, train[partner].group)
        want_y, want_mask = mix_labels(a.y_true, a.y_mask, train[partner].y_true, train[partner].y_mask)
        np.testing.assert_allclose(r.y_true, want_y)
        np.testing.assert_array_equal(r.y_mask, want_mask)

    assert all(len(p) == 2 for p in partners.values())  # two mixtures of a clip: two partners
    copies = [r for r in recs if r.augmentation_id == 1]
    assert all((r.group, r.partner_group) == (train[r.key].group, "") for r in copies)
    again_summary, again = _augment(src, tmp_path / "b", copies=1, mixup=2, masks=True)
    assert [r.pcm.tobytes() for r in again] == [r.pcm.tobytes() for r in recs]
    _, other_seed = _augment(src, tmp_path / "c", copies=0, mixup=1)
    assert len(other_seed) == len(train) and {r.augmentation_id for r in other_seed} == {1}


def test_a_corrupt_or_undecodable_input_record_is_dead_lettered_and_the_rest_augmented(resampled, tmp_path):
    """One record with a flipped byte (its checksum fails) and one that is no resampled record are
    skipped and named in failures.jsonl; every other train record is still augmented."""
    import json

    from disco.records import frame_tfrecord

    src, originals = resampled
    damaged = tmp_path / "damaged"
    shutil.copytree(src, damaged)
    shard = damaged / shard_name(f"{params.RESAMPLED_PREFIX}-train", 0, 1)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the 4th of 7 records' PCM: same size, another checksum
    shard.write_bytes(bytes(data) + frame_tfrecord(b"not an Example"))
    train = sorted(k for k, r in originals.items() if r.split == "train")

    summary, recs = _augment(damaged, tmp_path / "out", copies=1)
    lines = [json.loads(line) for line in (tmp_path / "out" / params.FAILURES_FILE).read_text().splitlines()]
    assert summary.failed == len(lines) == 2 and summary.failures == lines
    crc, junk = sorted(lines, key=lambda f: f["index"])
    assert (crc["index"], crc["key"], junk["index"], junk["key"]) == (3, train[3], 7, None)
    assert "checksum" in crc["reason"] and crc["shard"] == str(shard)
    assert {r.key for r in recs} == set(train) - {train[3]} and summary.records == len(train) - 1


def test_a_damaged_length_header_fails_the_step_naming_the_shard(resampled, tmp_path):
    """Past a damaged length header no record of the shard can be found: the step fails naming the
    shard, publishing nothing, instead of augmenting the records before it and counting one failure."""
    from disco.beam.augment import run_augment
    from disco.errors import SchemaError

    src, _ = resampled
    damaged = tmp_path / "damaged"
    shutil.copytree(src, damaged)
    shard = damaged / shard_name(f"{params.RESAMPLED_PREFIX}-train", 0, 1)
    data = bytearray(shard.read_bytes())
    pos = 0
    for _ in range(2):  # to the third record: 8-byte length, its CRC, the data, the data's CRC
        pos += 12 + int.from_bytes(data[pos : pos + 8], "little") + 4
    data[pos] ^= 0x01  # its length: the same size, every record from it on lost
    shard.write_bytes(bytes(data))
    with pytest.raises(SchemaError, match=f"{shard}: record 2: corrupt length header"):
        run_augment(str(damaged), str(tmp_path / "out"), copies=1, seed=3)
    assert not (tmp_path / "out").exists()


def test_augment_needs_something_to_do(resampled, tmp_path):
    from disco.beam.augment import run_augment
    from disco.errors import ConfigError

    with pytest.raises(ConfigError, match="at least one"):
        run_augment(str(resampled[0]), str(tmp_path), copies=0, mixup=0)
