"""The constants module agrees with the release, and records round-trip through the schemas."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from disco import params, records
from disco.errors import SchemaError


def test_class_order_matches_release_class_map(official_lists, openmic_sample):
    for path in (official_lists / "class-map.json", openmic_sample / "class-map.json"):
        class_map = json.loads(path.read_text())
        assert tuple(sorted(class_map, key=class_map.get)) == params.CLASSES


def test_clip_constants_are_consistent():
    assert params.CLIP_SAMPLES == params.SAMPLE_RATE * params.CLIP_SECONDS == 160_000
    assert params.NUM_CLASSES == 20


# `VAR ?= value` at the start of a line: the Makefile's overridable defaults.
_MAKE_DEFAULT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*\?=\s*(.*?)\s*$", re.MULTILINE)


@pytest.fixture(scope="module")
def makefile_defaults(repo_root) -> dict[str, str]:
    return dict(_MAKE_DEFAULT.findall((repo_root / "Makefile").read_text()))


# The Makefile cannot import params, so each value it repeats is checked here instead of drifting.
@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("REGISTRY", params.DEFAULT_REGISTRY),
        ("DEMO_CLIPS", str(params.DEMO_CLIPS)),
        ("PIPELINE_YAML", params.PIPELINE_YAML),
        ("PIPELINE_YAML_VERTEX", params.PIPELINE_YAML_VERTEX),
        ("SEED", str(params.DEFAULT_SEED)),
    ],
)
def test_makefile_defaults_mirror_params(makefile_defaults, variable, expected):
    assert variable in makefile_defaults, f"Makefile has no `{variable} ?= ...` default"
    assert makefile_defaults[variable] == expected


def test_pipeline_yaml_is_where_compile_writes_by_default(repo_root):
    from disco_pipelines.compile import default_output

    assert default_output(params.PIPELINE_NAME) == repo_root / params.PIPELINE_YAML
    assert (repo_root / params.PIPELINE_YAML).is_file()
    assert default_output(params.PIPELINE_NAME, "vertex") == repo_root / params.PIPELINE_YAML_VERTEX
    assert (repo_root / params.PIPELINE_YAML_VERTEX).is_file()


def test_resampled_record_round_trip(rng):
    pcm = records.float_to_pcm(rng.uniform(-1, 1, params.CLIP_SAMPLES))
    y_true = rng.uniform(0, 1, params.NUM_CLASSES).astype(np.float32)
    y_mask = (rng.uniform(0, 1, params.NUM_CLASSES) > 0.5).astype(np.int64)
    rec = records.ResampledRecord(
        key="000046_3840",
        split="train",
        pcm=pcm,
        original_duration=9.5,
        y_true=y_true,
        y_mask=y_mask,
        augmentation_id=3,
    )
    back = records.decode_resampled(records.encode_resampled(rec))
    assert back.key == rec.key and back.split == "train" and back.augmentation_id == 3
    np.testing.assert_array_equal(back.pcm, pcm)
    np.testing.assert_allclose(back.y_true, y_true)
    np.testing.assert_array_equal(back.y_mask, y_mask)
    assert back.original_duration == pytest.approx(9.5)
    assert back.sample_rate == params.SAMPLE_RATE


def test_float_to_pcm_clips_instead_of_wrapping():
    pcm = records.float_to_pcm(np.array([1.5, -1.5, 0.5]))
    assert pcm.tolist() == [32767, -32768, 16384]


def test_bad_records_raise_schema_errors(rng):
    with pytest.raises(SchemaError, match="int16"):
        records.encode_resampled(records.ResampledRecord("k", "train", np.zeros(10, np.float32), 1.0))
    with pytest.raises(SchemaError, match="split"):
        records.encode_resampled(records.ResampledRecord("k", "bogus", np.zeros(10, np.int16), 1.0))
    with pytest.raises(SchemaError, match="shape"):
        records.encode_embedding(
            records.EmbeddingRecord("k", "test", np.zeros((2, 3)), np.zeros(19), np.zeros(20), "musicnn", "x")
        )


def test_embedding_records_parse_in_the_graph(tmp_path, rng):
    embs = rng.normal(size=(4, 5, 7)).astype(np.float32)
    path = tmp_path / records.shard_name(params.EMBEDDING_PREFIX, 0, 1)
    with records.AtomicShardWriter(path) as writer:
        for i, emb in enumerate(embs):
            writer.write(
                records.encode_embedding(
                    records.EmbeddingRecord(
                        key=f"k{i}",
                        split="train" if i < 3 else "test",
                        embedding=emb,
                        y_true=np.full(20, i / 4, np.float32),
                        y_mask=np.ones(20, np.int64),
                        embedder="musicnn",
                        embedder_version="MTT_musicnn",
                        augmentation_id=i % 2,
                    )
                )
            )
    assert records.list_shards(tmp_path, params.EMBEDDING_PREFIX) == [str(path)]
    ds = records.embedding_dataset([str(path)], frames=5, dim=7, split="train", include_augmented=False)
    got = list(ds.as_numpy_iterator())
    assert [g[3].decode() for g in got] == ["k0", "k2"]
    np.testing.assert_allclose(got[1][0], embs[2])
    back = list(records.iter_embeddings([str(tmp_path)]))
    assert len(back) == 4 and back[3].split == "test"
    np.testing.assert_allclose(back[3].embedding, embs[3])


def test_records_carry_their_groups_and_older_records_take_them_from_the_key(tmp_path, rng):
    """``group`` and ``partner_group`` round-trip; a record written before they existed decodes (in
    Python and in the graph reader train uses) with its recording's group and no partner."""
    from disco.tfexample import decode_example, encode_example
    from disco.train.features import load_features

    def embedding(key, **groups):
        return records.EmbeddingRecord(
            key=key,
            split="train",
            embedding=rng.standard_normal((3, 4)).astype(np.float32),
            y_true=np.zeros(params.NUM_CLASSES, np.float32),
            y_mask=np.ones(params.NUM_CLASSES, np.int64),
            embedder="vggish",
            embedder_version="v",
            **groups,
        )

    new = records.encode_embedding(embedding("000046_3840", group="artist:7", partner_group="artist:9"))
    back = records.decode_embedding(new)
    assert (back.group, back.partner_group) == ("artist:7", "artist:9")
    feats = decode_example(records.encode_embedding(embedding("000047_0")))
    del feats[params.FEATURE_GROUP], feats[params.FEATURE_PARTNER_GROUP]
    old = encode_example(feats)
    back = records.decode_embedding(old)
    assert (back.group, back.partner_group) == ("track:000047", "")
    with records.AtomicShardWriter(tmp_path / records.shard_name(params.EMBEDDING_PREFIX, 0, 1)) as w:
        w.write(new)
        w.write(old)
    train = load_features(str(tmp_path)).splits["train"]
    assert list(train.keys) == ["000046_3840", "000047_0"]
    assert list(train.groups) == ["artist:7", "track:000047"]
    assert list(train.partner_groups) == ["artist:9", ""]


