"""resample, augment and embed on a real multi-process engine: Beam's DaskRunner on a
``distributed.LocalCluster`` (2 worker processes, TCP on 127.0.0.1), compared with the in-memory
FnApiRunner on the same input, a corrupt clip and an undecodable record included.

The workers are started in their own working directory with their own TMPDIR, and the launcher
hands the steps *relative* paths from its own directory: a step that gave a worker a path only the
launcher can resolve would write into the worker's directory or fail to find its input.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from disco import params

pytestmark = pytest.mark.slow

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """Two worker processes, one thread each, loopback only; started from their own directory."""
    from distributed import LocalCluster

    worker_home = tmp_path_factory.mktemp("dask-worker-home")
    (worker_home / "tmp").mkdir()
    launcher_cwd = os.getcwd()
    # Worker processes inherit the working directory they are spawned from.
    os.chdir(worker_home)
    try:
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            local_directory=str(worker_home / "scratch"),
            env={"TMPDIR": str(worker_home / "tmp")},
        )
    finally:
        os.chdir(launcher_cwd)
    try:
        yield cluster.scheduler_address, worker_home
    finally:
        from distributed import Client

        # Beam's DaskRunner leaves its client open; close it before its cluster goes away.
        for client in list(Client._instances):
            client.close()
        cluster.close()


def _dask_args(address: str) -> list[str]:
    # Two partitions per Create, so both workers take part.
    return [f"--runner={DASK_RUNNER}", f"--dask_client_address={address}", "--dask_npartitions=2"]


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    """The launcher's own directory (its cwd during the runs) holding the demo dataset."""
    from disco.data.demo import generate_demo_dataset

    home = tmp_path_factory.mktemp("launcher")
    summary = generate_demo_dataset(home / "data", clips=12, seed=7, corrupt=1, workers=1)
    assert summary["corrupt"], summary
    return home


@pytest.fixture
def in_launcher(launcher, monkeypatch):
    monkeypatch.chdir(launcher)
    return launcher


def _records(directory: Path, prefix: str = params.RESAMPLED_PREFIX) -> dict:
    """Shard contents by (key, augmentation_id): every field, as comparable values."""
    from disco.records import decode_resampled, iter_tfrecord_bytes, list_shards

    out = {}
    for raw in iter_tfrecord_bytes(list_shards(str(directory), prefix)):
        rec = decode_resampled(raw)
        ident = (rec.key, int(rec.augmentation_id))
        assert ident not in out, f"record {ident} written twice"
        out[ident] = (rec.split, rec.pcm.tobytes(), rec.y_true.tolist(), rec.y_mask.tolist())
    return out


def _shard_names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(params.TFRECORD_SUFFIX))


def _no_leftovers(directory: Path) -> None:
    from disco.beam.sinks import PARTIAL_MARK

    left = [*directory.glob("beam-temp-*"), *directory.glob(f"*{PARTIAL_MARK}*")]
    assert not left, sorted(directory.iterdir())


def _worker_side_clean(worker_home: Path) -> None:
    """Nothing of ours in the workers' directory: a path the launcher meant relative to its own
    directory would have landed here. (TMPDIR is the workers' own scratch: libraries may use it.)"""
    assert sorted(p.name for p in worker_home.iterdir()) == ["scratch", "tmp"]
    assert not [p for p in (worker_home / "tmp").rglob("*") if "disco" in p.name or "audio-" in p.name]


@pytest.fixture(scope="module")
def resampled(launcher, dask_cluster):
    """resample on both runners, from the launcher's directory with relative paths."""
    from disco.beam.resample import run_resample

    address, _ = dask_cluster
    cwd = os.getcwd()
    os.chdir(launcher)
    try:
        local = run_resample("data", "resampled-local", batch_size=4)
        dask = run_resample("data", "resampled-dask", batch_size=4, beam_args=_dask_args(address))
    finally:
        os.chdir(cwd)
    return local, dask


