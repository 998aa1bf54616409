"""The local runner's pieces that need no pipeline run: progress filtering, the metrics table, errors."""

from __future__ import annotations

import io
import logging

import pytest

from disco.errors import ConfigError, DatasetError


@pytest.fixture
def step_events(tmp_path, monkeypatch):
    """A step's events file as the runner sets it up: the variable, and disco's records going to
    it through the real handler (as disco.stepevents.install does in a step process)."""
    from disco import params, stepevents

    directory = tmp_path / "events"
    monkeypatch.setenv(params.STEP_EVENTS_ENV, str(directory))
    handler = stepevents.EventHandler()
    logger = logging.getLogger("disco")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stepevents.EventReader(str(directory))
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_progress_tee_shows_progress_and_logs_everything(step_events):
    from disco.runner import _ProgressTee

    log, term = io.StringIO(), io.StringIO()
    tee = _ProgressTee(log, term, stream_all=False, events=step_events)
    assert not tee.live  # a StringIO is not a terminal
    tee.write("03:42:36.676 - INFO - Executing task \x1b[96m'resample-audio'\x1b[0m\n")
    tee.write('    [KFP Executor 2026 INFO]: Executor input: {"inputs": {}}\n')
    step_log = logging.getLogger("disco.beam.resample")
    step_log.info("%s", "100/200 clips")
    step_log.debug("detail")
    step_log.warning("%s: cannot decode", "000001_0.ogg")
    tee.write("    disco.errors.DatasetError: labels.csv:3: unknown class 'kazoo'\n")
    tee.write(
        "03:42:38.000 - INFO - Task \x1b[96m'resample-audio'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m\n"
    )
    tee.write("Task 'embed-audio' cache hit (key=abc); skipping execution.\n")
    shown = term.getvalue()
    assert "==> step 1: Resample audio" in shown and "    100/200 clips" in shown
    assert "warning: 000001_0.ogg: cannot decode" in shown and "done in" in shown
    assert "==> step 2: Embed audio (Beam): reused from cache" in shown
    assert "Executor input" not in shown and "detail" not in shown and "Executing task" not in shown
    assert "resample-audio" not in shown and "embed-audio" not in shown  # internal task names
    assert "\x1b[" not in shown  # no colour codes when the terminal is not a TTY
    assert "Executor input" in log.getvalue() and "\x1b[" not in log.getvalue()
    assert tee.cached == ["embed-audio"]
    assert tee.last_error == "DatasetError: labels.csv:3: unknown class 'kazoo'"


def test_the_step_log_text_is_not_what_the_runner_shows(step_events, tmp_path):
    """Progress and results come from the steps' events files: a step's log lines on stdout are
    only logged, and a step whose log is silenced still shows its result line, read from the
    summary.json its published output holds (here the real empty augment step)."""
    from disco.runner import _ProgressTee
    from disco_components import _runtime

    log, term = io.StringIO(), io.StringIO()
    tee = _ProgressTee(log, term, stream_all=False, events=step_events)
    tee.write("04:06:33.331 - INFO - Executing task 'augment-audio'\n")
    tee.write("    04:06:35 INFO    disco.beam.augment: augment: 7 copies, said only in the log\n")
    logging.disable(logging.CRITICAL)
    try:
        summary = _runtime.empty_step(str(tmp_path / "augmented"), "augment", parameters={}, seed=3)
    finally:
        logging.disable(logging.NOTSET)
    tee.write("Task 'augment-audio' finished with status SUCCESS\n")
    tee.close_status()
    shown = term.getvalue().splitlines()
    assert shown[0] == "==> step 1: Augment training audio"
    assert shown[1] == f"    {summary.summary_line()}" and shown[1].startswith("    augment: 0 copies")
    assert shown[2].startswith("    done in ") and len(shown) == 3
    assert "said only in the log" in log.getvalue()


def test_partial_lines_are_held_until_complete():
    from disco.runner import _ProgressTee

    term = io.StringIO()
    tee = _ProgressTee(io.StringIO(), term, stream_all=True)
    tee.write("some ")
    assert term.getvalue() == ""
    tee.write("line\n")
    assert term.getvalue() == "some line\n"


def test_each_started_task_is_announced_by_its_display_name():
    from disco.runner import _ProgressTee

    term = io.StringIO()
    tee = _ProgressTee(io.StringIO(), term, stream_all=False)
    tee.write("04:06:33.331 - INFO - Executing task \x1b[96m'resample-audio'\x1b[0m\n")
    tee.write("04:06:34.804 - INFO - Executing task 'train-classifier-2'\n")
    lines = [line for line in term.getvalue().splitlines() if line.startswith("==>")]
    assert lines == [
        "==> step 1: Resample audio (16 kHz mono, 10 s)",
        "==> step 2: Train classifier",
    ]


def test_a_retried_task_keeps_its_step_number():
    """kfp logs "Executing task" on every attempt (retries are on for gs:// data): a retry is the same
    step, not the next one."""
    from disco.runner import _ProgressTee

    term = io.StringIO()
    tee = _ProgressTee(io.StringIO(), term, stream_all=False)
    tee.write("04:06:33.331 - INFO - Executing task 'resample-audio'\n")
    tee.end_step("FAILED")
    tee.write("04:06:35.331 - INFO - Executing task 'resample-audio'\n")
    tee.write("04:06:38.804 - INFO - Executing task 'augment-audio'\n")
    lines = [line for line in term.getvalue().splitlines() if line.startswith("==>")]
    assert [line.split(":")[0] for line in lines] == ["==> step 1", "==> step 1", "==> step 2"]
    assert lines[1].endswith("(retry)") and not lines[2].endswith("(retry)")


