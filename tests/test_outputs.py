"""Outputs are whole or absent (issue #13): stale, missing and duplicated shards, all-failed and
too-many-failed steps, crashed steps, full and read-only disks, folders with ``[``/``]``, two runs
into one folder, and a cache that knows the data.

Each failure case checks what a user sees: the exit code, one line on stderr naming the path and
the reason, no traceback, and nothing published."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers.gcs_emulator import gcs_emulator  # noqa: F401  (pytest fixture)
from helpers.resample_fixtures import clip_key, encode, tone, write_dataset

from disco import params
from disco.errors import ConfigError, DiscoError, OutputError
from disco.publish import publishes
from disco.records import count_records, iter_resampled, list_shards
from disco.results import StepResult

SEED = 7
CLIPS = 8


def _audio(n: int, *, bad: set[int] = frozenset()) -> dict[str, bytes]:
    good = encode(tone(440, 16000, 1.0), 16000, fmt="WAV", subtype="PCM_16")
    return {clip_key(i): (b"not audio at all" if i in bad else good) for i in range(n)}


def _dataset(root: Path, audio: dict[str, bytes], sample: Path) -> Path:
    write_dataset(root, audio, test_keys=set(sorted(audio)[::3]), sample=sample, seed=SEED)
    return root


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    from disco.cli import main

    rc = main(argv)
    return rc, capsys.readouterr().err


def _one_line_error(err: str, command: str, *needles: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"disco {command}: error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _published_whole(out: Path, prefix: str) -> dict[str, int]:
    """The output's manifest agrees with its files (names, counts, sizes, SHA-256); returns the
    records per shard."""
    manifest = json.loads((out / params.MANIFEST_FILE).read_text())
    on_disk = sorted(p.name for p in out.glob(f"{prefix}-*{params.TFRECORD_SUFFIX}"))
    assert [s["name"] for s in manifest["shards"]] == on_disk
    counts = {}
    for shard in manifest["shards"]:
        path = out / shard["name"]
        assert shard["bytes"] == path.stat().st_size
        assert shard["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert shard["records"] == count_records(str(path))
        counts[shard["name"]] = shard["records"]
    assert not list(out.parent.glob(f".{out.name}.staging-*")), "a staging folder was left behind"
    return counts


@pytest.fixture(scope="module")
def data(tmp_path_factory, openmic_sample) -> Path:
    return _dataset(tmp_path_factory.mktemp("outputs") / "openmic-2018", _audio(CLIPS), openmic_sample)


@pytest.fixture(scope="module")
def resampled(data, tmp_path_factory) -> Path:
    from disco.beam.resample import run_resample

    out = tmp_path_factory.mktemp("published") / "resampled"
    run_resample(str(data), str(out), seed=SEED, num_shards=2, threads=2)
    return out


# --- stale shards (#13 item 1) -------------------------------------------------------------------


def test_a_rerun_with_fewer_shards_or_no_validation_leaves_no_stale_shard(data, tmp_path):
    from disco.beam.resample import run_resample

    out = tmp_path / "rs"
    first = run_resample(str(data), str(out), seed=SEED, num_shards=2, threads=2)
    assert first.splits[params.SPLIT_VALIDATION] > 0
    second = run_resample(str(data), str(out), seed=SEED, num_shards=1, validation_fraction=0.0, threads=2)
    counts = _published_whole(out, params.RESAMPLED_PREFIX)
    assert sorted(counts) == [
        f"{params.RESAMPLED_PREFIX}-{s}-00000-of-00001{params.TFRECORD_SUFFIX}"
        for s in (params.SPLIT_TEST, params.SPLIT_TRAIN)
    ]
    keys = [r.key for r in iter_resampled([str(out)])]
    assert len(keys) == len(set(keys)) == second.ok == CLIPS
    assert {r.split for r in iter_resampled([str(out)])} == {params.SPLIT_TRAIN, params.SPLIT_TEST}


# --- readers verify the manifest (#13 item 3) -------------------------------------------------------


def _delete_a_shard(out: Path) -> str:
    victim = sorted(out.glob(f"{params.RESAMPLED_PREFIX}-{params.SPLIT_TRAIN}-*"))[1]
    victim.unlink()
    return victim.name


def _add_a_stale_shard(out: Path) -> str:
    src = sorted(out.glob(f"{params.RESAMPLED_PREFIX}-{params.SPLIT_TRAIN}-*"))[0]
    stale = out / f"{params.RESAMPLED_PREFIX}-{params.SPLIT_TRAIN}-00000-of-00001{params.TFRECORD_SUFFIX}"
    shutil.copy(src, stale)
    return stale.name


def _truncate_a_shard(out: Path) -> str:
    victim = sorted(out.glob(f"{params.RESAMPLED_PREFIX}-{params.SPLIT_TEST}-*"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    return victim.name


@pytest.mark.parametrize(
    "damage, reason",
    [
        (_delete_a_shard, "missing"),
        (_add_a_stale_shard, f"not in {params.MANIFEST_FILE}"),
        (_truncate_a_shard, "bytes"),
    ],
    ids=["missing", "stale", "truncated"],
)
def test_embed_refuses_a_damaged_input_naming_the_shard(resampled, tmp_path, capsys, damage, reason):
    src = tmp_path / "resampled"
    shutil.copytree(resampled, src)
    name = damage(src)
    out = tmp_path / "embeddings"
    rc, err = _cli(["embed", str(src), "--out", str(out)], capsys)
    assert rc == 2
    _one_line_error(err, "embed", str(src / name), reason)
    assert not out.exists() and not list(tmp_path.glob(".embeddings.*"))


def test_without_a_manifest_the_shard_names_still_catch_a_missing_or_mixed_set(resampled, tmp_path):
    src = tmp_path / "legacy"
    shutil.copytree(resampled, src)
    (src / params.MANIFEST_FILE).unlink()
    assert len(list_shards(src, params.RESAMPLED_PREFIX)) == 6
    _add_a_stale_shard(src)
    with pytest.raises(OutputError, match="shards of two runs"):
        list_shards(src, params.RESAMPLED_PREFIX)
    for stale in src.glob("*-of-00001*"):
        stale.unlink()
    name = _delete_a_shard(src)
    with pytest.raises(OutputError, match=f"{name}: missing"):
        list_shards(src, params.RESAMPLED_PREFIX)


def test_the_same_input_twice_is_refused(resampled, tmp_path):
    out = tmp_path / "e"
    proc = subprocess.run(
        [sys.executable, "-m", "disco", "embed", str(resampled), f"{resampled}/", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    _one_line_error(proc.stderr, "embed", str(resampled), "given twice")
    assert not out.exists()


# --- all failed / too many failed (#13 item 4) --------------------------------------------------------


@pytest.mark.parametrize(
    "bad, extra, reason",
    [
        (set(range(6)), [], "nothing to publish"),
        ({0, 1}, ["--max-failure-ratio", "0.25"], "more than --max-failure-ratio 0.25"),
    ],
    ids=["all-failed", "over-ratio"],
)
def test_a_step_that_failed_too_often_exits_non_zero_and_publishes_nothing(
    tmp_path, capsys, openmic_sample, bad, extra, reason
):
    data = _dataset(tmp_path / "openmic-2018", _audio(6, bad=bad), openmic_sample)
    out = tmp_path / "rs"
    rc, err = _cli(["resample", str(data), "--out", str(out), "--threads", "2", *extra], capsys)
    assert rc == 2
    line = _one_line_error(err, "resample", str(out), reason)
    assert "first: " in line and ".ogg" in line  # an example of why, naming the clip
    assert not out.exists() and not list(tmp_path.glob(".rs.*"))


def test_under_the_ratio_the_failures_are_dead_lettered_and_the_rest_published(tmp_path, openmic_sample):
    from disco.beam.resample import run_resample

    data = _dataset(tmp_path / "openmic-2018", _audio(6, bad={0}), openmic_sample)
    s = run_resample(str(data), str(tmp_path / "rs"), threads=2, max_failure_ratio=0.25)
    assert (s.ok, s.failed) == (5, 1)
    assert sum(_published_whole(tmp_path / "rs", params.RESAMPLED_PREFIX).values()) == 5


# --- a step that crashes publishes nothing and keeps the previous output (#13 item 6) -------------------


@dataclass
class Written(StepResult):
    step = "demo"
    files: int = 0

    def produced(self) -> int:
        return self.files

    def summary_line(self) -> str:
        return f"demo: {self.files} files"


@publishes("demo")
def _step(out_dir: str, *, crash: bool) -> Written:
    Path(out_dir, "model.keras").write_text("crash" if crash else "whole")
    if crash:
        raise DiscoError("epoch 3: the step fell over")
    return Written(files=1)


def test_a_crashed_step_leaves_the_previous_output_untouched(tmp_path):
    out = tmp_path / "model"
    _step(str(out), crash=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"model.keras", params.SUMMARY_FILE, params.RUN_INFO_FILE, params.MANIFEST_FILE}
    with pytest.raises(DiscoError, match="fell over"):
        _step(str(out), crash=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(os.listdir(tmp_path)) == ["model"]


# --- --out never replaces an input or a folder that is no disco output -------------------------------


@publishes("demo")
def _copy_step(src_dir: str, out_dir: str, *, fill: str | None = None) -> Written:
    Path(out_dir, "copy.txt").write_text(Path(src_dir, "in.txt").read_text())
    if fill:  # something else writes into the output folder while the step runs
        Path(fill).mkdir(parents=True, exist_ok=True)
        Path(fill, "my_notes.txt").write_text("precious")
    return Written(files=1)


def _work(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "work"
    src = work / "resampled"
    src.mkdir(parents=True)
    (src / "in.txt").write_text("input")
    (work / "my_notes.txt").write_text("precious")
    (tmp_path / "link").symlink_to(work)
    return work, src


@pytest.mark.parametrize(
    "out, reason",
    [
        ("work", "contains the input"),
        ("link", "contains the input"),  # the same folder through a symlink
        ("work/resampled", "also an input"),
        ("work/resampled/", "also an input"),
    ],
)
def test_an_out_folder_that_is_or_holds_an_input_is_refused_before_the_step_runs(tmp_path, out, reason):

    work, src = _work(tmp_path)
    with pytest.raises(ConfigError, match=reason) as raised:
        _copy_step(str(src), str(tmp_path / out))
    assert str(tmp_path / out).rstrip("/") in str(raised.value) and "\n" not in str(raised.value)
    assert (src / "in.txt").read_text() == "input" and (work / "my_notes.txt").read_text() == "precious"
    assert not list(tmp_path.rglob(".*.staging-*")), "the step ran"


def test_remote_inputs_are_compared_by_prefix():
    from disco.errors import ConfigError
    from disco.publish import check_out_not_above_inputs

    with pytest.raises(ConfigError, match="gs://b/work: the output folder contains the input gs://b/work/r"):
        check_out_not_above_inputs("gs://b/work", ["gs://b/work/r/"])
    with pytest.raises(ConfigError, match="also an input"):
        check_out_not_above_inputs("gs://b/work", ["gs://b/work/"])
    check_out_not_above_inputs("gs://b/work", ["gs://b/work-old/r", "gs://b/wor", "/work/r"])


def test_a_folder_that_is_no_disco_output_is_not_replaced(tmp_path):
    from disco.errors import ConfigError

    work, src = _work(tmp_path)
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("mine")
    with pytest.raises(
        ConfigError, match=f"{out}: not empty and not a disco output \\(no {params.MANIFEST_FILE}\\)"
    ):
        _copy_step(str(src), str(out))
    assert os.listdir(out) == ["todo.txt"]

    # Filled while the step ran: refused at publish, before anything is deleted.
    late = tmp_path / "late"
    with pytest.raises(ConfigError, match=f"{late}: not empty and not a disco output"):
        _copy_step(str(src), str(late), fill=str(late))
    assert os.listdir(late) == ["my_notes.txt"]
    assert not list(tmp_path.glob(".late.*")), "a staging folder was left behind"

    # An empty folder is published into, and a disco output is replaced by a rerun.
    empty = tmp_path / "empty"
    empty.mkdir()
    for _ in range(2):
        _copy_step(str(src), str(empty))
        assert (empty / "copy.txt").read_text() == "input" and (empty / params.MANIFEST_FILE).is_file()
    assert (src / "in.txt").read_text() == "input" and (work / "my_notes.txt").read_text() == "precious"

    # A write probe whose delete failed (disco.remote's preflight of a gs:// output) is no one's
    # output: the folder it is left in is still published into, not refused forever.
    probed = tmp_path / "probed"
    probed.mkdir()
    (probed / f"{params.WRITE_PROBE_NAME}-0123abcd").write_bytes(b"")
    _copy_step(str(src), str(probed))
    assert (probed / "copy.txt").read_text() == "input"


# --- an interrupted in-place publish (--out a mount point) is refused by readers ----------------------


def _stage_resampled(out: Path):
    from disco.publish import Staging
    from disco.records import frame_tfrecord
    from disco.results import ResampleResult

    stage = Staging(out, step="resample")
    for split in (params.SPLIT_TEST, params.SPLIT_TRAIN, params.SPLIT_VALIDATION):
        name = f"{params.RESAMPLED_PREFIX}-{split}-00000-of-00001{params.TFRECORD_SUFFIX}"
        Path(stage.path, name).write_bytes(frame_tfrecord(b"rec"))
    ResampleResult(ok=3).write(stage.path)
    stage.write_manifest({})
    return stage


def test_an_interrupted_in_place_publish_is_refused_and_a_rerun_completes(tmp_path, monkeypatch):
    from disco.publish import IN_PROGRESS_FILE

    out = tmp_path / "resampled"
    _stage_resampled(out)._publish_in_place()  # how _swap publishes onto a mount point
    assert len(list_shards(out, params.RESAMPLED_PREFIX)) == 3
    assert not (out / IN_PROGRESS_FILE).exists()

    # Killed after one file of the new output was moved in: the old manifest is gone already.
    real_move, moved = shutil.move, []

    def move_then_die(src, dst):
        if moved:
            raise KeyboardInterrupt("killed mid-publish")
        moved.append(src)
        return real_move(src, dst)

    stage = _stage_resampled(out)
    monkeypatch.setattr(shutil, "move", move_then_die)
    with pytest.raises(KeyboardInterrupt):
        stage._publish_in_place()
    monkeypatch.setattr(shutil, "move", real_move)
    assert not (out / params.MANIFEST_FILE).exists() and (out / IN_PROGRESS_FILE).exists()
    with pytest.raises(
        OutputError, match=f"{out}: incomplete output: a publish was interrupted; rerun the step"
    ):
        list_shards(out, params.RESAMPLED_PREFIX)

    # Every reader refuses it, not only the shard reader: the summary there may be the new one
    # beside old shards (or a model directory's model.keras beside old thresholds).
    from disco.results import ResampleResult
    from disco.train.train import load_classifier

    for read in (lambda: ResampleResult.read(out), lambda: load_classifier(str(out))):
        with pytest.raises(OutputError, match="a publish was interrupted"):
            read()

    _stage_resampled(out)._publish_in_place()  # the rerun may replace it, and clears the mark
    assert not (out / IN_PROGRESS_FILE).exists()
    assert len(list_shards(out, params.RESAMPLED_PREFIX)) == 3


@publishes("demo")
def _remote_step(out_dir: str, *, shards: list[bytes], crash: bool = False) -> Written:
    from apache_beam.io.filesystems import FileSystems

    for i, data in enumerate(shards):
        name = f"{params.RESAMPLED_PREFIX}-train-{i:05d}-of-{len(shards):05d}{params.TFRECORD_SUFFIX}"
        with FileSystems.create(f"{out_dir}/{name}") as fh:
            fh.write(data)
    if crash:
        raise DiscoError("the step fell over")
    return Written(files=len(shards))


@pytest.mark.slow
def test_on_an_object_store_the_manifest_is_the_commit_point(gcs_emulator, monkeypatch):  # noqa: F811
    import tempfile

    import tensorflow as tf

    monkeypatch.setenv("NO_GCE_CHECK", "True")
    bucket = "disco-outputs-test"
    gcs_emulator.make_bucket(bucket)
    out = f"gs://{bucket}/run/r"
    with tempfile.NamedTemporaryFile(suffix=params.TFRECORD_SUFFIX) as tmp:
        with tf.io.TFRecordWriter(tmp.name) as w:
            w.write(b"one record")
        shard = Path(tmp.name).read_bytes()

    objects = gcs_emulator.client.bucket(bucket)

    def names() -> set[str]:
        return {b.name[len("run/r/") :] for b in objects.list_blobs(prefix="run/r/")}

    # Publishing writes the side files first and the manifest, the commit point, last: one
    # interrupted between them leaves a summary its manifest does not know (refused on reading).
    from disco import publish

    write_text, written = publish.fileio.write_text, []

    def spy(path, text):
        written.append(str(path))
        write_text(path, text)

    monkeypatch.setattr(publish.fileio, "write_text", spy)
    _remote_step(out, shards=[shard, shard])
    monkeypatch.setattr(publish.fileio, "write_text", write_text)
    to_out = [p[len(out) + 1 :] for p in written if p.startswith(f"{out}/") and "/.staging-" not in p]
    assert to_out[-1] == params.MANIFEST_FILE and {params.SUMMARY_FILE, params.RUN_INFO_FILE} <= set(to_out)
    first = list_shards(out, params.RESAMPLED_PREFIX)
    assert len(first) == 2 and all("/.staging-" in p for p in first)  # under the run's own prefix
    assert {params.MANIFEST_FILE, params.SUMMARY_FILE, params.RUN_INFO_FILE} <= names()
    _remote_step(out, shards=[shard])  # a rerun with fewer shards: the old ones are deleted after the commit
    second = list_shards(out, params.RESAMPLED_PREFIX)
    assert [p.rsplit("/", 1)[1] for p in second] == [
        f"{params.RESAMPLED_PREFIX}-train-00000-of-00001{params.TFRECORD_SUFFIX}"
    ]
    assert not {n for n in names() if n.endswith(params.TFRECORD_SUFFIX)} - {
        p[len(out) + 1 :] for p in second
    }

    with pytest.raises(DiscoError, match="fell over"):
        _remote_step(out, shards=[shard, shard, shard], crash=True)
    assert list_shards(out, params.RESAMPLED_PREFIX) == second  # the previous output still stands
    assert not {n for n in names() if n.endswith(params.TFRECORD_SUFFIX)} - {
        p[len(out) + 1 :] for p in second
    }

    stale = f"{params.RESAMPLED_PREFIX}-train-00000-of-00003{params.TFRECORD_SUFFIX}"
    objects.blob(f"run/r/{stale}").upload_from_string(shard)
    with pytest.raises(OutputError, match=f"{stale}: not in {params.MANIFEST_FILE}"):
        list_shards(out, params.RESAMPLED_PREFIX)
    objects.blob(f"run/r/{stale}").delete()
    second_name = second[0][len(out) + 1 :]
    objects.blob(f"run/r/{second_name}").delete()
    with pytest.raises(OutputError, match="missing"):
        list_shards(out, params.RESAMPLED_PREFIX)

    # A prefix holding files that are no disco output is refused before the step runs, as a local
    # folder is, and none of them is deleted (a user's own shard-named files included).
    theirs = {"README.txt": b"mine", "train-00000-of-00004.tfrecord": shard}
    for name, data in theirs.items():
        objects.blob(f"run/theirs/{name}").upload_from_string(data)
    with pytest.raises(ConfigError, match=f"gs://{bucket}/run/theirs: not empty and not a disco output"):
        _remote_step(f"gs://{bucket}/run/theirs", shards=[shard])
    assert {b.name for b in objects.list_blobs(prefix="run/theirs/")} == {f"run/theirs/{n}" for n in theirs}


def test_a_summary_that_is_not_the_manifests_is_refused(tmp_path):
    """What an object-store publish interrupted between its side files and its manifest leaves (a
    new summary beside the old manifest), or another run's summary copied in: reading it fails."""
    out = tmp_path / "out"
    _step(str(out), crash=False)
    assert Written.read(out).files == 1
    (out / params.SUMMARY_FILE).write_text(Written(files=3).to_json())
    with pytest.raises(OutputError, match=f"{params.SUMMARY_FILE}: not the file {params.MANIFEST_FILE} was"):
        Written.read(out)


