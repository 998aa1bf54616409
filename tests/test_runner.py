"""The local runner's pieces that need no pipeline run: progress filtering, the metrics table, errors."""

from __future__ import annotations

import io

import pytest

from disco.errors import ConfigError, DatasetError


def test_progress_tee_shows_progress_and_logs_everything():
    from disco.runner import _ProgressTee

    log, term = io.StringIO(), io.StringIO()
    tee = _ProgressTee(log, term, stream_all=False)
    tee.write("03:42:36.676 - INFO - Executing task \x1b[96m'resample-audio'\x1b[0m\n")
    tee.write('    [KFP Executor 2026 INFO]: Executor input: {"inputs": {}}\n')
    tee.write(
        "    03:42:36 INFO    disco.beam.resample: 100/200 clips\n    03:42:36 DEBUG   disco.x: detail\n"
    )
    tee.write("    disco.errors.DatasetError: labels.csv:3: unknown class 'kazoo'\n")
    tee.write("Task 'embed-audio' cache hit (key=abc); skipping execution.\n")
    shown = term.getvalue()
    assert "Executing task" in shown and "100/200 clips" in shown and "cache hit" in shown
    assert "Executor input" not in shown and "detail" not in shown
    assert "Executor input" in log.getvalue() and "\x1b[" not in log.getvalue()
    assert tee.cached == ["embed-audio"]
    assert tee.last_error == "DatasetError: labels.csv:3: unknown class 'kazoo'"


def test_partial_lines_are_held_until_complete():
    from disco.runner import _ProgressTee

    term = io.StringIO()
    tee = _ProgressTee(io.StringIO(), term, stream_all=True)
    tee.write("some ")
    assert term.getvalue() == ""
    tee.write("line\n")
    assert term.getvalue() == "some line\n"


def test_each_started_task_is_announced_as_a_numbered_step():
    from disco.runner import _ProgressTee

    term = io.StringIO()
    tee = _ProgressTee(io.StringIO(), term, stream_all=False)
    tee.write("04:06:33.331 - INFO - Executing task \x1b[96m'resample-audio'\x1b[0m\n")
    tee.write("04:06:34.804 - INFO - Executing task 'train-classifier-2'\n")
    lines = [line for line in term.getvalue().splitlines() if line.startswith("==>")]
    assert lines == [
        "==> step 1: Resample audio (16 kHz mono, 10 s) [resample-audio]",
        "==> step 2: Train classifier [train-classifier-2]",
    ]


def test_metrics_table_lists_every_class_and_the_summary():
    from disco.runner import metrics_table

    table = metrics_table(
        {
            "mAP": 0.8123,
            "f1_macro": 0.7,
            "per_class": {
                "piano": {"ap": 0.9, "f1": 0.8, "precision": 0.7, "recall": 0.95, "support": 12},
                "voice": {"ap": 0.5, "f1": None, "support": 3},
            },
            "random_forest": {"mAP": 0.6, "f1_macro": 0.5},
            "logistic_regression": {"mAP": 0.65, "f1_macro": 0.55},
        }
    )
    lines = table.splitlines()
    assert lines[1].split()[:3] == ["piano", "0.900", "0.800"]
    assert lines[2].split()[0] == "voice" and "3" in lines[2]
    assert any(line.startswith("mAP") and "0.812" in line for line in lines)
    assert any("random forest" in line and "0.600" in line for line in lines)
    assert any("logistic" in line and "0.650" in line and "0.550" in line for line in lines)


def test_missing_dataset_and_bad_parameters_fail_before_running(tmp_path):
    from disco.runner import run_local

    with pytest.raises(DatasetError, match="dataset not found"):
        run_local(str(tmp_path / "nope"), tmp_path / "run")
    with pytest.raises(ConfigError, match="copies"):
        run_local(str(tmp_path), tmp_path / "run", augment_copies=-1)
    assert not (tmp_path / "run").exists()


def test_component_markdown_tables():
    from components import _runtime
    from disco.results import ResampleResult

    md = _runtime.failures_markdown(
        ResampleResult(
            ok=9,
            failed=1,
            failures=[{"key": "000001_0", "path": "audio/000/000001_0.ogg", "reason": "a|b"}],
        )
    )
    assert "9 clips resampled, 1 failed" in md and "000001_0" in md and "a\\|b" in md
    conf = _runtime.confusion_counts({"confusion": {"tp": 2, "fp": 2, "fn": 3, "tn": 5, "rule": "r"}})
    assert conf == [[5, 2], [3, 2]]
    assert _runtime.confusion_counts({"per_class": {"a": {"ap": 0.5}}}) is None
