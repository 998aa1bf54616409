"""A step that fails records its error in a file the local runner reads (not the log text)."""

from __future__ import annotations

import os
import subprocess
import sys

from disco import params
from disco.stepevents import step_error

FAILING_STEP = """
from disco_components import _runtime
from disco.errors import DatasetError

_runtime.setup_logging()
raise DatasetError("/data/labels.csv", "no such file", line=3)
"""


def test_a_failing_step_writes_its_error_for_the_runner(tmp_path):
    errors = tmp_path / "errors"
    env = {**os.environ, params.STEP_EVENTS_ENV: str(errors)}
    result = subprocess.run(
        [sys.executable, "-c", FAILING_STEP], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr  # the usual traceback is still printed
    assert step_error(str(errors)) == "DatasetError: /data/labels.csv:3: no such file"


def test_no_error_recorded_without_the_variable_or_a_failure(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != params.STEP_EVENTS_ENV}
    result = subprocess.run(
        [sys.executable, "-c", FAILING_STEP],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert list(tmp_path.iterdir()) == []
    assert step_error(str(tmp_path / "absent")) is None
