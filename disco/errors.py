"""Typed errors. Every user-facing failure is a ``DiscoError`` with a message that names the
file (and line, where there is one) and the reason, so the CLI can print it without a trace."""

from __future__ import annotations

import os


class DiscoError(Exception):
    """Base class: the CLI prints ``error: <message>`` and exits with status 2."""


class DatasetError(DiscoError):
    """A dataset file is missing, malformed or inconsistent."""

    def __init__(self, path: str | os.PathLike[str], reason: str, *, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class AudioDecodeError(DiscoError):
    """A clip could not be decoded (corrupt, empty, zero-length or unsupported)."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class SchemaError(DiscoError):
    """A record does not match the schema (or schema version) the reader expects."""


class EmbedderUnavailableError(DiscoError):
    """Embedder weights could not be loaded (unreachable handle, missing checkpoint)."""


class ConfigError(DiscoError):
    """Invalid parameters or combination of options."""


class OutputError(DiscoError):
    """A step output is incomplete or inconsistent (a shard missing, stale or given twice), or
    could not be written (disk full, read-only); nothing was published."""


class StepFailedError(DiscoError):
    """A step ran but its output would be empty, or more of its inputs failed than allowed."""


class MissingExtraError(ConfigError):
    """An optional feature's package is not installed: the message names the extra that brings it."""
