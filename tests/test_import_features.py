"""The release-features path: openmic-2018.npz -> embedding records, and the pipeline branch that
skips resample/augment/embed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.pipeline_fixtures import E2E_SEED, add_release_npz, make_demo_dataset, step_output

from disco import params, records


@pytest.fixture(scope="module")
def release_like(tmp_path_factory) -> Path:
    root = make_demo_dataset(tmp_path_factory.mktemp("release"), corrupt=0)
    add_release_npz(root)
    return root


@pytest.mark.slow
def test_npz_becomes_embedding_records_with_splits_and_labels(release_like, tmp_path):
    from disco.data.openmic import dequantize, open_dataset
    from disco.params import RELEASE_EMBEDDER
    from disco.train.features import write_release_records as write_release_features

    summary = write_release_features(str(release_like), str(tmp_path), seed=E2E_SEED, validation_fraction=0.2)
    ds = open_dataset(str(release_like))
    clips = {c.key: c for c in ds.clips(validation_fraction=0.2, seed=E2E_SEED)}
    npz = ds.load_npz()
    row = {str(k): i for i, k in enumerate(npz.sample_key)}
    recs = list(records.iter_embeddings([str(tmp_path)]))
    assert len(recs) == summary.records == len(clips)
    assert summary.splits == {s: sum(c.split == s for c in clips.values()) for s in summary.splits}
    for rec in recs:
        clip = clips[rec.key]
        assert rec.split == clip.split
        assert rec.embedder == RELEASE_EMBEDDER
        np.testing.assert_array_equal(rec.y_mask, clip.y_mask.astype(np.int64))
        np.testing.assert_allclose(rec.y_true, clip.y_true, atol=1e-6)
        np.testing.assert_allclose(rec.embedding, dequantize(npz.X[row[rec.key]]), atol=1e-6)
    assert (tmp_path / params.RUN_INFO_FILE).is_file()
    assert json.loads((tmp_path / params.SUMMARY_FILE).read_text())["records"] == len(recs)


@pytest.mark.slow
def test_keys_missing_from_the_npz_are_a_dataset_error(release_like, tmp_path):
    import shutil

    from disco.errors import DatasetError
    from disco.train.features import write_release_records as write_release_features

    copy = tmp_path / "openmic-2018"
    shutil.copytree(release_like, copy)
    with np.load(copy / params.NPZ_FILE) as z:
        data = {k: z[k] for k in z.files}
    np.savez(copy / params.NPZ_FILE, **{k: v[1:] for k, v in data.items()})  # drop the first clip
    with pytest.raises(DatasetError, match="no features"):
        write_release_features(str(copy), str(tmp_path / "out"), seed=E2E_SEED, validation_fraction=0.2)


@pytest.mark.e2e
@pytest.mark.slow
def test_pipeline_release_branch_skips_the_audio_steps(release_like, tmp_path):
    from disco.runner import run_local

    result = run_local(
        str(release_like),
        tmp_path / "run",
        use_release_features=True,
        # Another preset with the default preset's learning rate asked for: that rate is trained
        # (not read as "the preset's", the pipeline's -1), the rest is the seed preset's.
        preset="seed",
        learning_rate=params.PRESETS[params.DEFAULT_PRESET].learning_rate,
        epochs=2,
        batch_size=8,
        seed=E2E_SEED,
        validation_fraction=0.3,
    )
    run_dir = Path(result.output_dir)
    features = step_output(run_dir, "import-release-features", "features")
    assert records.list_shards(features, params.EMBEDDING_PREFIX)
    for task in ("resample-audio", "augment-audio", "embed-audio"):
        assert not list((run_dir / "pipeline_root").glob(f"*/{task}")), f"{task} ran in the release branch"
    model_dir = step_output(run_dir, "train-classifier", "model")
    assert (model_dir / "model.keras").is_file()
    metrics = json.loads((run_dir / params.METRICS_FILE).read_text())
    assert 0.0 <= metrics["mAP"] <= 1.0
    # The report shows the fraction that carved the validation split (import-features'), not the
    # train step's default.
    report = (run_dir / params.REPORT_FILE).read_text()
    shown = report[report.index("validation fraction") :][:80]
    assert "0.3" in shown and "0.15" not in shown, shown
    # run_summary.json records the recipe the train step resolved, not only the flags as given.
    from disco.results import TrainResult

    training = json.loads((run_dir / params.RUN_SUMMARY_FILE).read_text())["training"]
    trained = TrainResult.read(model_dir)
    seed_preset = params.PRESETS["seed"]
    assert (training["model"], training["epochs"], training["batch_size"], training["learning_rate"]) == (
        trained.model,
        2,
        8,
        trained.learning_rate,
    )
    assert (trained.model, trained.learning_rate, trained.l2, trained.dropout) == (
        seed_preset.model,
        params.PRESETS[params.DEFAULT_PRESET].learning_rate,
        seed_preset.l2,
        seed_preset.dropout,
    )