def test_a_summary_of_another_step_or_of_no_step_is_refused(tmp_path):
    """Every result field has a default, so any JSON object would otherwise read as a result."""
    from disco.results import TrainResult

    out = tmp_path / "out"
    out.mkdir()
    summary = out / params.SUMMARY_FILE
    summary.write_text(json.dumps({"preset": "default", "val_mAP": 0.5}))
    with pytest.raises(
        OutputError, match=f"{summary}: no 'step' field; not the summary of a disco train step"
    ):
        TrainResult.read(out)
    summary.write_text(Written(files=1).to_json())
    with pytest.raises(OutputError, match="the summary of a 'demo' step, expected 'train'"):
        TrainResult.read(out)
    summary.write_text(json.dumps({"step": "train", "preset": "default", "val_mAP": 0.5}))
    assert TrainResult.read(out).val_mAP == 0.5


def test_an_empty_output_is_never_published(tmp_path):
    from disco.beam.augment import run_augment
    from disco.errors import StepFailedError

    # A resample output with a train split of 0 records: augment would publish an empty output.
    src = tmp_path / "rs"
    src.mkdir()
    (
        src / f"{params.RESAMPLED_PREFIX}-{params.SPLIT_TRAIN}-00000-of-00001{params.TFRECORD_SUFFIX}"
    ).write_bytes(b"")
    with pytest.raises(StepFailedError, match="nothing to publish"):
        run_augment(str(src), str(tmp_path / "aug"), copies=1)
    assert not (tmp_path / "aug").exists()


