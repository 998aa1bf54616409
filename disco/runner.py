"""Run the whole disco pipeline on this machine with kfp.local (``disco run``, ``make demo``).

The same pipeline function that compiles to the cluster YAML is executed by kfp.local's
``SubprocessRunner(use_venv=False)``: each component body runs in a subprocess of this Python
environment (no container, no pip install), with real KFP executor input/output and real typed
artifacts under ``<output-dir>/pipeline_root``.

Caching: kfp.local 2.17 has a file-backed task cache (``local.init(enable_caching=True,
cache_root=...)``) keyed by component name, image, full command (the component's source included)
and the task's arguments (artifact inputs by URI). The cache directory is shared by all runs under
the same parent directory (``runs/.kfp-cache`` by default), so a second ``make demo`` into a new
``runs/demo-<id>`` reuses every finished step: resample has only parameter inputs, so it hits, and
each downstream step then sees the same input URIs and hits too. A cache entry whose artifact files
were deleted counts as a miss. The dataset's content is in the key through the ``data_fingerprint``
argument (disco.data.fingerprint: file list, sizes, modification times), so a dataset regenerated at
the same path re-runs every step. What the key does not see: uncommitted library changes (the local
image name carries the disco version and git commit), hence ``--no-cache``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from disco import __version__, fileio, params
from disco.errors import ConfigError, DatasetError, DiscoError

log = logging.getLogger(__name__)

PIPELINE_ROOT_DIR = "pipeline_root"
CACHE_DIR_NAME = ".kfp-cache"
RUN_SUMMARY_FILE = "run_summary.json"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# kfp.local's own orchestration lines worth showing as progress.
_KFP_PROGRESS = re.compile(
    r"Running pipeline|Executing task|finished with status|cache hit|Skipping|failed \(attempt|Pipeline .* finished"
)
# Our steps' log lines (format set by components._runtime.setup_logging): "HH:MM:SS LEVEL name: msg".
_STEP_LOG = re.compile(r"^\d\d:\d\d:\d\d (INFO|WARNING|ERROR|CRITICAL)\s+(disco|components)[\w.]*: ")
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")
_EXECUTING = re.compile(r"Executing task '?([\w-]+)'?")
_TASK_NAME = re.compile(r"Task '?([\w-]+)'? cache hit")


class PipelineRunError(DiscoError):
    """A step of the local pipeline run failed; the message names the log file to read."""


@dataclass
class RunResult:
    output_dir: str
    evaluation_dir: str
    metrics: dict[str, Any]
    metrics_path: str
    report_path: str | None
    log_path: str
    seconds: float
    cached_tasks: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)


class _ProgressTee(io.TextIOBase):
    """Everything to the run's log file; only progress lines (kfp.local task events and the steps'
    own INFO logging) to the terminal, so a run is readable while the full log stays on disk."""

    def __init__(self, log_file: TextIO, terminal: TextIO, *, stream_all: bool):
        self._log = log_file
        self._terminal = terminal
        self._stream_all = stream_all
        self._buffer = ""
        self.cached: list[str] = []
        self.last_error: str | None = None
        self.steps_started = 0

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self._log.write(_ANSI.sub("", text))
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._route(line)
        return len(text)

    def _route(self, line: str) -> None:
        plain = _ANSI.sub("", line).strip()
        if not plain:
            return
        m = _TASK_NAME.search(plain)
        if m:
            self.cached.append(m.group(1))
        err = _EXCEPTION_LINE.match(plain)
        if err:
            # The step's own exception (last traceback line), so the user sees the reason at once.
            self.last_error = f"{err.group(1).rsplit('.', 1)[-1]}: {err.group(2)}"
        started = _EXECUTING.search(plain)
        if started:
            self.steps_started += 1
            self._terminal.write(f"==> step {self.steps_started}: {_step_title(started.group(1))}\n")
        if self._stream_all or _KFP_PROGRESS.search(plain) or _STEP_LOG.match(plain):
            self._terminal.write(line.strip() + "\n")
            self._terminal.flush()

    def flush(self) -> None:
        self._log.flush()
        self._terminal.flush()


def _step_title(task: str) -> str:
    """``train-classifier-2`` -> the step's display name (the branch copy has a numeric suffix)."""
    from pipelines.factory import DISPLAY_NAMES, TASK_STEPS

    base = re.sub(r"-\d+$", "", task)
    step = TASK_STEPS.get(base)
    return f"{DISPLAY_NAMES[step]} [{task}]" if step else task