def test_a_failed_step_says_so():
    from disco.runner import _ProgressTee

    term = io.StringIO()
    tee = _ProgressTee(io.StringIO(), term, stream_all=False)
    tee.write("04:06:33.331 - INFO - Executing task 'resample-audio'\n")
    tee.end_step("FAILED")
    tee.close_status()
    assert term.getvalue().splitlines()[-1].startswith("    failed after ")
    assert "done" not in term.getvalue()


def _epochs(tee, n: int, out_dir) -> None:
    """A train step as the runner sees it: n epoch records, then its published result."""
    from disco import stepevents
    from disco.results import TrainResult

    tee.write("04:06:34.804 - INFO - Executing task 'train-classifier'\n")
    train_log = logging.getLogger("disco.train.train")
    for e in range(1, n + 1):
        train_log.info("epoch %3d  loss %.4f  val_loss %.4f  val_mAP %.4f%s", e, 0.5, 0.6, 0.7, "")
        # What the step also prints (its stderr, which kfp.local passes on): for the log file.
        tee.write(
            f"    04:06:35 INFO    disco.train.train: epoch {e:3d}  loss 0.5  val_loss 0.6  val_mAP 0.7\n"
        )
    result = TrainResult(chosen="baseline", best_epoch=20, epochs_run=n, val_mAP=0.9)
    result.write(out_dir)
    stepevents.result(result.step, str(out_dir), result.summary_line())
    tee.write("Task 'train-classifier' finished with status SUCCESS\n")


def test_epoch_lines_are_thinned_in_a_pipe_and_kept_in_the_log(step_events, tmp_path):
    from disco.runner import EPOCH_LINE_EVERY, _ProgressTee

    log, term = io.StringIO(), io.StringIO()
    _epochs(_ProgressTee(log, term, stream_all=False, events=step_events), 25, tmp_path)
    shown = [line for line in term.getvalue().splitlines() if "epoch" in line and "val_mAP" in line]
    assert [int(line.split()[1]) for line in shown] == list(range(EPOCH_LINE_EVERY, 26, EPOCH_LINE_EVERY))
    assert log.getvalue().count("val_mAP 0.7") == 25
    assert "best epoch 20 of 25" in term.getvalue()
    assert len(term.getvalue().splitlines()) <= 6


def test_on_a_terminal_each_step_is_one_updating_line(step_events, tmp_path):
    from disco.runner import _ProgressTee

    term = io.StringIO()
    _epochs(_ProgressTee(io.StringIO(), term, stream_all=False, live=True, events=step_events), 25, tmp_path)
    out = term.getvalue()
    assert out.count("\r\x1b[K") >= 25  # every epoch rewrites the status line
    lines = out.split("\n")
    # Once the step finishes, what stays on screen is the header and one summary line.
    assert lines[0] == "==> step 1: Train classifier"
    assert lines[1].rsplit("\r\x1b[K", 1)[-1].startswith("    train: baseline, best epoch 20 of 25")
    assert lines[1].endswith(" s)") and lines[2] == ""


def test_metrics_table_lists_every_class_and_the_summary():
    from disco.evaluate.report import metrics_table

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
    assert any(line.startswith("model") and "0.812" in line for line in lines)
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
    from disco.results import ResampleResult
    from disco_components import _runtime

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


@pytest.mark.slow
def test_disco_run_json_prints_only_json_and_readable_progress(tmp_path, openmic_sample, capsys):
    """A real `disco run --json` (kfp.local, the release-features branch): stdout is one JSON
    document with the metrics; stderr has one header per step by display name, no colour codes."""
    import json

    from helpers.train_fixtures import make_release_features

    from disco import params
    from disco.cli import main

    data = make_release_features(tmp_path / "openmic-2018", openmic_sample, seed=2)
    argv = ["run", "--data", str(data), "--output-dir", str(tmp_path / "run"), "--release-features"]
    argv += ["--epochs", "2", "--batch-size", "16", "--no-cache", "--json"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    on_disk = json.loads((tmp_path / "run" / params.METRICS_FILE).read_text())
    assert result["metrics"]["mAP"] == pytest.approx(on_disk["mAP"])
    assert set(result["metrics"]["per_class"]) == set(params.CLASSES)
    assert result["report_path"].endswith(params.REPORT_FILE) and result["reused_from_cache"] == []
    headers = [line for line in err.splitlines() if line.startswith("==>")]
    assert headers == [
        "==> step 1: Import release VGGish features",
        "==> step 2: Train classifier",
        "==> step 3: Evaluate on split01 test",
    ]
    assert "\x1b[" not in err and "train-classifier" not in err and "Executing task" not in err
    # Each step's result line, read from its summary.json through the events file (not its log).
    results = [line.strip().split(":")[0] for line in err.splitlines() if line.startswith("    ")]
    assert {"import-features", "train", "evaluate"} <= set(results), err


def test_a_cross_fitted_training_says_what_its_epochs_and_score_are():
    """Cross-fitted, the fold networks ran side by side for the epochs run, and the best epoch is
    the one their pooled out-of-fold mAP chose (what any refits train for)."""
    from disco.results import TrainResult

    line = TrainResult(
        chosen="attention", selection="cross-fitting", best_epoch=12, epochs_run=20, val_mAP=0.5
    )
    assert line.summary_line() == (
        "train: attention (cross-fitted), fold networks' best pooled epoch 12 of 20, out-of-fold mAP 0.5000"
    )
    linear = TrainResult(chosen="linear", selection="cross-fitting", best_epoch=0, epochs_run=20, val_mAP=0.4)
    assert linear.summary_line() == "train: linear (cross-fitted), out-of-fold mAP 0.4000"
