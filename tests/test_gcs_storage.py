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