@dataclass
class Counted(StepResult):
    step = "demo"
    records: int = 0

    def produced(self) -> int:
        return self.records

    def shard_records(self) -> int | None:
        return self.records

    def summary_line(self) -> str:
        return f"demo: {self.records} records"


@publishes("demo")
def _counting_step(out_dir: str, *, written: int, counted: int) -> Counted:
    from disco.beam.sinks import ShardFile
    from disco.records import ResampledRecord, encode_resampled

    shard = ShardFile(
        os.path.join(out_dir, f"{params.RESAMPLED_PREFIX}-train-00000-of-00001{params.TFRECORD_SUFFIX}")
    )
    for i in range(written):
        pcm = np.zeros(params.CLIP_SAMPLES, np.int16)
        shard.write(encode_resampled(ResampledRecord(f"00000{i}_0", params.SPLIT_TRAIN, pcm, 10.0)))
    shard.close()
    return Counted(records=counted)


def test_shards_holding_fewer_records_than_the_step_counted_are_not_published(tmp_path):
    """A shard lost, truncated or overwritten after its records were counted (as resample's shard
    completion once overwrote written shards with empty ones) fails the step: nothing published."""
    from disco.errors import StepFailedError

    with pytest.raises(StepFailedError, match="hold 2 records where it counted 3"):
        _counting_step(str(tmp_path / "out"), written=2, counted=3)
    assert not (tmp_path / "out").exists()
    _counting_step(str(tmp_path / "out"), written=3, counted=3)
    assert count_records(list_shards(tmp_path / "out", params.RESAMPLED_PREFIX)[0]) == 3