def test_resample_on_dask_equals_fnapi(resampled, launcher, dask_cluster):
    local, dask = resampled
    a, b = launcher / "resampled-local", launcher / "resampled-dask"
    assert local.failed == 1 and local.ok == 11
    for field in ("clips", "ok", "failed", "splits", "shards", "failures"):
        assert getattr(dask, field) == getattr(local, field), field
    assert (b / params.FAILURES_FILE).read_text() == (a / params.FAILURES_FILE).read_text()
    assert _shard_names(b) == _shard_names(a)
    records = _records(b)
    assert len(records) == 11
    assert records == _records(a)
    # Clips are assigned to shards before the pipeline runs: the same shard files, byte for byte.
    for name in _shard_names(a):
        assert (b / name).read_bytes() == (a / name).read_bytes(), name
    _no_leftovers(b)
    _worker_side_clean(dask_cluster[1])


def test_augment_on_dask_equals_fnapi(resampled, in_launcher, dask_cluster):
    from disco.beam.augment import run_augment

    address, worker_home = dask_cluster
    kwargs = dict(copies=1, mixup=1, seed=3)
    local = run_augment("resampled-local", "augmented-local", **kwargs)
    dask = run_augment("resampled-local", "augmented-dask", beam_args=_dask_args(address), **kwargs)
    assert dask.records == local.records == 2 * resampled[0].splits[params.SPLIT_TRAIN]
    a, b = in_launcher / "augmented-local", in_launcher / "augmented-dask"
    assert _records(b) == _records(a)
    _no_leftovers(b)
    _worker_side_clean(worker_home)


def _with_bad_record(src: Path, dst: Path) -> None:
    """A copy of a resampled output plus one shard holding one record no embedder can take."""
    import shutil

    from disco.records import AtomicShardWriter, shard_name

    shutil.copytree(src, dst)
    # The extra shard is not in the copied manifest; without one, readers take complete shard sets.
    (dst / params.MANIFEST_FILE).unlink()
    with AtomicShardWriter(dst / shard_name(f"{params.RESAMPLED_PREFIX}-{params.SPLIT_TEST}-bad", 0, 1)) as w:
        w.write(b"not a tf.train.Example")


def test_embed_on_dask_equals_fnapi(resampled, in_launcher, dask_cluster):
    from disco.beam.embed import run_embed
    from disco.records import iter_embeddings

    address, worker_home = dask_cluster
    _with_bad_record(in_launcher / "resampled-local", in_launcher / "with-bad")
    local = run_embed(["with-bad"], "embedded-local", embedder="musicnn", precision="float32")
    dask = run_embed(
        ["with-bad"], "embedded-dask", embedder="musicnn", precision="float32", beam_args=_dask_args(address)
    )
    for field in ("records", "splits", "failed", "shards"):
        assert getattr(dask, field) == getattr(local, field), field
    assert local.failed == 1 and local.records == 11
    strip = [{k: v for k, v in f.items() if k != "reason"} for f in dask.failures]
    assert strip == [{k: v for k, v in f.items() if k != "reason"} for f in local.failures]
    assert dask.failures[0]["shard"] == str(in_launcher / "with-bad" / os.path.basename(strip[0]["shard"]))

    def by_key(directory):
        return {(r.key, r.augmentation_id): r for r in iter_embeddings([str(in_launcher / directory)])}

    a, b = by_key("embedded-local"), by_key("embedded-dask")
    assert sorted(a) == sorted(b) and len(a) == 11
    for ident, rec in a.items():
        other = b[ident]
        assert (other.split, other.y_true.tolist(), other.y_mask.tolist()) == (
            rec.split,
            rec.y_true.tolist(),
            rec.y_mask.tolist(),
        )
        # Batches are cut differently on the two runners; float32 sums may differ in the last bits.
        np.testing.assert_allclose(other.embedding, rec.embedding, rtol=1e-4, atol=1e-5)
    _no_leftovers(in_launcher / "embedded-dask")
    _worker_side_clean(worker_home)
    assert json.loads((in_launcher / "embedded-dask" / params.SUMMARY_FILE).read_text())["records"] == 11
