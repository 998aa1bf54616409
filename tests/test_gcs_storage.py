"""gs:// datasets through the real google-cloud-storage client against a real fake-gcs-server."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from helpers.gcs_emulator import gcs_emulator  # noqa: F401  (pytest fixture)

from disco import params
from disco.data.openmic import open_dataset
from disco.data.storage import upload_dir
from disco.errors import DatasetError


def _tgz(src: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(src, arcname=params.RELEASE_ROOT_NAME)
    return out


def test_gcs_prefix_and_tarball_match_local(gcs_emulator, openmic_sample: Path, tmp_path: Path) -> None:  # noqa: F811
    bucket = gcs_emulator.make_bucket("disco-data")
    n = upload_dir(openmic_sample, "gs://disco-data/openmic-2018", client=gcs_emulator.client)
    assert n == sum(1 for p in openmic_sample.rglob("*") if p.is_file())
    bucket.blob("releases/openmic-2018.tgz").upload_from_filename(
        str(_tgz(openmic_sample, tmp_path / "x.tgz"))
    )

    local = open_dataset(openmic_sample, partial=True)
    for uri in ("gs://disco-data/openmic-2018", "gs://disco-data/releases/openmic-2018.tgz"):
        ds = open_dataset(uri, partial=True)
        a, b = local.labels(), ds.labels()
        np.testing.assert_array_equal(a.keys, b.keys)
        np.testing.assert_array_equal(a.y_true, b.y_true)
        np.testing.assert_array_equal(a.y_mask, b.y_mask)
        assert ds.partitions() == local.partitions()
        assert ds.metadata()["artist_id"].to_dict() == local.metadata()["artist_id"].to_dict()
        assert ds.read_audio("000046_3840") == local.read_audio("000046_3840")
        blobs = list(ds.iter_audio(["000046_3840", "000135_483840"]))
        assert [b.error is None for b in blobs] == [True, False]
        assert ds.audio_path("000046_3840").startswith("gs://disco-data/")
        np.testing.assert_array_equal(ds.vggish_json("000046_3840"), local.vggish_json("000046_3840"))

    gcs = open_dataset("gs://disco-data/openmic-2018", partial=True)
    assert gcs.audio_files() == ["000046_3840"]
    with pytest.raises(DatasetError, match="not found"):
        gcs.read_audio("000135_483840")
    with pytest.raises(DatasetError, match="missing"):
        open_dataset("gs://disco-data/nothing-here").labels()


def test_the_fingerprint_of_a_prefix_lists_only_that_prefix(gcs_emulator, tmp_path: Path) -> None:  # noqa: F811
    from disco.data.fingerprint import dataset_fingerprint

    bucket = gcs_emulator.make_bucket("disco-fp")
    for name in ("data/a.ogg", "data/sub/b.csv", "data-old/c.ogg", "release.tgz"):
        bucket.blob(name).upload_from_string(name.encode())
    first = dataset_fingerprint("gs://disco-fp/data")
    assert dataset_fingerprint("gs://disco-fp/data/") == first
    # A sibling sharing the prefix's first letters is another dataset: it changes nothing.
    bucket.blob("data-old/d.ogg").upload_from_string(b"more")
    assert dataset_fingerprint("gs://disco-fp/data") == first
    bucket.blob("data/sub/b.csv").upload_from_string(b"changed content")
    assert dataset_fingerprint("gs://disco-fp/data") != first
    tarball = dataset_fingerprint("gs://disco-fp/release.tgz")
    bucket.blob("release.tgz").upload_from_string(b"another release")
    assert dataset_fingerprint("gs://disco-fp/release.tgz") != tarball


def test_an_unreachable_bucket_fails_the_listing_within_its_deadline(monkeypatch) -> None:
    import socket
    import time

    from disco.data.fingerprint import dataset_fingerprint

    with socket.socket() as sock:  # a port nothing listens on: connection refused, retried
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(params, "GCS_LIST_DEADLINE_S", 2.0)
    start = time.monotonic()
    with pytest.raises(DatasetError, match=r"gs://disco-fp/data: cannot list"):
        dataset_fingerprint("gs://disco-fp/data")
    # The client's own default would retry for 120 s (what made `disco submit` take minutes).
    assert time.monotonic() - start < 2.0 + params.GCS_LIST_TIMEOUT_S


def test_the_emulator_keeps_answering_past_its_log_pipe(gcs_emulator) -> None:  # noqa: F811
    """The emulator logs every request to a pipe; unread, the pipe fills after a few hundred
    requests and the server stops answering (a test's fourth publish hung). The helper drains it:
    more requests than the pipe holds log lines for all get answers, within a bounded timeout."""
    from helpers import gcs_emulator as helper

    bucket = gcs_emulator.make_bucket("disco-chatty")
    blob = bucket.blob("x")
    blob.upload_from_string(b"x")
    for _ in range(800):  # ~150 bytes of log each: well past a 64 KiB pipe
        assert blob.exists(timeout=10)
    assert any("disco-chatty" in line for line in helper._LOG), "the drained log holds the server's lines"
