"""What the Beam steps write beside their shards lands in the bucket when the output is gs:// (as it
must be on Dataflow): side files, shard listing and record counts go through Beam's own GCS client
(disco.fileio), here against a real GCS emulator (fake-gcs-server).

The emulator lacks GCS's batch API, which Beam's file sink uses to rename finished shards, so the
sink itself is not run against it; the shards here are written as the sink would leave them.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers.gcs_emulator import gcs_emulator  # noqa: F401  (pytest fixture)

from disco import fileio, params
from disco.records import ResampledRecord, count_records, encode_resampled, list_shards, shard_name
from disco.runinfo import write_run_info

# Beam looks for Google credentials once per process, retrying with back-off (~20 s here, where
# there are none) before it connects anonymously, as the emulator wants.
pytestmark = pytest.mark.slow
BUCKET = "disco-fileio-test"


def _tfrecord(records: list[bytes]) -> bytes:
    import tempfile

    import tensorflow as tf

    with tempfile.NamedTemporaryFile(suffix=".tfrecord") as tmp:
        with tf.io.TFRecordWriter(tmp.name) as w:
            for r in records:
                w.write(r)
        return open(tmp.name, "rb").read()


def test_side_files_shards_and_counts_in_a_bucket(gcs_emulator, tmp_path, monkeypatch):  # noqa: F811
    # No credentials here: skip google-auth's probe of the GCE metadata server (seconds of timeouts).
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    gcs_emulator.make_bucket(BUCKET)
    out = f"gs://{BUCKET}/run/resampled"

    fileio.makedirs(out)  # no-op on an object store; must not create a local "gs:" directory
    fileio.write_text(fileio.join(out, params.SUMMARY_FILE), json.dumps({"ok": 3}))
    assert fileio.exists(f"{out}/{params.SUMMARY_FILE}") and not fileio.exists(f"{out}/nothing.json")
    assert json.loads(fileio.read_text(f"{out}/{params.SUMMARY_FILE}")) == {"ok": 3}
    blob = gcs_emulator.client.bucket(BUCKET).blob(f"run/resampled/{params.SUMMARY_FILE}")
    assert json.loads(blob.download_as_bytes()) == {"ok": 3}  # really in the bucket

    path = write_run_info(out, step="resample", parameters={"data_uri": "x"}, seed=7)
    assert path == f"{out}/{params.RUN_INFO_FILE}"
    assert json.loads(fileio.read_text(path))["seed"] == 7

    recs = [
        encode_resampled(
            ResampledRecord(
                key=f"{i:06d}_0",
                split="train",
                original_duration=10.0,
                pcm=np.full(params.CLIP_SAMPLES, i, np.int16),
            )
        )
        for i in range(5)
    ]
    data = _tfrecord(recs)
    for i, chunk in enumerate((recs[:2], recs[2:])):
        name = shard_name(f"{params.RESAMPLED_PREFIX}-train", i, 2)
        gcs_emulator.client.bucket(BUCKET).blob(f"run/resampled/{name}").upload_from_string(_tfrecord(chunk))
    gcs_emulator.client.bucket(BUCKET).blob("run/resampled/beam-temp-x/partial.tfrecord").upload_from_string(
        data
    )
    shards = list_shards(out, params.RESAMPLED_PREFIX)
    assert [s.rsplit("/", 1)[1] for s in shards] == [
        shard_name(f"{params.RESAMPLED_PREFIX}-train", i, 2) for i in range(2)
    ]
    assert [count_records(s) for s in shards] == [2, 3]
    with fileio.open_binary(shards[1]) as fh:
        assert fh.read() == _tfrecord(recs[2:])
    assert not os.path.exists("gs:")  # nothing went to a local directory named after the URI