def test_schema_version_mismatch_is_refused(rng):
    import tensorflow as tf

    raw = records.encode_embedding(
        records.EmbeddingRecord(
            "k", "test", np.zeros((2, 3), np.float32), np.zeros(20), np.zeros(20), "musicnn", "x"
        )
    )
    ex = tf.train.Example.FromString(raw)
    ex.features.feature[params.FEATURE_SCHEMA_VERSION].int64_list.value[0] = 99
    with pytest.raises(SchemaError, match="schema_version"):
        records.decode_embedding(ex.SerializeToString())


def test_features_load_in_one_order_however_the_records_were_dealt_to_shards(tmp_path, rng):
    """A Beam sink deals records to a split's shards from a random start, so two runs of a step
    write the same records in other shards and orders: training reads them in one order (by
    augmentation, then key), so the same seed trains the same model."""
    from disco.train.features import load_features

    recs = [
        records.encode_embedding(
            records.EmbeddingRecord(
                key=f"{100 + i // 2:06d}_0",
                split="train" if i < 10 else "test",
                embedding=rng.normal(size=(3, 4)).astype(np.float32),
                y_true=rng.random(20).astype(np.float32),
                y_mask=np.ones(20, np.int64),
                embedder="musicnn",
                embedder_version="MTT_musicnn",
                augmentation_id=i % 2,
            )
        )
        for i in range(14)
    ]
    loaded = []
    for run, order in enumerate((np.arange(14), rng.permutation(14))):
        out = tmp_path / f"run{run}"
        out.mkdir()
        for shard in range(3):
            with records.AtomicShardWriter(out / records.shard_name(params.EMBEDDING_PREFIX, shard, 3)) as w:
                for i in order[shard::3]:
                    w.write(recs[i])
        loaded.append(load_features(str(out)))
    first, second = loaded
    for split in ("train", "test"):
        a, b = first.splits[split], second.splits[split]
        assert list(zip(a.augmentation_id, a.keys)) == sorted(zip(a.augmentation_id, a.keys))
        assert a.keys.tolist() == b.keys.tolist()
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y_true, b.y_true)
