"""The embed step on its own, with musicnn (real weights, offline) on a handful of records made from
the real OpenMIC sample clip: metadata carried through record by record, the dead letter for
records that cannot be decoded, and the output read back through tf.data."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from disco import params
from disco.records import (
    AtomicShardWriter,
    ResampledRecord,
    embedding_dataset,
    encode_resampled,
    iter_embeddings,
    list_shards,
    shard_name,
)

pytestmark = pytest.mark.slow

MUSICNN_FRAMES, MUSICNN_DIM = 3, 753  # max_pool, non-overlapping 3 s patches of a 10 s clip
# (shard split, augmentation_id) of each good record; train spans two shards, as Beam writes it.
LAYOUT = {
    ("train", 0): [0, 0],
    ("train", 1): [0, 1],
    ("validation", 0): [0],
    ("test", 0): [0, 0],
}


@pytest.fixture(scope="module")
def clip(openmic_sample: Path) -> np.ndarray:
    from disco.audio.decode import load_clip

    wave, _ = load_clip(str(openmic_sample / "audio" / "000" / "000046_3840.ogg"))
    return wave


def _records(
    clip: np.ndarray, rng: np.random.Generator, split: str, augmentation_ids: list[int], prefix: str
) -> list[ResampledRecord]:
    from disco.records import float_to_pcm

    out = []
    for i, aug in enumerate(augmentation_ids):
        # Rolled and scaled copies of the real clip: each record's embedding is its own, so a
        # record whose metadata ended up beside another clip's embedding would show.
        wave = np.roll(clip, int(rng.integers(0, params.CLIP_SAMPLES))) * rng.uniform(0.3, 1.0)
        out.append(
            ResampledRecord(
                key=f"{prefix}{split[:2]}{i}_{aug}",
                split=split,
                pcm=float_to_pcm(wave),
                original_duration=10.0,
                y_true=rng.uniform(0, 1, params.NUM_CLASSES).astype(np.float32),
                y_mask=(rng.uniform(0, 1, params.NUM_CLASSES) > 0.5).astype(np.int64),
                augmentation_id=aug,
            )
        )
    return out


def _write_shards(directory: Path, shards: dict[tuple[str, int, int], list[bytes]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for (split, index, total), payloads in shards.items():
        with AtomicShardWriter(
            directory / shard_name(f"{params.RESAMPLED_PREFIX}-{split}", index, total)
        ) as w:
            for raw in payloads:
                w.write(raw)


def _wrong_version(rec: ResampledRecord) -> bytes:
    import tensorflow as tf

    ex = tf.train.Example.FromString(encode_resampled(rec))
    ex.features.feature[params.FEATURE_SCHEMA_VERSION].int64_list.value[0] = (
        params.RESAMPLED_SCHEMA_VERSION + 1
    )
    return ex.SerializeToString()


def _missing_pcm(rec: ResampledRecord) -> bytes:
    import tensorflow as tf

    ex = tf.train.Example.FromString(encode_resampled(rec))
    del ex.features.feature[params.FEATURE_PCM]
    return ex.SerializeToString()


def _embed(root):
    """The embed step over root/resampled into root/embeddings, as both fixtures run it."""
    from disco.beam.embed import run_embed

    return run_embed(
        [str(root / "resampled")],
        str(root / "embeddings"),
        embedder="musicnn",
        precision="float32",
        batch_size=4,
    )


@pytest.fixture(scope="module")
def clean(tmp_path_factory, clip):
    rng = np.random.default_rng(20181)
    root = tmp_path_factory.mktemp("embed-clean")
    inputs: list[ResampledRecord] = []
    shards = {}
    totals = {s: sum(1 for (split, _) in LAYOUT if split == s) for s in params.SPLITS}
    for (split, index), augs in LAYOUT.items():
        recs = _records(clip, rng, split, augs, prefix=f"s{index}")
        inputs += recs
        shards[(split, index, totals[split])] = [encode_resampled(r) for r in recs]
    _write_shards(root / "resampled", shards)
    return {"root": root, "inputs": inputs, "summary": _embed(root)}


@pytest.fixture(scope="module")
def with_bad(tmp_path_factory, clip):
    rng = np.random.default_rng(20182)
    root = tmp_path_factory.mktemp("embed-bad")
    good = _records(clip, rng, "train", [0, 0, 0], prefix="ok")
    test = _records(clip, rng, "test", [0], prefix="ok")
    stale = _records(clip, rng, "train", [0], prefix="stale")[0]
    no_pcm = _records(clip, rng, "train", [0], prefix="nopcm")[0]
    garbage = rng.integers(0, 256, 600, dtype=np.uint8).tobytes()
    train_shard = [
        encode_resampled(good[0]),
        _wrong_version(stale),
        encode_resampled(good[1]),
        garbage,
        _missing_pcm(no_pcm),
        encode_resampled(good[2]),
    ]
    _write_shards(
        root / "resampled", {("train", 0, 1): train_shard, ("test", 0, 1): [encode_resampled(test[0])]}
    )
    # caplog is per test; this fixture runs once per module, so it keeps the step's warnings itself.
    warnings = _Collect(logging.WARNING)
    logging.getLogger("disco.beam.embed").addHandler(warnings)
    try:
        summary = _embed(root)
    finally:
        logging.getLogger("disco.beam.embed").removeHandler(warnings)
    return {
        "root": root,
        "good": good + test,
        "stale": stale,
        "no_pcm": no_pcm,
        "summary": summary,
        "warnings": [r.getMessage() for r in warnings.records if r.levelno >= logging.WARNING],
    }


class _Collect(logging.Handler):
    def __init__(self, level: int):
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# --- (a) metadata carried through --------------------------------------------------------------


def test_every_record_keeps_its_metadata(clean):
    outputs = {r.key: r for r in iter_embeddings([str(clean["root"] / "embeddings")])}
    inputs = clean["inputs"]
    assert len(outputs) == len(inputs) == len({r.key for r in inputs})
    for rec in inputs:
        out = outputs[rec.key]
        assert out.split == rec.split and out.augmentation_id == rec.augmentation_id
        np.testing.assert_array_equal(out.y_true, rec.y_true)
        np.testing.assert_array_equal(out.y_mask, rec.y_mask)
        assert out.embedder == "musicnn" and out.embedding.shape == (MUSICNN_FRAMES, MUSICNN_DIM)


def test_each_embedding_is_its_own_clips(clean):
    from disco.embedders import get_embedder

    outputs = {r.key: r.embedding for r in iter_embeddings([str(clean["root"] / "embeddings")])}
    inputs = clean["inputs"]
    expected = get_embedder("musicnn", precision="float32").embed(np.stack([r.waveform() for r in inputs]))
    for rec, want in zip(inputs, expected):
        np.testing.assert_allclose(outputs[rec.key], want, rtol=1e-4, atol=1e-4)
    # the clips really differ, so a mix-up could not pass the check above
    assert np.abs(expected[0] - expected[1]).max() > 1e-2


def test_counts_per_split_and_summary(clean):
    s = clean["summary"]
    want = {split: sum(r.split == split for r in clean["inputs"]) for split in params.SPLITS}
    assert s.splits == want and s.records == len(clean["inputs"])
    assert (s.embedder, s.frames, s.dim, s.precision) == (
        "musicnn",
        MUSICNN_FRAMES,
        MUSICNN_DIM,
        "float32",
    )
    assert s.failed == 0 and s.failures == []
    on_disk = json.loads((clean["root"] / "embeddings" / params.SUMMARY_FILE).read_text())
    assert on_disk["records"] == s.records and on_disk["splits"] == want
    assert (clean["root"] / "embeddings" / params.FAILURES_FILE).read_text() == ""
    for split in params.SPLITS:
        assert list_shards(clean["root"] / "embeddings", f"{params.EMBEDDING_PREFIX}-{split}")


# --- (b) dead letter ---------------------------------------------------------------------------


def test_undecodable_records_go_to_the_dead_letter(with_bad):
    s = with_bad["summary"]
    out_dir = with_bad["root"] / "embeddings"
    failures = [json.loads(line) for line in (out_dir / params.FAILURES_FILE).read_text().splitlines()]
    assert s.failed == 3 and sorted(failures, key=str) == sorted(s.failures, key=str)
    shard = str(with_bad["root"] / "resampled" / shard_name(f"{params.RESAMPLED_PREFIX}-train", 0, 1))
    assert {f["shard"] for f in failures} == {shard}
    by_key = {f["key"]: f["reason"] for f in failures}
    assert set(by_key) == {with_bad["stale"].key, with_bad["no_pcm"].key, None}
    assert "schema_version" in by_key[with_bad["stale"].key]
    assert params.FEATURE_PCM in by_key[with_bad["no_pcm"].key]
    assert "not a tf.train.Example" in by_key[None]  # the garbage bytes: no key, but a reason


def test_good_records_all_written_beside_the_bad(with_bad):
    s = with_bad["summary"]
    outputs = {r.key: r for r in iter_embeddings([str(with_bad["root"] / "embeddings")])}
    assert set(outputs) == {r.key for r in with_bad["good"]}
    assert s.records == len(with_bad["good"]) and s.records + s.failed == 7
    assert s.splits == {"train": 3, "test": 1}
    for rec in with_bad["good"]:
        np.testing.assert_array_equal(outputs[rec.key].y_true, rec.y_true)


def test_dead_letter_warnings_name_shard_and_reason(with_bad):
    failures = [w for w in with_bad["warnings"] if "could not decode" in w]
    assert len(failures) == 3
    assert all("audio-train-00000-of-00001" in w for w in failures)
    assert any(with_bad["stale"].key in w and "schema_version" in w for w in failures)


# --- (c) the output as a tf.data pipeline -------------------------------------------------------


def test_output_reads_back_through_tf_data(clean):
    from disco.train.features import load_features

    files = list_shards(clean["root"] / "embeddings", params.EMBEDDING_PREFIX)
    n = len(clean["inputs"])
    emb, y_true, y_mask, key = next(
        iter(embedding_dataset(files, frames=MUSICNN_FRAMES, dim=MUSICNN_DIM).batch(64))
    )
    assert emb.shape == (n, MUSICNN_FRAMES, MUSICNN_DIM) and np.isfinite(emb.numpy()).all()
    assert y_true.shape == y_mask.shape == (n, params.NUM_CLASSES) and len(key) == n
    originals = embedding_dataset(
        files, frames=MUSICNN_FRAMES, dim=MUSICNN_DIM, split="train", include_augmented=False
    )
    assert len(list(originals)) == sum(r.split == "train" and r.augmentation_id == 0 for r in clean["inputs"])
    fs = load_features(str(clean["root"] / "embeddings"))
    assert (fs.kind, fs.embedder, fs.frames, fs.dim) == ("records", "musicnn", MUSICNN_FRAMES, MUSICNN_DIM)
    assert {s: len(d.keys) for s, d in fs.splits.items()} == clean["summary"]["splits"]
