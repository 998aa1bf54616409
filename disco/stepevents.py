"""What a step tells the local runner, as a file of JSON lines rather than its log text.

The local runner (``disco run``) sets :data:`disco.params.STEP_EVENTS_ENV` to a directory; every
step process it starts appends events to ``<directory>/<pid>.jsonl``:

* ``{"kind": "progress", "level", "logger", "message", "template", "args"}``: an INFO-or-worse record
  of disco's own loggers, as a record (its format string and arguments kept apart), written by
  :class:`EventHandler`, which :func:`install` adds to the root logger;
* ``{"kind": "result", "step", "directory"}``: the step published its output in ``directory``; its
  typed result is that directory's summary.json (:func:`result`, called by
  :func:`disco.publish.finish_step`), read back with the step spec's result type;
* ``{"kind": "error", "error", "message"}``: the exception that ended the step (:func:`install`'s
  ``sys.excepthook``); the traceback still goes to stderr as usual.

Without the variable (a step on a cluster, a command-line step) nothing is written. The runner reads
the files with :class:`EventReader`. Nothing here imports KFP.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from disco import params

log = logging.getLogger(__name__)

# The loggers whose records are progress: disco's library and its components.
_STEP_LOGGERS = ("disco.", "disco_components")
# A record that carries this attribute is the step's final line, which the result event replaces.
_RESULT_RECORD = "disco_step_result"

_lock = threading.Lock()


def events_dir() -> str | None:
    return os.environ.get(params.STEP_EVENTS_ENV) or None


def emit(kind: str, **fields: Any) -> None:
    """Append one event to this process's file (nothing without the runner's variable)."""
    directory = events_dir()
    if not directory:
        return
    line = json.dumps({"kind": kind, **fields}, default=str) + "\n"
    with _lock:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as fh:
            fh.write(line)


def result(step: str, directory: str, line: str) -> None:
    """The step published its result (summary.json) in ``directory``: logs its final ``line`` and
    tells the runner where to read the result."""
    log.info("%s", line, extra={_RESULT_RECORD: True})
    emit("result", step=step, directory=str(directory))


def _plain_args(args: Any) -> list[Any]:
    if not isinstance(args, tuple):
        return []
    return [a if isinstance(a, (int, float, str, bool)) or a is None else str(a) for a in args]


class EventHandler(logging.Handler):
    """Writes disco's INFO-or-worse records as progress events."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, _RESULT_RECORD, False) or not record.name.startswith(_STEP_LOGGERS):
            return
        try:
            emit(
                "progress",
                level=record.levelname,
                logger=record.name,
                message=record.getMessage(),
                template=str(record.msg),
                args=_plain_args(record.args),
            )
        except Exception:  # a progress line must never fail the step
            self.handleError(record)


def install() -> None:
    """In a step process the runner started: progress records and the final exception to the
    events file. Idempotent; nothing without the runner's variable."""
    if not events_dir():
        return
    root = logging.getLogger()
    if not any(isinstance(h, EventHandler) for h in root.handlers):
        root.addHandler(EventHandler())
    if getattr(sys.excepthook, "_disco_step", False):
        return
    previous = sys.excepthook

    def hook(kind, value, traceback) -> None:
        try:
            emit("error", error=kind.__name__, message=str(value))
        finally:
            previous(kind, value, traceback)

    hook._disco_step = True  # type: ignore[attr-defined]
    sys.excepthook = hook


@dataclass
class Event:
    kind: str
    fields: dict[str, Any]

    @property
    def message(self) -> str:
        return str(self.fields.get("message", ""))

    @property
    def level(self) -> str:
        return str(self.fields.get("level", "INFO"))


@dataclass
class EventReader:
    """Reads the events the step processes appended since the last call (whole lines only: a step
    may be writing one right now)."""

    directory: str
    _offsets: dict[str, int] = field(default_factory=dict)

    def new_events(self) -> Iterator[Event]:
        if not os.path.isdir(self.directory):
            return
        paths = [os.path.join(self.directory, n) for n in os.listdir(self.directory) if n.endswith(".jsonl")]
        for path in sorted(paths, key=os.path.getmtime):
            start = self._offsets.get(path, 0)
            with open(path, "rb") as fh:
                fh.seek(start)
                data = fh.read()
            complete = data[: data.rfind(b"\n") + 1]
            self._offsets[path] = start + len(complete)
            for raw in complete.splitlines():
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue  # a step killed while writing it
                if isinstance(record, dict) and "kind" in record:
                    yield Event(str(record.pop("kind")), record)


def step_error(directory: str) -> str | None:
    """The most recent error a step recorded in ``directory``, as ``Type: message``."""
    errors = [e for e in EventReader(directory).new_events() if e.kind == "error"]
    if not errors:
        return None
    last = errors[-1].fields
    return f"{last.get('error')}: {last.get('message')}"
