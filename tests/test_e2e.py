"""The whole pipeline, locally through kfp.local, on a small generated dataset with one corrupt clip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.pipeline_fixtures import (
    E2E_SEED,
    make_demo_dataset,
    read_failures,
    read_result,
    step_output,
)

from disco import params, records
from disco.results import StepResult

AUDIO_TASKS = {
    "resample-audio",
    "augment-audio",
    "embed-audio",
    "train-classifier-2",
    "evaluate-classifier-2",
}
# Both runs (the second reuses the first's cache) with the same small-data parameters.
E2E_PARAMETERS = dict(embedder="musicnn", augment_copies=1, epochs=2, patience=2, batch_size=8, seed=E2E_SEED)


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def first_run(demo_data, tmp_path_factory):
    from disco.runner import run_local

    runs = tmp_path_factory.mktemp("runs")
    result = run_local(
        str(demo_data),
        runs / "first",
        **E2E_PARAMETERS,
    )
    return runs, result


def _check_step_files(step_dir: Path, task: str) -> StepResult:
    assert (step_dir / params.RUN_INFO_FILE).is_file(), f"{step_dir} has no run_info.json"
    info = json.loads((step_dir / params.RUN_INFO_FILE).read_text())
    assert info["parameters"], f"{step_dir}/run_info.json records no parameters"
    return read_result(step_dir, task)


@pytest.mark.e2e
@pytest.mark.slow
def test_every_step_produces_schema_valid_outputs(first_run, demo_data):
    runs, result = first_run
    run_dir = Path(result.output_dir)

    # Resample: the corrupt clip is a dead letter, every other clip a 16 kHz, 10 s record.
    resampled = step_output(run_dir, "resample-audio", "resampled")
    summary = _check_step_files(resampled, "resample-audio")
    failures = read_failures(resampled)
    assert summary.failed == 1 and len(failures) == 1, failures
    bad = failures[0]
    assert bad["key"] and bad["reason"], bad
    originals = list(records.iter_resampled([str(resampled)]))
    assert len(originals) == summary.ok > 0
    keys = {r.key for r in originals}
    assert bad["key"] not in keys
    for rec in originals:
        assert rec.pcm.shape == (params.CLIP_SAMPLES,) and rec.sample_rate == params.SAMPLE_RATE
        assert rec.split in params.SPLITS and rec.augmentation_id == 0
    assert {r.split for r in originals} >= {params.SPLIT_TRAIN, params.SPLIT_TEST}
    # Every record names its artist (the metadata's), for cross-fitting's folds.
    from disco.data.openmic import open_dataset

    artist = {c.key: c.artist_id for c in open_dataset(str(demo_data)).clips()}
    assert all(artist.values()) and len(set(artist.values())) < len(artist)
    assert all(rec.group == f"artist:{artist[rec.key]}" for rec in originals)
    failures_md = step_output(run_dir, "resample-audio", "failures").read_text()
    assert bad["key"] in failures_md

    # Augment: train clips only, augmentation ids 1..K.
    augmented = step_output(run_dir, "augment-audio", "augmented")
    _check_step_files(augmented, "augment-audio")
    copies = list(records.iter_resampled([str(augmented)]))
    n_train = sum(r.split == params.SPLIT_TRAIN for r in originals)
    assert len(copies) == n_train
    assert all(r.split == params.SPLIT_TRAIN and r.augmentation_id == 1 for r in copies)
    assert {r.key for r in copies} <= keys

    # Embed: one record per original and per copy, finite [frames, dim].
    embeddings = step_output(run_dir, "embed-audio", "embeddings")
    emb_summary = _check_step_files(embeddings, "embed-audio")
    embedded = list(records.iter_embeddings([str(embeddings)]))
    assert len(embedded) == len(originals) + len(copies) == emb_summary.records
    shapes = {r.embedding.shape for r in embedded}
    assert shapes == {(emb_summary.frames, emb_summary.dim)}
    assert all(r.embedder == "musicnn" and np.isfinite(r.embedding).all() for r in embedded)
    assert all((r.group, r.partner_group) == (f"artist:{artist[r.key]}", "") for r in embedded)

    # Train: a Keras model and thresholds.
    model_dir = step_output(run_dir, "train-classifier-2", "model")
    _check_step_files(model_dir, "train-classifier-2")
    assert (model_dir / "model.keras").stat().st_size > 0
    thresholds = json.loads((model_dir / "thresholds.json").read_text())
    assert thresholds

    # Evaluate: metrics (masked test entries) and the report, copied into the run directory.
    metrics = json.loads((run_dir / params.METRICS_FILE).read_text())
    assert 0.0 <= metrics["mAP"] <= 1.0 and 0.0 <= metrics["f1_macro"] <= 1.0
    assert set(metrics["per_class"]) <= set(params.CLASSES) and metrics["per_class"]
    assert (run_dir / params.REPORT_FILE).stat().st_size > 0
    report = (run_dir / params.REPORT_FILE).read_text()
    run_parameters = report[report.index("<h2>Run parameters</h2>") :]
    for shown in ("Augmentation (train split)", str(demo_data), "musicnn", "<dt>seed</dt>", "<dt>embed</dt>"):
        assert shown in run_parameters, f"report's run parameters lack {shown!r}"
    assert result.metrics["mAP"] == metrics["mAP"]
    ui_metrics = json.loads(step_output(run_dir, "evaluate-classifier-2", "metrics").read_text())
    assert ui_metrics["mAP"] == pytest.approx(metrics["mAP"])
    assert "| class |" in step_output(run_dir, "evaluate-classifier-2", "table").read_text()
    assert (run_dir / "pipeline.log").stat().st_size > 0
    assert not result.cached_tasks


@pytest.mark.e2e
@pytest.mark.slow
def test_second_run_reuses_every_finished_step(first_run, demo_data):
    from disco.runner import run_local

    runs, first = first_run
    second = run_local(
        str(demo_data),
        runs / "second",
        **E2E_PARAMETERS,
    )
    assert set(second.cached_tasks) == AUDIO_TASKS
    assert second.metrics == first.metrics
    assert (Path(second.output_dir) / params.METRICS_FILE).is_file()
    assert second.seconds < first.seconds


@pytest.mark.e2e
@pytest.mark.slow
def test_a_failing_step_is_a_clear_error(tmp_path):
    from disco.runner import PipelineRunError, run_local

    not_a_dataset = tmp_path / "empty"
    not_a_dataset.mkdir()
    with pytest.raises(PipelineRunError) as err:
        run_local(str(not_a_dataset), tmp_path / "run", epochs=1, cache=False)
    message = str(err.value)
    assert "resample-audio" in message and "pipeline.log" in message
    assert "Error" in message  # the step's own typed error, not only "task failed"