# --- disk full, read-only (#13 item 10) --------------------------------------------------------------


def _mount(args: list[str], target: Path) -> None:
    proc = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount here ({proc.stderr.strip() or proc.returncode}); CI runs as root")


def _umount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], check=False)


def test_a_full_disk_is_one_line_and_leaves_no_temp(data, tmp_path, capsys):
    small = tmp_path / "small"
    small.mkdir()
    # 8 clips of 10 s at 16 kHz are 2.5 MB of PCM: a 1 MB filesystem fills mid-write.
    _mount(["-t", "tmpfs", "-o", "size=1m", "tmpfs"], small)
    try:
        out = small / "rs"
        rc, err = _cli(["resample", str(data), "--out", str(out), "--threads", "2"], capsys)
        assert rc == 2
        _one_line_error(err, "resample", str(out), "No space left on device")
        assert os.listdir(small) == []  # no output, no staging, no beam-temp
    finally:
        _umount(small)


def test_a_read_only_output_folder_is_one_line(data, tmp_path, capsys):
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    _mount(["--bind", "-o", "ro", str(src)], ro)
    try:
        out = ro / "rs"
        rc, err = _cli(["resample", str(data), "--out", str(out)], capsys)
        assert rc == 2
        _one_line_error(err, "resample", str(out), "Read-only file system")
        assert os.listdir(src) == []
    finally:
        _umount(ro)


