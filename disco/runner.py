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
import dataclasses
import io
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from disco import __version__, fileio, params, steps
from disco.errors import ConfigError, DatasetError, DiscoError
from disco.stepevents import Event, EventReader, step_error

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The last line of a step's traceback: the reason, for a step that died before it could record its
# error in its events file (an import error in the component body).
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")
# kfp.local's own task events (it offers no other interface than these log records): start, end,
# cache hit, retry. The steps' progress and results come from their events files (disco.stepevents).
_EXECUTING = re.compile(r"Executing task '?([\w-]+)'?")
_FINISHED = re.compile(r"Task '?([\w-]+)'? finished with status (\w+)")
_TASK_NAME = re.compile(r"Task '?([\w-]+)'? cache hit")
_RETRY = re.compile(r"Task '?([\w-]+)'? failed \(attempt (.*)")
# The train step reports every epoch; on a terminal they update one line, in a pipe (CI, `| tee`)
# every EPOCH_LINE_EVERY-th epoch is shown. pipeline.log keeps them all. An epoch record is known by
# its format string, and its epoch is the record's first argument.
_EPOCH_TEMPLATE = "epoch "
EPOCH_LINE_EVERY = 10
# How often the events files are read while a step runs (seconds).
EVENTS_POLL_S = 0.25


class PipelineRunError(DiscoError):
    """A step of the local pipeline run failed; the message names the log file to read."""

    exit_code = 1  # the run failed (bad input is found before it starts and exits 2)


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
    """Everything the steps print to the run's log file; to the terminal one header per step (from
    kfp.local's task events) and its progress and result (from the steps' events files): on a
    terminal (``live``) one line per step that updates in place, otherwise plain lines with the
    per-epoch lines thinned out. No colour codes unless the terminal is a TTY."""

    def __init__(
        self,
        log_file: TextIO,
        terminal: TextIO,
        *,
        stream_all: bool,
        live: bool | None = None,
        events: EventReader | None = None,
    ):
        self._log = log_file
        self._terminal = terminal
        self._stream_all = stream_all
        self._events = events
        self.live = _isatty(terminal) if live is None else live
        self._buffer = ""
        self._status_open = False
        self._step_started: float | None = None
        self._last_message = ""
        # The events file is read by a poller thread as well as at each task event.
        self._lock = threading.RLock()
        self.cached: list[str] = []
        self.last_error: str | None = None
        self.steps_started = 0
        self._step_numbers: dict[str, int] = {}
        self._attempted: set[str] = set()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        with self._lock:
            self._log.write(_ANSI.sub("", text))
            self._buffer += text
            while "\n" in self._buffer:
                line, self._buffer = self._buffer.split("\n", 1)
                self._route(line)
        return len(text)

    def _say(self, text: str) -> None:
        """A line of its own (replacing an updating status line, if one is showing)."""
        if self._status_open:
            self._terminal.write("\r\x1b[K")
            self._status_open = False
        self._terminal.write(text + "\n")
        self._terminal.flush()

    def _status(self, text: str) -> None:
        if not self.live:
            self._say(text)
            return
        width = shutil.get_terminal_size().columns
        self._terminal.write("\r\x1b[K" + text[: max(width - 1, 20)])
        self._status_open = True
        self._terminal.flush()

    def log_line(self, text: str) -> None:
        """A line for the log file only (events that arrive through logging, not stdout)."""
        with self._lock:
            self._log.write(_ANSI.sub("", text).rstrip("\n") + "\n")

    def step_started(self, task: str, *, cached: bool = False) -> None:
        with self._lock:
            self.end_step()
            # kfp logs every attempt of a retried task: a retry keeps its step's number.
            if task not in self._step_numbers:
                self._step_numbers[task] = len(self._step_numbers) + 1
            self.steps_started = len(self._step_numbers)
            suffix = ": reused from cache" if cached else ""
            retry = " (retry)" if task in self._attempted and not cached else ""
            self._attempted.add(task)
            self._say(f"==> step {self._step_numbers[task]}: {step_title(task)}{suffix}{retry}")
            self._step_started = None if cached else time.monotonic()
            self._last_message = ""

    def kfp_event(self, message: str, level: int) -> None:
        """A kfp.local log record: logged, routed like a stdout line; a warning nothing else
        explains is shown as one."""
        with self._lock:
            self.log_line(message)
            plain = _ANSI.sub("", message).strip()
            if self._route_event(plain):
                return
            if level >= logging.WARNING:
                self._say(f"    kfp: {plain}")

    def end_step(self, status: str | None = None) -> None:
        with self._lock:
            self.poll()
            if self._step_started is None:
                return
            took = f"{time.monotonic() - self._step_started:.0f} s"
            self._step_started = None
            if status and status != "SUCCESS":
                self._say(f"    {status.lower()} after {took}")
            elif self.live and self._last_message:
                self._say(f"    {self._last_message} ({took})")
            else:
                self._say(f"    done in {took}")

    def poll(self) -> None:
        """Show what the running step wrote to its events file since the last look."""
        if self._events is None:
            return
        with self._lock:
            for event in self._events.new_events():
                if event.kind == "progress":
                    self._progress(event)
                elif event.kind == "result":
                    self._result(event)
                elif event.kind == "error":
                    self.last_error = f"{event.fields.get('error')}: {event.message}"

    def _progress(self, event: Event) -> None:
        if event.level != "INFO":
            self._say(f"    {event.level.lower()}: {event.message}")
            return
        self._last_message = event.message
        args = event.fields.get("args") or [None]
        if (
            not self.live
            and str(event.fields.get("template", "")).startswith(_EPOCH_TEMPLATE)
            and isinstance(args[0], int)
            and args[0] % EPOCH_LINE_EVERY
        ):
            return
        self._status(f"    {event.message}")

    def _result(self, event: Event) -> None:
        """The step's published result, read from its summary.json with the step's result type."""
        spec = steps.STEP.get(str(event.fields.get("step")))
        if spec is None:
            return
        try:
            line = spec.result.read(str(event.fields.get("directory"))).summary_line()
        except DiscoError as exc:
            self._say(f"    warning: {exc}")
            return
        self._last_message = line
        self._status(f"    {line}")

    def _route(self, line: str) -> None:
        plain = _ANSI.sub("", line).strip()
        if not plain:
            return
        err = _EXCEPTION_LINE.match(plain)
        if err:
            self.last_error = f"{err.group(1).rsplit('.', 1)[-1]}: {err.group(2)}"
        if self._route_event(plain):
            return
        if self._stream_all:
            self._say(line.rstrip() if self.live else plain)

    def _route_event(self, plain: str) -> bool:
        """kfp.local's task events, as headers and step ends; True when the line was one."""
        hit = _TASK_NAME.search(plain)
        if hit:
            self.cached.append(hit.group(1))
            self.step_started(hit.group(1), cached=True)
            return True
        started = _EXECUTING.search(plain)
        if started:
            self.step_started(started.group(1))
            return True
        finished = _FINISHED.search(plain)
        if finished:
            self.end_step(finished.group(2))
            return True
        retry = _RETRY.search(plain)
        if retry:
            self._say(f"    {step_title(retry.group(1))} failed (attempt {retry.group(2)}")
            return True
        return False

    def close_status(self) -> None:
        with self._lock:
            self.end_step()
            if self._status_open:
                self._terminal.write("\n")
                self._status_open = False
            self._terminal.flush()

    def flush(self) -> None:
        with self._lock:
            self._log.flush()
            self._terminal.flush()


