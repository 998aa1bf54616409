"""The pipeline against real (emulated) Cloud Storage: the dataset tarball is read from a bucket and the
run's outputs are written back to it.

Design (what kfp.local allows): the steps read ``gs://`` themselves through the data layer (the real
google-cloud-storage client, which honours STORAGE_EMULATOR_HOST, inherited by every task's
subprocess). kfp.local writes artifacts through local paths only (a gs:// pipeline root becomes
/gcs/..., a gcsfuse mount that exists on Vertex, not here), so ``--output-dir gs://`` stages the run
locally and uploads it when the run succeeds. The release-features branch keeps the test short; the
audio branch is covered locally by test_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.pipeline_fixtures import (
    E2E_SEED,
    add_release_npz,
    emulator,
    make_demo_dataset,
    make_release_tarball,
)

from disco import params

BUCKET = "disco-data"


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.network_emulator
def test_pipeline_reads_a_tarball_from_a_bucket_and_writes_outputs_back(tmp_path):
    from disco.runner import run_local

    root = make_demo_dataset(tmp_path / "src", corrupt=0)
    add_release_npz(root)
    tarball = make_release_tarball(root, tmp_path / params.RELEASE_TARBALL_NAME)

    # emulator() sets STORAGE_EMULATOR_HOST and removes it when it stops; a monkeypatch.setenv here
    # would put the stopped server's address back after the test, for every later test to wait on.
    with emulator() as (_, client):
        bucket = client.create_bucket(BUCKET)
        bucket.blob(f"datasets/{params.RELEASE_TARBALL_NAME}").upload_from_filename(str(tarball))

        import tempfile

        staged_before = set(Path(tempfile.gettempdir()).glob("disco-run-*"))
        result = run_local(
            f"gs://{BUCKET}/datasets/{params.RELEASE_TARBALL_NAME}",
            f"gs://{BUCKET}/runs/r1",
            use_release_features=True,
            epochs=2,
            batch_size=8,
            seed=E2E_SEED,
            cache=False,
        )

        # Uploaded, the local staging copy of the run is gone, and the summary points at the bucket.
        assert set(Path(tempfile.gettempdir()).glob("disco-run-*")) == staged_before
        summary = json.loads(bucket.blob(f"runs/r1/{params.RUN_SUMMARY_FILE}").download_as_bytes())
        assert summary["evaluation_dir"] == result.evaluation_dir
        assert result.evaluation_dir.startswith(f"gs://{BUCKET}/runs/r1/")
        names = {b.name for b in client.list_blobs(BUCKET, prefix="runs/r1/")}
        assert result.evaluation_dir[len(f"gs://{BUCKET}/") :] + f"/{params.METRICS_FILE}" in names
        assert {f"runs/r1/{params.METRICS_FILE}", "runs/r1/pipeline.log", "runs/r1/run_info.json"} <= names
        shards = [n for n in names if n.endswith(".tfrecord") and "/import-release-features/features/" in n]
        assert shards
        # A gs:// folder is listed through its manifest like a local one, not read as one file.
        from disco.records import iter_embeddings

        folder = f"gs://{BUCKET}/" + shards[0].rsplit("/", 1)[0]
        assert (
            len(list(iter_embeddings([folder])))
            == sum(sum(1 for _ in iter_embeddings([f"gs://{BUCKET}/{n}"])) for n in shards)
            > 0
        )
        assert any(n.endswith("/model.keras") for n in names)
        remote_metrics = json.loads(bucket.blob(f"runs/r1/{params.METRICS_FILE}").download_as_bytes())
        assert remote_metrics == result.metrics
        assert result.metrics_path == f"gs://{BUCKET}/runs/r1/{params.METRICS_FILE}"
        assert 0.0 <= remote_metrics["mAP"] <= 1.0
        # The dataset really came from the bucket: the import step recorded the gs:// URI.
        features_info = [n for n in names if n.endswith("/import-release-features/features/run_info.json")]
        info = json.loads(bucket.blob(features_info[0]).download_as_bytes())
        assert info["parameters"]["data_uri"].startswith(f"gs://{BUCKET}/")
