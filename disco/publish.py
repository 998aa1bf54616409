"""Step outputs are whole or absent.

Every step writes into a staging location and publishes only when it finished:

- locally, the staging folder ``.<name>.staging-<host>-<pid>-<random>`` sits beside the output
  folder and is renamed onto it when the step succeeds (the previous output, if any, is moved aside
  first and deleted after), so a reader sees the old output or the new one, never a mix, and two
  runs into one ``--out`` each publish a whole output (the last to finish wins);
- on object stores (``gs://``), which cannot rename a folder, the step writes under a unique
  prefix ``<out>/.staging-<host>-<pid>-<random>/``; publishing copies the side files (summary,
  run info, dead letters) to ``<out>/``, then writes ``<out>/manifest.json``, which names those
  shards and the side files' digests, in one object write (the commit point: readers follow the
  manifest, so they see the old output or the new one, and a summary that is not the manifest's is
  refused), then deletes the shards the previous manifest named.

``manifest.json`` lists the output's shards with their record counts, sizes and SHA-256, the step
and a digest of its parameters. :func:`verified_shards` (behind ``records.list_shards``) reads it
and fails naming the shard when one is missing or when a shard of the same name pattern that it
does not list is present (stale, from another run), and fails on a folder that still holds
``publish-in-progress.json`` (an in-place publish that was interrupted).

Publishing replaces only what is safely replaceable: an ``--out`` that is an input of the step, or
a folder above one, is refused before the step runs, and so is an existing non-empty folder that
is no disco output (no ``manifest.json``); an empty folder is published into.

:func:`publishes` wraps a step function: the function writes into the staging folder and returns
its :class:`~disco.results.StepResult`; :func:`finish_step` then checks the result (an empty output
or too many failed inputs is an error), writes ``summary.json``, ``run_info.json`` and the
manifest, logs the step's final line and publishes. On any error the staging folder is deleted and
the error says what happened in one line; a full disk or a read-only folder becomes an
:class:`~disco.errors.OutputError` naming the folder.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fnmatch
import functools
import hashlib
import inspect
import json
import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from disco import fileio, params
from disco.errors import ConfigError, DiscoError, OutputError, StepFailedError
from disco.results import StepResult

log = logging.getLogger(__name__)

_SHARD_RE = re.compile(
    r"^(?P<base>.+)-(?P<index>\d{5})-of-(?P<total>\d{5})" + re.escape(params.TFRECORD_SUFFIX) + "$"
)
SHARD_GLOB = f"*-of-*{params.TFRECORD_SUFFIX}"
REMOTE_STAGING = ".staging-"  # gs://…/out/.staging-<host>-<pid>-<random>/: a run's shards on an object store
# A filesystem that cannot rename a folder (another device; FUSE mounts of object stores): the
# output is then replaced in place with the manifest as the commit point.
_CANNOT_RENAME = {errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}
_GLOB_CHARS = re.compile(r"[\[\]*?]")
# Written into the output before an in-place publish empties it and removed after the new manifest
# is in: while it is there the folder is neither the old output nor the new one.
IN_PROGRESS_FILE = "publish-in-progress.json"
# Errors of the storage rather than of the step: reported as "<folder>: <reason>", one line.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO}
_STORAGE_MESSAGES = (
    "No space left on device",
    "Read-only file system",
    "Permission denied",
    "Disk quota exceeded",
)


# --- manifests --------------------------------------------------------------------------------


@dataclass
class ShardInfo:
    name: str
    records: int
    bytes: int
    sha256: str


@dataclass
class Manifest:
    step: str
    parameters_digest: str
    shards: list[ShardInfo] = field(default_factory=list)
    created_utc: str = ""
    version: int = params.MANIFEST_VERSION
    # SHA-256 of the side files (SIDE_FILES) as published beside it: on an object store they are
    # separate writes, and a reader checks the summary it reads is this output's (check_side_file).
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, directory: str) -> Manifest | None:
        """The manifest of a published output, or None where the folder has none (an output of an
        older disco, or made by hand)."""
        path = fileio.join(directory, params.MANIFEST_FILE)
        if not fileio.exists(path):
            return None
        try:
            data = json.loads(fileio.read_text(path))
            return cls(
                step=str(data["step"]),
                parameters_digest=str(data["parameters_digest"]),
                shards=[ShardInfo(**s) for s in data["shards"]],
                created_utc=str(data.get("created_utc", "")),
                version=int(data.get("version", params.MANIFEST_VERSION)),
                files={str(k): str(v) for k, v in data.get("files", {}).items()},
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise OutputError(f"{path}: unreadable manifest ({exc})") from exc


SIDE_FILES = (params.SUMMARY_FILE, params.RUN_INFO_FILE, params.FAILURES_FILE)


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_side_file(directory: str | os.PathLike[str], name: str, text: str) -> None:
    """OutputError when the output's manifest records another digest for its side file ``name``
    than ``text`` has: on an object store a publish interrupted between the side files and the
    manifest (its commit point) leaves the new summary beside the old manifest, and another run's
    file may have been copied in since."""
    manifest = Manifest.read(str(directory))
    if manifest is not None and name in manifest.files and manifest.files[name] != _text_digest(text):
        raise OutputError(
            f"{fileio.join(directory, name)}: not the file {params.MANIFEST_FILE} was published with "
            "(an interrupted publish, or another run's); rerun the step"
        )


def parameters_digest(parameters: Mapping[str, Any]) -> str:
    text = json.dumps(parameters, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_shard(path: str) -> ShardInfo:
    """Name, record count, size and SHA-256 of one TFRecord file (one read for the checksum; the
    count reads only the length headers)."""
    from disco.records import count_records

    digest = hashlib.sha256()
    size = 0
    with fileio.open_binary(path) as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return ShardInfo(os.path.basename(path.rstrip("/")), count_records(path), size, digest.hexdigest())


def shard_names(names: Sequence[str], prefix: str) -> list[str]:
    pattern = f"{prefix}-*-of-*{params.TFRECORD_SUFFIX}"
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def check_complete_sets(directory: str, names: Sequence[str]) -> None:
    """Without a manifest, the shard names alone still tell a set that is incomplete (a shard
    index missing) or mixed from two runs (``-of-00001`` beside ``-of-00002``)."""
    sets: dict[str, dict[int, set[int]]] = {}
    for name in names:
        m = _SHARD_RE.match(name)
        if m:
            sets.setdefault(m["base"], {}).setdefault(int(m["total"]), set()).add(int(m["index"]))
    for base, by_total in sets.items():
        if len(by_total) > 1:
            totals = ", ".join(f"-of-{t:05d}" for t in sorted(by_total))
            raise OutputError(
                f"{fileio.join(directory, base)}-*: shards of two runs ({totals}); rerun the step into an empty folder"
            )
        ((total, indices),) = by_total.items()
        missing = sorted(set(range(total)) - indices)
        if missing:
            name = f"{base}-{missing[0]:05d}-of-{total:05d}{params.TFRECORD_SUFFIX}"
            raise OutputError(
                f"{fileio.join(directory, name)}: missing ({len(missing)} of {total} shards missing)"
            )


def check_complete(directory: str | os.PathLike[str]) -> None:
    """OutputError where an in-place publish into ``directory`` was interrupted (its marker is
    there): what its files hold is part old, part new, whatever file is read."""
    if fileio.exists(fileio.join(directory, IN_PROGRESS_FILE)):
        check_not_interrupted(str(directory), [IN_PROGRESS_FILE])


def check_not_interrupted(directory: str, names: Sequence[str]) -> None:
    """OutputError where an in-place publish into the folder was interrupted: without its manifest
    (removed first) the shards left would pass as an older, complete output."""
    if IN_PROGRESS_FILE in names:
        raise OutputError(f"{directory}: incomplete output: a publish was interrupted; rerun the step")


def verified_shards(directory: str | os.PathLike[str], prefix: str) -> list[str]:
    """The output's shards named ``<prefix>-*-of-*.tfrecord``, sorted, checked against its
    manifest: OutputError naming the shard when one it lists is missing or has another size, or
    one it does not list is present."""
    directory = str(directory)
    names = fileio.list_names(directory)
    check_not_interrupted(directory, names)
    present = shard_names(names, prefix)
    manifest = Manifest.read(directory)
    if manifest is None:
        check_complete_sets(directory, present)
        return [fileio.join(directory, n) for n in present]
    pattern = f"{prefix}-*-of-*{params.TFRECORD_SUFFIX}"
    listed = [s for s in manifest.shards if fnmatch.fnmatchcase(s.name.rsplit("/", 1)[-1], pattern)]
    names = {s.name for s in listed}
    for extra in sorted(set(present) - names):
        raise OutputError(
            f"{fileio.join(directory, extra)}: not in {params.MANIFEST_FILE} (a stale shard of another run?); "
            "rerun the step or delete it"
        )
    listings: dict[str, set[str]] = {"": set(present)}
    for shard in listed:
        path = fileio.join(directory, shard.name)
        sub, _, base = shard.name.rpartition("/")
        if sub not in listings:
            listings[sub] = set(fileio.list_names(fileio.join(directory, sub)))
        if base not in listings[sub]:
            raise OutputError(f"{path}: missing (listed in {params.MANIFEST_FILE})")
        size = fileio.size(path)
        if size != shard.bytes:
            raise OutputError(f"{path}: {size} bytes, {params.MANIFEST_FILE} says {shard.bytes}")
    return [fileio.join(directory, s.name) for s in sorted(listed, key=lambda s: s.name)]


def _input_paths(arguments: Mapping[str, Any]) -> list[str]:
    """The arguments of a step call that name existing local paths or remote URIs: its inputs (and
    any checkpoint or parameter file it reads), which its output must not replace."""
    found = []
    for value in arguments.values():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, (str, os.PathLike)):
                path = os.fspath(v)
                if isinstance(path, str) and path and (fileio.is_remote(path) or os.path.lexists(path)):
                    found.append(path)
    return found


def check_out_not_above_inputs(out_dir: str | os.PathLike[str], inputs: Sequence[str]) -> None:
    """ConfigError where the output folder is an input or a folder above one: publishing replaces
    the whole folder, so the input would be deleted with it."""
    out = os.fspath(out_dir)
    if fileio.is_remote(out):
        out_key, sep = out.rstrip("/"), "/"
    else:
        out_key, sep = os.path.realpath(out), os.sep
    for inp in map(os.fspath, inputs):
        if fileio.is_remote(inp) != fileio.is_remote(out):
            continue
        key = inp.rstrip("/") if fileio.is_remote(inp) else os.path.realpath(inp)
        if key == out_key:
            raise ConfigError(
                f"{out}: the output folder is also an input of the step; publishing would delete it"
            )
        if key.startswith(out_key.rstrip(sep) + sep):
            raise ConfigError(
                f"{out}: the output folder contains the input {inp}; publishing would delete it; choose another --out"
            )


def distinct_inputs(paths: Sequence[str]) -> list[str]:
    """The input folders of a step, refusing one given twice (which would read every record twice)."""
    seen: dict[str, str] = {}
    for p in map(str, paths):
        key = p.rstrip("/") if fileio.is_remote(p) else os.path.realpath(p)
        if key in seen:
            raise OutputError(
                f"{p}: given twice as an input (as {seen[key]!r}); every record would be read twice"
            )
        seen[key] = p
    return list(seen.values())


# --- staging and publishing ---------------------------------------------------------------------


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def storage_reason(exc: BaseException) -> tuple[str, str | None] | None:
    """(the storage's reason, the file where known) where exc or its cause is a full disk, a
    read-only filesystem or a refused permission."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in _STORAGE_ERRNOS:
            filename = os.fspath(cur.filename) if cur.filename is not None else None
            return cur.strerror or os.strerror(cur.errno), filename
        text = str(cur)
        for message in _STORAGE_MESSAGES:
            if message in text:
                return message, None
        cur = cur.__cause__ or cur.__context__
    return None


class Staging:
    """Where a step writes before it publishes; see the module docstring."""

    def __init__(self, out_dir: str | os.PathLike[str], *, step: str, inputs: Sequence[str] = ()):
        self.step = step
        check_out_not_above_inputs(out_dir, inputs)
        self.remote = fileio.is_remote(out_dir)
        self.published = False
        self._manifest: Manifest | None = None
        if self.remote:
            self.target = str(out_dir).rstrip("/")
            self._check_replaceable()
            self.path = f"{self.target}/{REMOTE_STAGING}{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            return
        self.target = os.path.abspath(os.fspath(out_dir))
        if os.path.exists(self.target) and not os.path.isdir(self.target):
            raise OutputError(f"{self.target}: exists and is not a folder")
        self._check_replaceable()
        parent, base = os.path.split(self.target)
        # Beam's file sink matches its temporary files with a glob built on the folder, so the
        # staging folder sits where its path has no glob character (next to the output, unless a
        # folder above it is named like ``exp[1]``).
        stage_parent = parent
        while _GLOB_CHARS.search(stage_parent) and os.path.dirname(stage_parent) != stage_parent:
            stage_parent = os.path.dirname(stage_parent)
        tag = _GLOB_CHARS.sub("_", os.path.relpath(self.target, stage_parent).replace(os.sep, "_"))
        self._prefix = os.path.join(stage_parent, f".{tag}.")
        try:
            os.makedirs(parent, exist_ok=True)
            self._remove_abandoned(stage_parent, tag)
            self.path = f"{self._prefix}staging-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.mkdir(self.path)
        except OSError as exc:
            raise OutputError(f"{self.target}: cannot write ({exc.strerror or exc})") from exc

    def _check_replaceable(self) -> None:
        """ConfigError where the output folder holds something that is no disco output: publishing
        deletes what is there, and only a previous output (its manifest, or the marker of an
        interrupted in-place publish) or an empty folder may go."""
        # A write probe whose delete failed (disco.remote) is no one's output.
        names = [n for n in fileio.list_names(self.target) if not n.startswith(params.WRITE_PROBE_NAME)]
        if names and params.MANIFEST_FILE not in names and IN_PROGRESS_FILE not in names:
            raise ConfigError(
                f"{self.target}: not empty and not a disco output (no {params.MANIFEST_FILE}); "
                "not replaced: choose another --out, or empty it first"
            )

    def _remove_abandoned(self, parent: str, base: str) -> None:
        """Staging folders of killed runs on this host are deleted; a live run's is left alone,
        with a warning that both publish whole outputs and the last to finish wins."""
        pattern = re.compile(rf"^\.{re.escape(base)}\.(staging|old)-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{{8}}$")
        for name in fileio.list_names(parent):
            m = pattern.match(name)
            if not m:
                continue
            if m["host"] == _host() and not _pid_alive(int(m["pid"])):
                log.warning("removing %s, left by an interrupted run", os.path.join(parent, name))
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
            else:
                log.warning(
                    "another run (pid %s on %s) is writing %s too; each publishes a whole output, the last wins",
                    m["pid"],
                    m["host"],
                    self.target,
                )

    def discard(self) -> None:
        if self.published:
            return
        fileio.remove_tree(self.path)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            if not self.published:
                self.discard()
            return
        self.discard()
        if isinstance(exc, DiscoError):
            return
        found = storage_reason(exc)
        if found:
            reason, filename = found
            # A file of the step's own output is reported as the output folder; any other (an
            # input the step could not read) by its own name.
            where = filename if filename and not str(filename).startswith(self.path) else self.target
            also = "" if where == self.target else f" to {self.target}"
            raise OutputError(f"{where}: {reason}; nothing published{also}") from exc

    def write_manifest(self, parameters: Mapping[str, Any]) -> Manifest:
        names = shard_names(fileio.list_names(self.path), "*")
        # Locally the staging folder becomes the output; remotely the shards stay under the staging
        # prefix and the manifest (written at publish) names them relative to the output.
        rel = self.path.rsplit("/", 1)[1] + "/" if self.remote else ""
        shards = []
        for n in names:
            info = describe_shard(fileio.join(self.path, n))
            info.name = rel + n
            shards.append(info)
        files = {
            name: _text_digest(fileio.read_text(fileio.join(self.path, name)))
            for name in SIDE_FILES
            if fileio.exists(fileio.join(self.path, name))
        }
        self._manifest = Manifest(
            step=self.step,
            parameters_digest=parameters_digest(parameters),
            shards=shards,
            created_utc=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            files=files,
        )
        fileio.write_text(fileio.join(self.path, params.MANIFEST_FILE), self._manifest.to_json())
        return self._manifest

    def publish(self) -> None:
        if self.remote:
            self._publish_remote()
        else:
            self._swap()
        self.published = True

    def _publish_remote(self) -> None:
        """The side files are copied next to the output first; then the new manifest replaces the
        old in one object write (the commit point); then what the old manifest named is deleted."""
        if self._manifest is None:
            raise OutputError(f"{self.path}: publish before the manifest was written")
        try:
            old = Manifest.read(self.target)
        except OutputError:
            old = None
        # Side files first, the manifest (the commit point) last: until it is written, readers
        # follow the old manifest, and check_side_file tells them its summary is gone.
        for name in self._manifest.files:
            fileio.write_text(fileio.join(self.target, name), fileio.read_text(fileio.join(self.path, name)))
        fileio.write_text(fileio.join(self.target, params.MANIFEST_FILE), self._manifest.to_json())
        self.published = True
        current = self.path.rsplit("/", 1)[1]
        previous = {s.name.split("/", 1)[0] for s in (old.shards if old else []) if "/" in s.name}
        for prefix in sorted(previous - {current}):
            fileio.remove_tree(fileio.join(self.target, prefix))
        # Shards of an older layout (beside the manifest, not under a run's prefix): only those the
        # old manifest names, never another file that merely looks like a shard.
        for name in sorted({s.name for s in (old.shards if old else []) if "/" not in s.name}):
            fileio.remove(fileio.join(self.target, name))

    def _swap(self) -> None:
        # Checked again here: the folder may have been filled while the step ran.
        self._check_replaceable()
        for _ in range(10):
            aside = None
            if os.path.lexists(self.target):
                aside = f"{self._prefix}old-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                try:
                    os.rename(self.target, aside)
                except FileNotFoundError:  # another run moved it away meanwhile
                    aside = None
                except OSError as exc:
                    if exc.errno in _CANNOT_RENAME | {errno.EBUSY}:  # a mount point: cannot be moved
                        self._publish_in_place()
                        return
                    raise
            try:
                os.rename(self.path, self.target)
            except OSError as exc:
                if aside and not os.path.lexists(self.target):
                    os.rename(aside, self.target)
                    aside = None
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    continue  # another run published between our two renames: move it aside too
                if exc.errno in _CANNOT_RENAME:  # another filesystem, or one without folder renames
                    self._publish_in_place()
                    return
                raise
            finally:
                if aside:
                    shutil.rmtree(aside, ignore_errors=True)
            return
        raise OutputError(f"{self.target}: other runs kept publishing into it; nothing published")

    def _publish_in_place(self) -> None:
        """The output folder is a mount point: mark it in progress, empty it (manifest first), move
        the files in (manifest last), then remove the mark. An interruption leaves the mark, which
        readers refuse, rather than a manifest-less folder that would pass as an older output."""
        os.makedirs(self.target, exist_ok=True)
        marker = os.path.join(self.target, IN_PROGRESS_FILE)
        fileio.write_text(
            marker,
            json.dumps({"step": self.step, "host": _host(), "pid": os.getpid(), "staging": self.path}) + "\n",
        )
        fileio.remove(os.path.join(self.target, params.MANIFEST_FILE))
        for name in os.listdir(self.target):
            if name == IN_PROGRESS_FILE:
                continue
            path = os.path.join(self.target, name)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
        names = sorted(os.listdir(self.path), key=lambda n: n == params.MANIFEST_FILE)
        for name in names:
            shutil.move(os.path.join(self.path, name), os.path.join(self.target, name))
        os.remove(marker)
        shutil.rmtree(self.path, ignore_errors=True)


# --- the tail every step shares --------------------------------------------------------------------


def check_output(result: StepResult, *, target: str, max_failure_ratio: float) -> None:
    """StepFailedError when the step's output would be empty, or when more than max_failure_ratio of
    its inputs failed."""
    failures = result.failed_inputs()
    produced = result.produced()
    example = ""
    if failures:
        first = failures[0]
        where = first.get("path") or first.get("shard") or first.get("key") or "?"
        example = f"; first: {where}: {first.get('reason', '?')}"
    if produced == 0:
        raise StepFailedError(
            f"{result.step}: nothing to publish to {target} ({len(failures)} inputs failed{example})"
        )
    total = produced + len(failures)
    if failures and len(failures) / total > max_failure_ratio:
        raise StepFailedError(
            f"{result.step}: {len(failures)} of {total} inputs failed, more than --max-failure-ratio "
            f"{max_failure_ratio:g}{example}; nothing published to {target}"
        )


def check_shard_records(result: StepResult, manifest: Manifest, *, target: str) -> None:
    """StepFailedError when the shards hold another number of records than the step counted: a
    shard lost, truncated or overwritten after its records were counted would otherwise publish
    with a summary that says more than is there."""
    expected = result.shard_records()
    written = sum(s.records for s in manifest.shards)
    if expected is not None and written != expected:
        raise StepFailedError(
            f"{result.step}: its shards hold {written} records where it counted {expected}; "
            f"nothing published to {target}"
        )


def finish_step(
    stage: Staging,
    result: StepResult,
    *,
    parameters: Mapping[str, Any],
    seed: int | None = None,
    max_failure_ratio: float = params.DEFAULT_MAX_FAILURE_RATIO,
) -> StepResult:
    """The one tail of every step: check, summary.json, run_info.json, manifest (last), publish, the
    final log line (and, under the local runner, the result event that points it at summary.json)."""
    from disco import stepevents
    from disco.runinfo import write_run_info

    check_output(result, target=stage.target, max_failure_ratio=max_failure_ratio)
    result.write(stage.path)
    write_run_info(
        stage.path, step=result.step, seed=seed, parameters=parameters, extra=result.run_info_extra()
    )
    manifest = stage.write_manifest(parameters)
    check_shard_records(result, manifest, target=stage.target)
    stage.publish()
    stepevents.result(result.step, stage.target, result.summary_line())
    return result


def _plain(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


F = TypeVar("F", bound=Callable[..., StepResult])
# Arguments that are not parameters of the result: where it goes, and the test harness.
_NOT_PARAMETERS = ("out_dir", "test_pipeline")


def publishes(step: str) -> Callable[[F], F]:
    """Decorate a step function ``fn(..., out_dir, ...) -> StepResult``: it runs with ``out_dir`` set
    to a staging folder, and :func:`finish_step` publishes what it wrote to the real ``out_dir``.
    run_info.json records the call's other arguments; a ``seed`` and ``max_failure_ratio`` argument,
    where the step has them, are used as such."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> StepResult:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            parameters = {k: _plain(v) for k, v in bound.arguments.items() if k not in _NOT_PARAMETERS}
            with Staging(bound.arguments["out_dir"], step=step, inputs=_input_paths(parameters)) as stage:
                bound.arguments["out_dir"] = stage.path
                result = fn(*bound.args, **bound.kwargs)
                return finish_step(
                    stage,
                    result,
                    parameters=parameters,
                    seed=parameters.get("seed"),
                    max_failure_ratio=parameters.get("max_failure_ratio", params.DEFAULT_MAX_FAILURE_RATIO),
                )

        return wrapper  # type: ignore[return-value]

    return decorate