class _CacheHitCollector(logging.Handler):
    """kfp.local reports cache hits through the root logger (outside its own stdout context), so they
    are collected here rather than from the stdout stream."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.cached: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        m = _TASK_NAME.search(_ANSI.sub("", record.getMessage()))
        if m and "cache hit" in record.getMessage():
            self.cached.append(m.group(1))


def default_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _resolve_data(data_uri: str) -> str:
    if data_uri.startswith("gs://"):
        from disco.data.storage import missing_credentials

        # Checked here, so a run without credentials fails before the pipeline starts.
        reason = missing_credentials()
        if reason:
            raise DatasetError(data_uri, reason)
        return data_uri
    path = Path(data_uri).expanduser()
    if not path.exists():
        raise DatasetError(path, "dataset not found (make demo-data generates the demo dataset)")
    # Absolute, so the cache key does not depend on the working directory.
    return str(path.resolve())


def local_image() -> str:
    """The image name recorded for local tasks: never pulled, but part of kfp.local's cache key, so
    a different disco version or commit does not reuse another's outputs. It contains "python"
    because kfp.local warns about images that do not."""
    from disco.runinfo import git_commit

    commit = (git_commit() or "nogit")[:12]
    return f"disco-local-python:{__version__}-{commit}"


def run_local(
    data_uri: str,
    output_dir: str | os.PathLike[str],
    *,
    embedder: str = "musicnn",
    vggish_handle: str = params.VGGISH_DEFAULT_HANDLE,
    augment_copies: int = 1,
    augment_mixup: int = 0,
    augment_masks: bool = False,
    preset: str = params.DEFAULT_PRESET,
    model: str = params.DEFAULT_MODEL,
    epochs: int = params.DEFAULT_EPOCHS,
    batch_size: int = params.DEFAULT_BATCH_SIZE,
    learning_rate: float = params.DEFAULT_LEARNING_RATE,
    dropout: float = params.DEFAULT_DROPOUT,
    l2: float = params.DEFAULT_L2,
    patience: int = params.DEFAULT_PATIENCE,
    seed: int = params.DEFAULT_SEED,
    validation_fraction: float = params.DEFAULT_VALIDATION_FRACTION,
    use_release_features: bool = False,
    beam_options: str = "",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    stream_all: bool = False,
    terminal: TextIO | None = None,
) -> RunResult:
    """Run the pipeline locally; outputs (metrics.json, report.html, pipeline.log, the artifacts under
    pipeline_root/) go under ``output_dir``. A ``gs://`` output_dir is staged locally and uploaded
    when the run succeeds (kfp.local writes artifacts through local paths only)."""
    from kfp import local

    from disco.data.fingerprint import dataset_fingerprint
    from pipelines.factory import make_pipeline

    if augment_copies < 0 or augment_mixup < 0:
        raise ConfigError(f"augment copies and mixup must be >= 0, got {augment_copies} and {augment_mixup}")
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    from disco.train.train import preset_overrides, resolve_preset

    # Fails here, in seconds, rather than in the train step after the embedding.
    resolve_preset(
        preset,
        **preset_overrides(
            model=model,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            dropout=dropout,
            l2=l2,
            patience=patience,
        ),
    )
    data = _resolve_data(data_uri)
    remote_out = str(output_dir) if str(output_dir).startswith("gs://") else None
    if remote_out:
        # Before anything is staged: without credentials or write access the run fails now.
        from disco.remote import check_gcs_output

        check_gcs_output(remote_out)
        staging = Path(tempfile.mkdtemp(prefix="disco-run-"))
        out = staging
        default_cache = staging / CACHE_DIR_NAME
    else:
        out = Path(output_dir).expanduser().resolve()
        default_cache = out.parent / CACHE_DIR_NAME
    out.mkdir(parents=True, exist_ok=True)
    cache_root = Path(cache_dir).expanduser().resolve() if cache_dir else default_cache
    pipeline_root = out / PIPELINE_ROOT_DIR
    log_path = out / params.PIPELINE_LOG_FILE

    arguments = dict(
        data_uri=data,
        embedder=embedder,
        vggish_handle=vggish_handle,
        augment_copies=augment_copies,
        augment_mixup=augment_mixup,
        augment_masks=augment_masks,
        preset=preset,
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        dropout=dropout,
        l2=l2,
        patience=patience,
        seed=seed,
        validation_fraction=validation_fraction,
        use_release_features=use_release_features,
        beam_options=beam_options,
        # The cache key of the steps that read the dataset: a dataset changed at the same path re-runs.
        data_fingerprint=dataset_fingerprint(data),
    )
    pipeline = make_pipeline(
        image=local_image(),
        gpu=False,
        # A local dataset fails the same way every time; remote reads may be transient.
        retries=2 if data.startswith("gs://") else 0,
        retry_backoff="5s",
        resources=None,
    )
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,
        enable_caching=cache,
        cache_root=str(cache_root),
    )
    log.info(
        "running the pipeline locally: data %s -> %s (cache %s)",
        data,
        remote_out or out,
        cache_root if cache else "off",
    )
    # kfp.local says so for every task; display names and resources matter only on a cluster.
    warnings.filterwarnings("ignore", message=r".*have no effect in the current local runner.*")
    started = time.monotonic()
    term = terminal or sys.stderr
    env_before = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    hits = _CacheHitCollector()
    root = logging.getLogger()
    root.addHandler(hits)
    # kfp.local logs its cache hits at INFO on the root logger; with the root at WARNING (Python's
    # default, and pytest's) they would be dropped before any handler saw them. The other root
    # handlers keep their own levels, so lowering the logger's level adds no output there.
    root_level = root.level
    quietened = []
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
        for handler in root.handlers:
            if handler is not hits and handler.level == logging.NOTSET:
                handler.setLevel(root_level or logging.WARNING)
                quietened.append(handler)
    try:
        with open(log_path, "a", encoding="utf-8") as log_file:
            tee = _ProgressTee(log_file, term, stream_all=stream_all)
            with contextlib.redirect_stdout(tee):
                try:
                    task = pipeline(**arguments)
                except RuntimeError as exc:
                    reason = f" ({tee.last_error})" if tee.last_error else ""
                    raise PipelineRunError(
                        f"{_ANSI.sub('', str(exc)).strip()}{reason}; the full log is {log_path}"
                    ) from exc
                finally:
                    tee.flush()
    finally:
        root.removeHandler(hits)
        root.setLevel(root_level)
        for handler in quietened:
            handler.setLevel(logging.NOTSET)
        if env_before is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
    seconds = time.monotonic() - started

    evaluation_dir = Path(str(task.output))
    metrics_src = evaluation_dir / params.METRICS_FILE
    if not metrics_src.exists():
        raise PipelineRunError(
            f"{metrics_src}: evaluate finished but wrote no {params.METRICS_FILE}; see {log_path}"
        )
    metrics_path = out / params.METRICS_FILE
    fileio.copy_file(metrics_src, metrics_path)
    report_src = evaluation_dir / params.REPORT_FILE
    report_path: Path | None = None
    if report_src.exists():
        report_path = out / params.REPORT_FILE
        fileio.copy_file(report_src, report_path)
    metrics = json.loads(metrics_path.read_text())
    result = RunResult(
        output_dir=remote_out or str(out),
        evaluation_dir=str(evaluation_dir),
        metrics=metrics,
        metrics_path=str(metrics_path),
        report_path=str(report_path) if report_path else None,
        log_path=str(log_path),
        seconds=seconds,
        cached_tasks=sorted(set(tee.cached) | set(hits.cached)),
        parameters=arguments,
    )
    fileio.write_text(
        out / RUN_SUMMARY_FILE,
        json.dumps(
            {
                "parameters": arguments,
                "seconds": round(seconds, 1),
                "cached_tasks": result.cached_tasks,
                "evaluation_dir": result.evaluation_dir,
                "mAP": metrics.get("mAP"),
                "f1_macro": metrics.get("f1_macro"),
                "disco_version": __version__,
            },
            indent=2,
            sort_keys=True,
        )
        + "\n",
    )
    from disco.runinfo import write_run_info

    write_run_info(out, step="run", parameters=arguments, seed=seed)
    if remote_out:
        _upload_tree(out, remote_out)
        result.metrics_path = f"{remote_out.rstrip('/')}/{params.METRICS_FILE}"
        result.report_path = f"{remote_out.rstrip('/')}/{params.REPORT_FILE}" if report_path else None
        result.log_path = f"{remote_out.rstrip('/')}/{params.PIPELINE_LOG_FILE}"
    return result


def _upload_tree(local_dir: Path, gs_uri: str) -> int:
    """Copy every file under local_dir to gs_uri (the run's outputs, pipeline_root artifacts
    included; the cache directory is not an output). Uses google-cloud-storage, which honours
    STORAGE_EMULATOR_HOST, so the tests exercise it against a real emulator."""
    from google.cloud import storage

    bucket_name, _, prefix = gs_uri[len("gs://") :].partition("/")
    if not bucket_name:
        raise ConfigError(f"{gs_uri}: no bucket in the output URI")
    client = _storage_client(storage)
    bucket = client.bucket(bucket_name)
    count = 0
    for path in sorted(local_dir.rglob("*")):
        if not path.is_file() or CACHE_DIR_NAME in path.parts:
            continue
        rel = path.relative_to(local_dir).as_posix()
        blob = bucket.blob(f"{prefix.rstrip('/')}/{rel}" if prefix else rel)
        blob.upload_from_filename(str(path))
        count += 1
        if count % 200 == 0:
            log.info("uploaded %d files to %s", count, gs_uri)
    log.info("uploaded %d files to %s", count, gs_uri)
    return count


def _storage_client(storage):
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project=os.environ.get("GOOGLE_CLOUD_PROJECT", "disco-test"), credentials=AnonymousCredentials()
        )
    return storage.Client()


def metrics_table(metrics: dict[str, Any]) -> str:
    """The per-class test table printed at the end of a run."""
    rows = [f"{'class':<18} {'AP':>6} {'F1':>6} {'P':>6} {'R':>6} {'support':>8}"]
    for name, row in (metrics.get("per_class") or {}).items():
        rows.append(
            f"{name:<18} {_fmt(row.get('ap'))} {_fmt(row.get('f1'))} {_fmt(row.get('precision'))} "
            f"{_fmt(row.get('recall'))} {row.get('support', ''):>8}"
        )
    rows.append("-" * len(rows[0]))
    rows.append(f"{'mAP':<18} {_fmt(metrics.get('mAP'))}")
    rows.append(f"{'macro F1':<18} {'':>6} {_fmt(metrics.get('f1_macro'))}")
    rf = metrics.get("random_forest")
    if isinstance(rf, dict) and "mAP" in rf:
        rows.append(f"{'random forest':<18} {_fmt(rf.get('mAP'))} {_fmt(rf.get('f1_macro'))}  (baseline)")
    lr = metrics.get("logistic_regression")
    if isinstance(lr, dict) and "mAP" in lr:
        rows.append(f"{'logistic regr.':<18} {_fmt(lr.get('mAP'))} {_fmt(lr.get('f1_macro'))}  (baseline)")
    return "\n".join(rows)


def _fmt(value: Any) -> str:
    try:
        return f"{float(value):6.3f}"
    except (TypeError, ValueError):
        return f"{'':>6}"