# --- folders named with [ ] (#13 item 12) ---------------------------------------------------------------


def test_brackets_in_folder_names_are_literal(data, tmp_path):
    from disco.beam.resample import run_resample
    from disco.train.features import load_features

    root = tmp_path / "exp[1]"
    out = root / "r"
    s = run_resample(str(data), str(out), seed=SEED, threads=2)
    assert len(list_shards(out, params.RESAMPLED_PREFIX)) == 3
    assert sum(1 for _ in iter_resampled([str(out)])) == s.ok == CLIPS
    # The embed step's reader and train's feature lookup take the same path.
    from disco.beam.embed import _input_files

    assert len(_input_files([str(out)])) == 3
    with pytest.raises(DiscoError, match="no features found"):
        load_features(str(out))  # resampled audio is not features: found the folder, rejected it


# --- two runs into one --out (#13 item 13) -------------------------------------------------------------


@pytest.mark.slow
def test_two_concurrent_runs_into_one_folder_each_publish_whole(data, tmp_path):
    out = tmp_path / "rs"
    cmd = [sys.executable, "-m", "disco", "resample", str(data), "--out", str(out), "--threads", "1"]
    procs = [
        subprocess.Popen([*cmd, "--num-shards", str(n)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for n in (1, 2)
    ]
    errs = [p.communicate(timeout=300)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    counts = _published_whole(out, params.RESAMPLED_PREFIX)
    assert len({n.rsplit("-of-", 1)[1] for n in counts}) == 1  # one run's shards, not a mix
    keys = [r.key for r in iter_resampled([str(out)])]
    assert len(keys) == len(set(keys)) == CLIPS
    assert sorted(os.listdir(tmp_path)) == ["rs"]


# --- the cache knows the data (#13 item 2) ---------------------------------------------------------------


def test_the_fingerprint_follows_the_content(tmp_path):
    from disco.data.demo import generate_demo_dataset
    from disco.data.fingerprint import dataset_fingerprint

    data = tmp_path / "openmic-2018"
    generate_demo_dataset(data, clips=8, seed=1, workers=2)
    first = dataset_fingerprint(data)
    assert dataset_fingerprint(str(data) + "/") == first  # pure: same files, same fingerprint
    shutil.rmtree(data)
    generate_demo_dataset(data, clips=8, seed=2, workers=2)
    second = dataset_fingerprint(data)
    assert second != first
    # Audio kept elsewhere behind a linked folder (read through the link) counts too, and a loop
    # of links ends.
    (tmp_path / "elsewhere").mkdir()
    shutil.move(str(data / "audio"), str(tmp_path / "elsewhere" / "audio"))
    (data / "audio").symlink_to(tmp_path / "elsewhere" / "audio")
    (tmp_path / "elsewhere" / "audio" / "loop").symlink_to(tmp_path / "elsewhere" / "audio")
    linked = dataset_fingerprint(data)
    clip = next((tmp_path / "elsewhere" / "audio").rglob("*.ogg"))
    clip.write_bytes(clip.read_bytes() + b"\0")
    assert dataset_fingerprint(data) != linked


@pytest.mark.slow
def test_disco_run_reruns_when_the_dataset_changes_at_the_same_path(tmp_path):
    from disco.data.demo import generate_demo_dataset
    from disco.runner import run_local

    data = tmp_path / "openmic-2018"
    kwargs = dict(augment_copies=0, epochs=1, patience=1, batch_size=8, cache_dir=tmp_path / "cache")
    generate_demo_dataset(data, clips=24, seed=1, workers=2)
    first = run_local(str(data), tmp_path / "first", **kwargs)
    again = run_local(str(data), tmp_path / "again", **kwargs)
    assert any(t.startswith("resample-audio") for t in again.cached_tasks)  # the cache works...
    shutil.rmtree(data)
    generate_demo_dataset(data, clips=24, seed=2, workers=2)
    changed = run_local(str(data), tmp_path / "changed", **kwargs)
    assert changed.cached_tasks == []  # ...and a new dataset at the same path re-runs every step
    assert first.parameters["data_fingerprint"] != changed.parameters["data_fingerprint"]


# --- Beam transforms in Beam's style ---------------------------------------------------------------------


def test_decode_dead_letters_are_tagged_and_split_writes_per_split(tmp_path):
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from disco.beam.embed import ReadBatches
    from disco.beam.sinks import FAILED_TAG, OK_TAG, WriteSplits
    from disco.records import AtomicShardWriter, ResampledRecord, encode_resampled

    good = encode_resampled(
        ResampledRecord(
            key="k1", split="test", pcm=np.zeros(params.CLIP_SAMPLES, np.int16), original_duration=1.0
        )
    )
    shard = tmp_path / "in" / "s0.tfrecord"
    shard.parent.mkdir()
    with AtomicShardWriter(shard) as w:
        w.write(good)
        w.write(b"\x00junk")
    with TestPipeline() as p:
        decoded = (
            p
            | beam.Create([str(shard)])
            | beam.ParDo(ReadBatches(batch_size=4)).with_outputs(FAILED_TAG, main=OK_TAG)
        )
        assert_that(
            decoded[OK_TAG] | "Keys" >> beam.Map(lambda b: [x[1][0] for x in b]),
            equal_to([["k1"]]),
            label="ok",
        )
        assert_that(
            decoded[FAILED_TAG] | "Where" >> beam.Map(lambda f: (f["shard"], f["key"])),
            equal_to([(str(shard), None)]),
            label="failed",
        )
        (
            p
            | "Records" >> beam.Create([("train", b"a"), ("test", b"b"), ("train", b"c")])
            | WriteSplits(str(tmp_path), "x", {"train": 2, "test": 1})
        )
    names = sorted(n for n in os.listdir(tmp_path) if n != "in")
    assert names == [
        f"x-test-00000-of-00001{params.TFRECORD_SUFFIX}",
        f"x-train-00000-of-00002{params.TFRECORD_SUFFIX}",
        f"x-train-00001-of-00002{params.TFRECORD_SUFFIX}",
    ]
    assert sum(count_records(str(tmp_path / n)) for n in names if "-train-" in n) == 2


def test_a_step_runs_on_an_injected_test_pipeline(data, tmp_path):
    from apache_beam.testing.test_pipeline import TestPipeline

    from disco.beam.resample import run_resample

    s = run_resample(str(data), str(tmp_path / "rs"), seed=SEED, threads=2, test_pipeline=TestPipeline())
    assert s.ok == CLIPS and sum(_published_whole(tmp_path / "rs", params.RESAMPLED_PREFIX).values()) == CLIPS
