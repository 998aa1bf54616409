"""Bad inputs and a hostile environment, tried through the real `disco` command (issue #13).

One row per fault: the command, the exit code it must end with, the path and the reason its
one-line message must name, no "Traceback" on stderr, and nothing published under the output.
Rows that need TensorFlow or Beam are marked slow. docs/reliability.md ("Faults tried") lists the
same cases with their outcome.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers.gcs_emulator import start_gcs_emulator

from disco import params


@dataclass(frozen=True)
class Fault:
    name: str
    argv: tuple[str, ...]  # after `disco`; {placeholders} come from make()
    rc: int
    path: str  # must appear in stderr (a placeholder or a literal); "" for none
    reason: str  # regex searched in stderr (or stdout, for dead letters reported on success)
    make: Callable[[Path], dict[str, str]] = lambda tmp: {}
    out: str | None = "{out}"  # must hold no file afterwards (None: not checked)
    env: Callable[[Path], dict[str, str]] | None = None  # entries set in the environment ("" removes one)
    slow: bool = False
    seconds: float | None = None  # the command must fail within this many seconds


def _run(
    argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600
):
    return subprocess.run(
        [sys.executable, "-m", "disco", "-q", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


# --- inputs ---------------------------------------------------------------------------------------
def _sample_copy(tmp: Path, shared: Path) -> Path:
    root = tmp / "openmic-2018"
    shutil.copytree(shared / "data" / "openmic-2018-sample", root)
    return root


def _shared() -> Path:
    from conftest import SHARED

    return SHARED


def _class_map_not_json(tmp: Path) -> dict[str, str]:
    root = _sample_copy(tmp, _shared())
    (root / params.CLASS_MAP_FILE).write_text('{"accordion": 0,\n')
    return {"data": str(root), "file": str(root / params.CLASS_MAP_FILE)}


def _class_map_reassigned(tmp: Path) -> dict[str, str]:
    root = _sample_copy(tmp, _shared())
    mapping = dict(params.CLASS_INDEX)
    mapping["banjo"], mapping["bass"] = mapping["bass"], mapping["banjo"]
    (root / params.CLASS_MAP_FILE).write_text(json.dumps(mapping))
    return {"data": str(root), "file": str(root / params.CLASS_MAP_FILE)}


def _csvs_with_bom(tmp: Path) -> dict[str, str]:
    root = _sample_copy(tmp, _shared())
    for rel in (params.AGGREGATED_LABELS_FILE, f"{params.PARTITIONS_DIR}/{params.PARTITION_TRAIN_FILE}"):
        path = root / rel
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    return {"data": str(root)}


def _existing_file(tmp: Path) -> dict[str, str]:
    f = tmp / "taken"
    f.write_text("not a folder")
    return {"file": str(f)}


def _non_empty_dir(tmp: Path) -> dict[str, str]:
    d = tmp / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    return {"dir": str(d)}


def _release_npz(tmp: Path, mutate: Callable[[dict], None]) -> dict[str, str]:
    src = _shared() / "data" / "audioset-music20-dev"
    root = tmp / "release"
    shutil.copytree(src, root, ignore=shutil.ignore_patterns(params.NPZ_FILE))
    with np.load(src / params.NPZ_FILE) as z:
        arrays = {k: z[k] for k in z.files}
    mutate(arrays)
    np.savez(root / params.NPZ_FILE, **arrays)
    return {"data": str(root), "file": str(root / params.NPZ_FILE), "out": str(tmp / "model")}


def _x(transform: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], dict[str, str]]:
    def mutate(arrays: dict) -> None:
        arrays["X"] = transform(arrays["X"])

    return lambda tmp: _release_npz(tmp, mutate)


def _with_inf(X: np.ndarray) -> np.ndarray:
    X = X.astype(np.float32)
    X[3, 2, 5] = np.inf
    return X


def _thresholds_for_3_classes(tmp: Path) -> dict[str, str]:
    made = _release_npz(tmp, lambda arrays: None)
    model = tmp / "trained"
    model.mkdir()
    (model / "model.keras").write_bytes(b"")  # never loaded: the thresholds are checked first
    (model / "thresholds.json").write_text(json.dumps({"thresholds": [0.5, 0.5, 0.5]}))
    return {**made, "model": str(model), "file": str(model / "thresholds.json"), "out": str(tmp / "eval")}


def _write_shard(path: Path, records: list[bytes]) -> None:
    from disco.records import AtomicShardWriter

    with AtomicShardWriter(path) as w:
        for r in records:
            w.write(r)


def _flip_payload_byte(path: Path, record: int) -> None:
    """Flip one byte inside the payload of record ``record`` (not its length header)."""
    data = bytearray(path.read_bytes())
    pos = 0
    for _ in range(record):
        pos += 12 + int.from_bytes(data[pos : pos + 8], "little") + 4
    data[pos + 12 + 40] ^= 0xFF
    path.write_bytes(bytes(data))


def _embedding_shard(tmp: Path, *, nan_at: int | None = None) -> tuple[Path, Path]:
    from disco.records import EmbeddingRecord, encode_embedding

    rng = np.random.default_rng(0)
    d = tmp / "features"
    d.mkdir()
    recs = []
    for i in range(12):
        emb = rng.normal(size=(4, 8)).astype(np.float32)
        if i == nan_at:
            emb[1, 2] = np.nan
        recs.append(
            encode_embedding(
                EmbeddingRecord(
                    key=f"{i:06d}_0",
                    split=params.SPLITS[i % 3],
                    embedding=emb,
                    y_true=np.ones(params.NUM_CLASSES, np.float32),
                    y_mask=np.ones(params.NUM_CLASSES, np.int64),
                    embedder="musicnn",
                    embedder_version="test",
                )
            )
        )
    shard = d / f"{params.EMBEDDING_PREFIX}-00000-of-00001{params.TFRECORD_SUFFIX}"
    _write_shard(shard, recs)
    return d, shard


def _corrupt_embedding_shard(tmp: Path) -> dict[str, str]:
    d, shard = _embedding_shard(tmp)
    _flip_payload_byte(shard, 5)
    return {"features": str(d), "file": str(shard), "out": str(tmp / "model")}


def _nan_embedding(tmp: Path) -> dict[str, str]:
    d, shard = _embedding_shard(tmp, nan_at=7)
    return {"features": str(d), "file": str(shard), "out": str(tmp / "model")}


def _corrupt_resampled_shard(tmp: Path) -> dict[str, str]:
    from disco.records import ResampledRecord, encode_resampled

    rng = np.random.default_rng(1)
    d = tmp / "resampled"
    d.mkdir()
    recs = [
        encode_resampled(
            ResampledRecord(
                key=f"{i:06d}_0",
                split=params.SPLIT_TRAIN,
                pcm=rng.integers(-3000, 3000, params.CLIP_SAMPLES).astype(np.int16),
                original_duration=params.CLIP_SECONDS,
                y_true=np.ones(params.NUM_CLASSES, np.float32),
                y_mask=np.ones(params.NUM_CLASSES, np.int64),
            )
        )
        for i in range(3)
    ]
    shard = d / f"{params.RESAMPLED_PREFIX}-train-00000-of-00001{params.TFRECORD_SUFFIX}"
    _write_shard(shard, recs)
    _flip_payload_byte(shard, 1)
    return {"audio": str(d), "file": str(shard), "out": str(tmp / "emb")}


def _no_credentials(tmp: Path) -> dict[str, str]:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    (tmp / "tmpdir").mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "CLOUDSDK_CONFIG": str(home / "gcloud"),
        "GOOGLE_APPLICATION_CREDENTIALS": "",
        "STORAGE_EMULATOR_HOST": "",
        "TMPDIR": str(tmp / "tmpdir"),
    }


def _fifo(tmp: Path) -> dict[str, str]:
    fifo = tmp / "checksums.csv"
    os.mkfifo(fifo)
    return {"data": str(_sample_copy(tmp, _shared())), "file": str(fifo)}


def _data_only(tmp: Path) -> dict[str, str]:
    return {"data": str(_sample_copy(tmp, _shared()))}


ARGS = [
    ("train", "--epochs", "0", "must be a positive integer"),
    ("train", "--dropout", "1.5", r"must be in \[0, 1\)"),
    ("train", "--batch-size", "0", "must be a positive integer"),
    ("train", "--learning-rate", "-0.5", r"must be a positive number"),
    ("train", "--l2", "-0.1", r"must be a non-negative number"),
    ("resample", "--threads", "-1", "must be a positive integer"),
    ("resample", "--num-shards", "-1", "must be a positive integer"),
    ("resample", "--validation-fraction", "1.5", r"must be in \[0, 1\)"),
    ("embed", "--batch-size", "0", "must be a positive integer"),
    ("augment", "--copies", "-1", "must be a non-negative integer"),
    ("run", "--epochs", "abc", "is not an integer"),
    ("demo-data", "--clips", "0", "must be a positive integer"),
    ("resample", "--seed", "-1", "must be a non-negative integer"),
]


def _arg_row(cmd: str, opt: str, value: str, reason: str) -> Fault:
    positional = {"train": ("x",), "resample": ("x",), "embed": ("x",), "augment": ("x",)}.get(cmd, ())
    needs_out = cmd != "run"
    return Fault(
        name=f"{cmd} {opt} {value}",
        argv=(cmd, *positional, *(("--out", "{out}") if needs_out else ()), opt, value),
        rc=2,
        path=opt,
        reason=reason,
    )


FAULTS: list[Fault] = [
    *(_arg_row(*row) for row in ARGS),
    Fault(
        "--out is an existing file",
        ("train", "x", "--out", "{file}"),
        2,
        "{file}",
        "exists and is not a directory",
        make=_existing_file,
        out=None,
    ),
    Fault(
        "--out below an existing file",
        ("resample", "x", "--out", "{file}/sub"),
        2,
        "{file}",
        "is a file",
        make=_existing_file,
        out=None,
    ),
    Fault(
        "class-map.json is not JSON",
        ("info", "{data}", "--partial"),
        2,
        "{file}",
        "invalid JSON",
        make=_class_map_not_json,
        out=None,
    ),
    Fault(
        "class-map.json reassigns an index",
        ("info", "{data}", "--partial"),
        2,
        "{file}",
        "'banjo' has index 2, expected 1",
        make=_class_map_reassigned,
        out=None,
    ),
    Fault(
        "labels and partition CSVs with a UTF-8 BOM",
        ("info", "{data}", "--partial"),
        0,
        "",
        "",
        make=_csvs_with_bom,
        out=None,
    ),
    Fault(
        "md5 list that is a FIFO (would block forever)",
        ("verify", "{data}", "--audio-md5", "{file}", "--present-only"),
        2,
        "{file}",
        "is a FIFO",
        make=_fifo,
        out=None,
        seconds=30,
    ),
    Fault(
        "dataset that is a file but no tarball",
        ("resample", "{file}", "--out", "{out}"),
        2,
        "{file}",
        "not a readable tar archive",
        make=_existing_file,
    ),
    Fault(
        "demo-data into a non-empty folder",
        ("demo-data", "--out", "{dir}", "--clips", "4", "--workers", "1"),
        2,
        "{dir}",
        "not empty",
        make=_non_empty_dir,
        out=None,
    ),
    Fault(
        "demo-data --overwrite of a folder that is no demo dataset",
        ("demo-data", "--out", "{dir}", "--clips", "4", "--workers", "1", "--overwrite"),
        2,
        "{dir}",
        "not a demo dataset",
        make=_non_empty_dir,
        out=None,
    ),
    Fault(
        "export of a folder that is no train output",
        ("export", "{dir}", "--out", "{out}"),
        2,
        "{dir}",
        "no features.json; is this a train step output",
        make=_non_empty_dir,
        slow=True,
    ),
    Fault(
        "gs:// output of a local-only command (train)",
        ("train", "x", "--out", "gs://bkt/model"),
        2,
        "gs://bkt/model",
        "writes local outputs only",
        out=None,
    ),
    Fault(
        "gs:// output of evaluate",
        ("evaluate", "m", "e", "--out", "gs://bkt/eval"),
        2,
        "gs://bkt/eval",
        "writes local outputs only",
        out=None,
    ),
    Fault(
        "resample to gs:// without credentials",
        ("resample", "{data}", "--out", "gs://bkt/rs"),
        2,
        "gs://bkt/rs",
        "no Google Cloud credentials",
        make=_data_only,
        out=None,
        env=_no_credentials,
        seconds=10,
    ),
    Fault(
        "run --output-dir gs:// without credentials",
        ("run", "--data", "{data}", "--output-dir", "gs://bkt/run"),
        2,
        "gs://bkt/run",
        "no Google Cloud credentials",
        make=_data_only,
        out=None,
        env=_no_credentials,
        seconds=10,
    ),
    Fault(
        "run --data gs:// without credentials",
        ("run", "--data", "gs://bkt/openmic-2018", "--output-dir", "{out}"),
        2,
        "gs://bkt/openmic-2018",
        "no Google Cloud credentials",
        env=_no_credentials,
        seconds=10,
    ),
    Fault(
        "npz X with 127 dims",
        ("train", "{data}", "--out", "{out}", "--epochs", "1"),
        2,
        "{file}",
        "127 dims per frame, expected 128",
        make=_x(lambda X: X[:, :, :127]),
        slow=True,
    ),
    Fault(
        "npz X with 11 frames",
        ("train", "{data}", "--out", "{out}", "--epochs", "1"),
        2,
        "{file}",
        "11 frames per clip, expected 10",
        make=_x(lambda X: np.concatenate([X, X[:, :1]], axis=1)),
        slow=True,
    ),
    Fault(
        "npz X with 0 frames (was rc 134, oneDNN abort)",
        ("train", "{data}", "--out", "{out}", "--epochs", "1"),
        2,
        "{file}",
        "0 frames",
        make=_x(lambda X: X[:, :0]),
        slow=True,
    ),
    Fault(
        "npz X with an Inf",
        ("train", "{data}", "--out", "{out}", "--epochs", "1"),
        2,
        "{file}",
        "non-finite feature values",
        make=_x(_with_inf),
        slow=True,
    ),
    Fault(
        "thresholds.json for 3 classes",
        ("evaluate", "{model}", "{data}", "--out", "{out}", "--no-rf"),
        2,
        "{file}",
        "3 thresholds, expected one per class",
        make=_thresholds_for_3_classes,
        slow=True,
    ),
    Fault(
        "corrupt embedding shard (flipped byte)",
        ("train", "{features}", "--out", "{out}", "--epochs", "1"),
        2,
        "{file}",
        r"record 5: checksum mismatch",
        make=_corrupt_embedding_shard,
        slow=True,
    ),
    Fault(
        "embedding record holding a NaN",
        ("train", "{features}", "--out", "{out}", "--epochs", "1"),
        2,
        "{file}",
        r"record 7 \(000007_0\): non-finite embedding values",
        make=_nan_embedding,
        slow=True,
    ),
    Fault(
        "corrupt resampled shard (flipped byte): dead letter, the rest embedded",
        ("embed", "{audio}", "--out", "{out}", "--embedder", "musicnn"),
        0,
        "{file}",
        r"record 1: checksum mismatch",
        make=_corrupt_resampled_shard,
        out=None,
        slow=True,
    ),
]


def _fill(text: str, values: dict[str, str]) -> str:
    return text.format(**values) if "{" in text else text


def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


@pytest.mark.parametrize(
    "fault", [pytest.param(f, id=f.name, marks=[pytest.mark.slow] if f.slow else []) for f in FAULTS]
)
def test_fault(fault: Fault, tmp_path: Path) -> None:
    values = {"out": str(tmp_path / "out"), **fault.make(tmp_path)}
    argv = [_fill(a, values) for a in fault.argv]
    env = dict(os.environ)
    if fault.env is not None:
        for k, v in fault.env(tmp_path).items():
            if v:
                env[k] = v
            else:
                env.pop(k, None)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    start = time.monotonic()
    proc = _run(argv, env=env, cwd=cwd)
    seconds = time.monotonic() - start
    shown = f"rc {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == fault.rc, shown
    assert "Traceback" not in proc.stderr, shown
    if fault.rc != 0:
        errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
        assert len(errors) == 1, shown
        line = errors[0]
        assert line.startswith(f"disco {argv[0]}: error: "), shown
    else:
        line = proc.stdout + proc.stderr
    if fault.path:
        assert _fill(fault.path, values) in line, shown
    if fault.reason:
        assert re.search(fault.reason, line), shown
    if fault.out is not None:
        assert _files_under(Path(_fill(fault.out, values))) == [], "a failed step left files behind"
    assert not (cwd / "gs:").exists(), "a local folder named gs: was created"
    if fault.seconds is not None:
        assert seconds < fault.seconds, f"took {seconds:.1f} s"
    if fault.env is not None and "TMPDIR" in fault.env(tmp_path):
        assert not any((tmp_path / "tmpdir").iterdir()), "the failed run left something in the temp folder"


@pytest.mark.slow
def test_corrupt_resampled_record_is_dead_lettered_by_shard_and_index(tmp_path: Path) -> None:
    values = _corrupt_resampled_shard(tmp_path)
    proc = _run(["embed", values["audio"], "--out", values["out"], "--embedder", "musicnn"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = Path(values["out"])
    failures = [json.loads(x) for x in (out / params.FAILURES_FILE).read_text().splitlines() if x.strip()]
    assert len(failures) == 1
    assert failures[0]["shard"] == values["file"] and failures[0]["reason"].startswith("record 1: checksum")
    summary = json.loads((out / params.SUMMARY_FILE).read_text())
    assert summary["records"] == 2 and summary["failed"] == 1


# --- remote outputs against the GCS emulator ----------------------------------------------------------
class _RefusingHandler(http.server.BaseHTTPRequestHandler):
    """A storage endpoint that answers every request with 403, as GCS does for a bucket the caller
    may read but not write."""

    def _refuse(self) -> None:
        body = json.dumps(
            {"error": {"code": 403, "message": "caller does not have storage.objects.create access"}}
        ).encode()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _refuse

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def refusing_storage():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_bucket_that_refuses_writes_fails_before_the_work(tmp_path: Path, refusing_storage: str) -> None:
    data = _sample_copy(tmp_path, _shared())
    env = {**os.environ, "STORAGE_EMULATOR_HOST": refusing_storage}
    start = time.monotonic()
    proc = _run(["resample", str(data), "--out", "gs://read-only/rs"], env=env, cwd=tmp_path)
    assert time.monotonic() - start < 10
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(r"gs://read-only/rs: cannot write: permission denied", proc.stderr), proc.stderr


def test_missing_bucket_and_writable_bucket_on_the_emulator(tmp_path: Path) -> None:
    from disco.errors import ConfigError
    from disco.remote import check_gcs_output

    with start_gcs_emulator() as emu:
        emu.make_bucket("writable")
        check_gcs_output("gs://writable/run/out")  # passes, and leaves no probe object behind
        assert [b.name for b in emu.client.list_blobs("writable")] == []
        with pytest.raises(ConfigError, match=r"gs://absent/x: cannot write: bucket 'absent' does not exist"):
            check_gcs_output("gs://absent/x")
        with pytest.raises(ConfigError, match="needs a bucket"):
            check_gcs_output("gs:///x")


# --- library-level faults that have no cheap command to reach them ----------------------------------------
def test_predict_input_that_is_a_fifo_fails_at_once(tmp_path: Path) -> None:
    from disco.audio.decode import load_clip
    from disco.errors import AudioDecodeError

    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(AudioDecodeError, match=r"pipe\.wav: is a FIFO"):
        load_clip(str(fifo), name=str(fifo))
    assert time.monotonic() - start < 5


@pytest.mark.parametrize(
    "samples, sr, reason",
    [
        (1, 44100, "too short"),
        (int(0.05 * 44100), 44100, r"too short: 0\.050 s"),
        (10, 1, "sample rate 1 Hz outside"),
    ],
    ids=["1 sample", "0.05 s", "1 Hz"],
)
def test_tiny_clips_and_absurd_rates_are_decode_errors(samples: int, sr: int, reason: str) -> None:
    import soundfile as sf

    from disco.audio.decode import decode_audio
    from disco.errors import AudioDecodeError

    buf = io.BytesIO()
    sf.write(buf, np.full((samples, 1), 0.25, np.float32), sr, format="WAV", subtype="PCM_16")
    with pytest.raises(AudioDecodeError, match=reason):
        decode_audio(buf.getvalue(), name="tiny.wav")


@pytest.mark.parametrize(
    "features, reason",
    [
        ([[float("nan")] * 128] * 10, "non-finite"),
        ([[0] * 128] * 11, "11 frames per clip, expected 10"),
        ([[0] * 127] * 10, r"features shape \(10, 127\)"),
        ([[0] * 128, [0] * 127], "malformed VGGish JSON"),
        ([[300] * 128] * 10, "outside 0-255"),
    ],
    ids=["NaN", "11 frames", "127 dims", "ragged", "not bytes"],
)
def test_bad_vggish_json_names_the_file(tmp_path: Path, features, reason: str) -> None:
    from disco.data.openmic import open_dataset, vggish_relpath
    from disco.errors import DatasetError

    root = _sample_copy(tmp_path, _shared())
    key = "000046_3840"
    path = root / vggish_relpath(key)
    path.write_text(json.dumps({"features": features}))
    with pytest.raises(DatasetError, match=reason) as err:
        open_dataset(root, partial=True).vggish_json(key)
    assert err.value.path == str(path)
