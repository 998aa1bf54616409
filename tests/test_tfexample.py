"""Our TensorFlow-free Example codec against TensorFlow's own, in both directions."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from disco.errors import SchemaError
from disco.tfexample import BYTES, FLOAT, INT64, decode_example, encode_example


@pytest.fixture
def features(rng):
    return {
        "pcm": (BYTES, [rng.integers(-32768, 32767, 160_000, dtype=np.int16).tobytes()]),
        "keys": (BYTES, [b"000046_3840", b"", "ünïcode".encode()]),
        "y_true": (FLOAT, rng.random(20).astype(np.float32)),
        "ints": (INT64, [0, 1, 127, 128, 300, 2**40, -1, -(2**63), 2**63 - 1]),
        "empty_floats": (FLOAT, []),
    }


def test_tensorflow_parses_what_we_write(features):
    ex = tf.train.Example.FromString(encode_example(features))
    f = ex.features.feature
    assert f["pcm"].bytes_list.value[0] == features["pcm"][1][0]
    assert list(f["keys"].bytes_list.value) == features["keys"][1]
    np.testing.assert_array_equal(np.asarray(f["y_true"].float_list.value, np.float32), features["y_true"][1])
    assert list(f["ints"].int64_list.value) == features["ints"][1]
    assert f["empty_floats"].WhichOneof("kind") == "float_list"
    assert len(f["empty_floats"].float_list.value) == 0


def test_we_read_what_tensorflow_writes(features):
    feature = {
        "pcm": tf.train.Feature(bytes_list=tf.train.BytesList(value=features["pcm"][1])),
        "keys": tf.train.Feature(bytes_list=tf.train.BytesList(value=features["keys"][1])),
        "y_true": tf.train.Feature(float_list=tf.train.FloatList(value=features["y_true"][1])),
        "ints": tf.train.Feature(int64_list=tf.train.Int64List(value=features["ints"][1])),
    }
    data = tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
    got = decode_example(data)
    assert got["pcm"] == (BYTES, features["pcm"][1])
    assert got["keys"] == (BYTES, features["keys"][1])
    assert got["y_true"][0] == FLOAT
    np.testing.assert_array_equal(got["y_true"][1], features["y_true"][1])
    assert got["ints"] == (INT64, features["ints"][1])


def test_round_trip_through_tf_data_parser(tmp_path, features):
    """The training step parses in the graph; what we write must parse there too."""
    path = str(tmp_path / "x.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        w.write(encode_example(features))
    spec = {"y_true": tf.io.FixedLenFeature([20], tf.float32), "ints": tf.io.VarLenFeature(tf.int64)}
    parsed = next(iter(tf.data.TFRecordDataset(path).map(lambda r: tf.io.parse_single_example(r, spec))))
    np.testing.assert_array_equal(parsed["y_true"].numpy(), features["y_true"][1])
    assert parsed["ints"].values.numpy().tolist() == features["ints"][1]


@pytest.mark.parametrize("data", [b"\xff\xff\xff", b"not a protobuf at all, just text", b"\x0a\x05ab"])
def test_garbage_is_a_schema_error(data):
    with pytest.raises(SchemaError):
        decode_example(data)