class _Poller(threading.Thread):
    """Reads the events files while a step runs, so its progress shows as it comes."""

    def __init__(self, tee: _ProgressTee):
        super().__init__(name="disco-step-events", daemon=True)
        self._tee = tee
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(EVENTS_POLL_S):
            self._tee.poll()

    def stop(self) -> None:
        self._done.set()
        self.join()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def step_title(task: str) -> str:
    """``train-classifier-2`` -> "Train classifier": the step's display name (the branch copy of
    a task has a numeric suffix), for anything a user reads."""
    step = steps.step_of_task(task)
    return step.display_name if step else task


def _from_kfp(record: logging.LogRecord) -> bool:
    return f"{os.sep}kfp{os.sep}" in (record.pathname or "")


class _KfpEventFilter(logging.Filter):
    """kfp.local reports task events (start, end, cache hits, retries, skipped conditions)
    through the root logger. During a run this filter on the root logger hands them to the tee
    (progress on the terminal, the raw line in the log file) instead of the root's handlers, so
    kfp's raw lines (internal task names, colour codes) stay off the user's terminal."""

    def __init__(self) -> None:
        super().__init__()
        self.cached: list[str] = []
        self.tee: _ProgressTee | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hit = _TASK_NAME.search(_ANSI.sub("", message)) if "cache hit" in message else None
        if hit:
            self.cached.append(hit.group(1))
        if self.tee is None or not (hit or _from_kfp(record)):
            return True
        self.tee.kfp_event(message, record.levelno)
        return False


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
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    stream_all: bool = False,
    terminal: TextIO | None = None,
    **parameters: Any,
) -> RunResult:
    """Run the pipeline locally; outputs (metrics.json, report.html, pipeline.log, the artifacts under
    pipeline_root/) go under ``output_dir``. A ``gs://`` output_dir is staged locally and uploaded
    when the run succeeds (kfp.local writes artifacts through local paths only).

    ``parameters`` are the pipeline's run parameters by name (``disco.steps.RUN_PARAMETERS``, which
    also gives the defaults and this function's documented signature); ``data_fingerprint`` is
    computed here."""
    from kfp import local

    from disco.data.fingerprint import dataset_fingerprint
    from disco_pipelines.factory import make_pipeline

    values = steps.run_values({**parameters, "data_uri": data_uri})
    if values["augment_copies"] < 0 or values["augment_mixup"] < 0:
        raise ConfigError(
            f"augment copies and mixup must be >= 0, got {values['augment_copies']} and {values['augment_mixup']}"
        )
    from disco.train.train import preset_overrides, resolve_preset

    # Fails here, in seconds, rather than in the train step after the embedding; and is what the
    # train step will resolve (a value at params.FROM_PRESET means the chosen preset's own).
    training = resolve_preset(values["preset"], **preset_overrides(**steps.hyperparameters(values)))
    data = _resolve_data(data_uri)
    remote_out = str(output_dir) if str(output_dir).startswith("gs://") else None
    if remote_out:
        # Before anything is staged: without credentials or write access the run fails now.
        from disco.remote import check_gcs_output

        check_gcs_output(remote_out)
        staging = Path(tempfile.mkdtemp(prefix="disco-run-"))
        out = staging
        default_cache = staging / params.CACHE_DIR_NAME
    else:
        out = Path(output_dir).expanduser().resolve()
        default_cache = out.parent / params.CACHE_DIR_NAME
    out.mkdir(parents=True, exist_ok=True)
    cache_root = Path(cache_dir).expanduser().resolve() if cache_dir else default_cache
    pipeline_root = out / params.PIPELINE_ROOT_DIR
    log_path = out / params.PIPELINE_LOG_FILE

    # The cache key of the steps that read the dataset: a dataset changed at the same path re-runs.
    arguments = {**values, "data_uri": data, "data_fingerprint": dataset_fingerprint(data)}
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
    hits = _KfpEventFilter()
    root = logging.getLogger()
    root.addFilter(hits)
    # kfp.local logs its cache hits at INFO on the root logger; with the root at WARNING (Python's
    # default, and pytest's) they would be dropped before any handler saw them. The other root
    # handlers keep their own levels, so lowering the logger's level adds no output there.
    root_level = root.level
    quietened = []
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
        for handler in root.handlers:
            if handler.level == logging.NOTSET:
                handler.setLevel(root_level or logging.WARNING)
                quietened.append(handler)
    # Each step writes its progress, result and error here (disco.stepevents); the step
    # subprocesses inherit the variable.
    events_dir = tempfile.mkdtemp(prefix="disco-step-events-")
    events_before = os.environ.get(params.STEP_EVENTS_ENV)
    os.environ[params.STEP_EVENTS_ENV] = events_dir
    try:
        with open(log_path, "a", encoding="utf-8") as log_file:
            tee = _ProgressTee(log_file, term, stream_all=stream_all, events=EventReader(events_dir))
            hits.tee = tee
            poller = _Poller(tee)
            poller.start()
            with contextlib.redirect_stdout(tee):
                try:
                    task = pipeline(**arguments)
                except RuntimeError as exc:
                    # The traceback's last line is the fallback for a step that died before
                    # setting up (an import error in its body).
                    error = step_error(events_dir) or tee.last_error
                    reason = f" ({error})" if error else ""
                    tee.end_step("FAILED")
                    raise PipelineRunError(
                        f"{_ANSI.sub('', str(exc)).strip()}{reason}; the full log is {log_path}"
                    ) from exc
                finally:
                    poller.stop()
                    hits.tee = None
                    tee.close_status()
                    tee.flush()
    finally:
        shutil.rmtree(events_dir, ignore_errors=True)
        if events_before is None:
            os.environ.pop(params.STEP_EVENTS_ENV, None)
        else:
            os.environ[params.STEP_EVENTS_ENV] = events_before
        root.removeFilter(hits)
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
    # Where the evaluation will be once the run is uploaded: the staging folder is deleted then.
    shown_evaluation = (
        f"{remote_out.rstrip('/')}/{evaluation_dir.relative_to(out).as_posix()}"
        if remote_out
        else str(evaluation_dir)
    )
    result = RunResult(
        output_dir=remote_out or str(out),
        evaluation_dir=shown_evaluation,
        metrics=metrics,
        metrics_path=str(metrics_path),
        report_path=str(report_path) if report_path else None,
        log_path=str(log_path),
        seconds=seconds,
        cached_tasks=sorted(set(tee.cached) | set(hits.cached)),
        parameters=arguments,
    )
    fileio.write_text(
        out / params.RUN_SUMMARY_FILE,
        json.dumps(
            {
                "parameters": arguments,
                "training": dataclasses.asdict(training),
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

    write_run_info(out, step="run", parameters=arguments, seed=values["seed"])
    if remote_out:
        _upload_tree(out, remote_out)
        result.metrics_path = f"{remote_out.rstrip('/')}/{params.METRICS_FILE}"
        result.report_path = f"{remote_out.rstrip('/')}/{params.REPORT_FILE}" if report_path else None
        result.log_path = f"{remote_out.rstrip('/')}/{params.PIPELINE_LOG_FILE}"
        if cache_dir is None:
            # Everything is in the bucket now; the default cache lived in the staging folder, so
            # nothing refers to it. A --cache-dir's entries name these outputs: they stay.
            shutil.rmtree(out, ignore_errors=True)
        else:
            log.info("staging folder %s kept: the cache in %s refers to its outputs", out, cache_root)
    return result


run_local.__signature__ = steps.run_signature(run_local)  # type: ignore[attr-defined]


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
        if not path.is_file() or params.CACHE_DIR_NAME in path.parts:
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
