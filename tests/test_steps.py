"""The library steps chained on a small generated dataset with a corrupt clip: resample (dead
letters), augment (train only), embed (musicnn, read back through tf.data), train, evaluate."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from disco import params
from disco.records import iter_resampled, list_shards

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    from disco.beam.augment import run_augment
    from disco.beam.embed import run_embed
    from disco.beam.resample import run_resample
    from disco.data.demo import generate_demo_dataset

    root = tmp_path_factory.mktemp("steps")
    data = root / "openmic-2018"
    demo = generate_demo_dataset(data, clips=24, seed=11, corrupt=1, workers=2)
    out = {"data": data, "demo": demo}
    out["resample"] = run_resample(str(data), str(root / "resampled"), seed=11, validation_fraction=0.2)
    out["augment"] = run_augment(str(root / "resampled"), str(root / "augmented"), copies=1, seed=11)
    out["embed"] = run_embed(
        [str(root / "resampled"), str(root / "augmented")],
        str(root / "embeddings"),
        embedder="musicnn",
        batch_size=16,
    )
    out["root"] = root
    return out


def test_resample_records_and_dead_letters(chain):
    s = chain["resample"]
    bad = chain["demo"]["corrupt"][0]["key"]
    assert s.failed == 1 and s.failures[0]["key"] == bad and s.failures[0]["reason"]
    assert s.ok == 23 and sum(s.splits.values()) == 23
    lines = (chain["root"] / "resampled" / params.FAILURES_FILE).read_text().splitlines()
    assert json.loads(lines[0])["key"] == bad
    recs = list(iter_resampled([str(chain["root"] / "resampled")]))
    assert len(recs) == 23 and bad not in {r.key for r in recs}
    assert all(r.pcm.shape == (params.CLIP_SAMPLES,) and r.sample_rate == params.SAMPLE_RATE for r in recs)
    assert all(r.original_duration == pytest.approx(10.0, abs=0.01) for r in recs)
    assert {r.split for r in recs} == set(params.SPLITS)
    # no temporary or partial shard is left under the output
    assert all(
        f.endswith(params.TFRECORD_SUFFIX) or f.endswith((".json", ".jsonl"))
        for f in os.listdir(chain["root"] / "resampled")
    )


def test_augment_only_train(chain):
    recs = list(iter_resampled([str(chain["root"] / "augmented")]))
    train = chain["resample"].splits["train"]
    assert len(recs) == train and {r.split for r in recs} == {"train"}
    assert {r.augmentation_id for r in recs} == {1}


def test_embed_records_read_back(chain):
    from disco.records import embedding_dataset

    s = chain["embed"]
    assert (s.embedder, s.frames, s.dim) == ("musicnn", 3, 753)
    assert s.records == 23 + chain["resample"].splits["train"]
    files = list_shards(str(chain["root"] / "embeddings"), params.EMBEDDING_PREFIX)
    ds = embedding_dataset(files, frames=3, dim=753, split="test")
    emb, y_true, y_mask, key = next(iter(ds.batch(100)))
    assert emb.shape[1:] == (3, 753) and np.isfinite(emb.numpy()).all()
    assert len(key) == chain["resample"].splits["test"]
    assert y_mask.numpy().sum(1).min() >= 2


def test_train_and_evaluate(chain, tmp_path):
    from disco.evaluate import run_evaluate
    from disco.train import run_train

    emb = str(chain["root"] / "embeddings")
    t = run_train(emb, str(tmp_path / "model"), model="attention", epochs=3, patience=2, seed=1)
    assert t.epochs_run <= 3 and 0.0 <= t.val_mAP <= 1.0
    assert t.augmented_train_examples == chain["resample"].splits["train"]
    e = run_evaluate(str(tmp_path / "model"), emb, str(tmp_path / "eval"), seed=1)
    metrics = json.loads((tmp_path / "eval" / params.METRICS_FILE).read_text())
    assert {"mAP", "f1_macro", "per_class", "random_forest"} <= set(metrics)
    assert set(metrics["per_class"]) == set(params.CLASSES)
    assert e.mAP == pytest.approx(metrics["mAP"], nan_ok=True)
    assert (tmp_path / "eval" / params.REPORT_FILE).stat().st_size > 10_000
    for step in ("model", "eval"):
        assert json.loads((tmp_path / step / params.RUN_INFO_FILE).read_text())["seed"] == 1


def test_export_matches_embedder_plus_classifier_and_predict(chain, tmp_path, capsys):
    import json as _json

    from disco.cli import main
    from disco.embedders import get_embedder
    from disco.train import run_train
    from disco.train.export import load_exported, run_export
    from disco.train.train import load_classifier

    emb_dir = str(chain["root"] / "embeddings")
    run_train(emb_dir, str(tmp_path / "model"), model="baseline", epochs=1, seed=2)
    run_export(str(tmp_path / "model"), str(tmp_path / "export"))
    serve, thresholds = load_exported(str(tmp_path / "export"))
    assert len(thresholds) == params.NUM_CLASSES
    wave = next(iter_resampled([str(chain["root"] / "resampled")])).waveform()[None]
    classifier, _ = load_classifier(str(tmp_path / "model"))
    expected = classifier.predict(get_embedder("musicnn", precision="float32").embed(wave), verbose=0)
    np.testing.assert_allclose(np.asarray(serve(wave)), expected, atol=1e-4)
    clip = next((chain["data"] / "audio").rglob("*.ogg"))
    assert main(["predict", str(tmp_path / "export"), str(clip), "--all", "--json"]) == 0
    out = _json.loads(capsys.readouterr().out)
    assert list(out["scores"]) == list(params.CLASSES) and len(out["windows"]) == 1  # a 10 s clip
    assert all(0.0 <= p <= 1.0 for p in out["scores"].values())
    assert out["scores"] == out["windows"][0]["scores"]


def test_export_refuses_a_frontend_other_than_the_features(chain, tmp_path):
    """features.json names the embedder version the records carry; export rebuilds that frontend
    or refuses: another musicnn layer, or VGGish without the PCA the features went through, would
    give 10x128 too and meaningless probabilities."""
    from disco.errors import ConfigError
    from disco.records import iter_embeddings
    from disco.train import run_train
    from disco.train.export import run_export
    from disco.train.features import frontend_of as _frontend

    emb_dir = str(chain["root"] / "embeddings")
    run_train(emb_dir, str(tmp_path / "model"), model="linear", seed=2)
    info_path = tmp_path / "model" / "features.json"
    info = json.loads(info_path.read_text())
    assert info["embedder_version"] == next(iter_embeddings([emb_dir])).embedder_version != ""
    other = info["embedder_version"].rsplit("/", 1)[0] + "/penultimate"
    info_path.write_text(json.dumps({**info, "embedder_version": other}))
    with pytest.raises(ConfigError, match="trained on .*penultimate.* features, but this export builds"):
        run_export(str(tmp_path / "model"), str(tmp_path / "export"))
    assert not (tmp_path / "export").exists()
    # The release's own features, or a features.json naming no version: refused, not exported.
    for trained in (
        {"embedder": params.RELEASE_EMBEDDER, "embedder_version": "openmic-2018.tgz:openmic-2018.npz"},
        {"embedder_version": ""},
    ):
        info_path.write_text(json.dumps({**info, **trained}))
        with pytest.raises(ConfigError, match="which export cannot rebuild from audio"):
            run_export(str(tmp_path / "model"), str(tmp_path / "export"), embedder="vggish")
        assert not (tmp_path / "export").exists()
    assert _frontend("https://tfhub.dev/google/vggish/1+pca") != _frontend("/ckpt/vggish_model.ckpt")
    assert _frontend("https://tfhub.dev/google/vggish/1+pca") == _frontend("/ckpt/vggish_model.ckpt+pca")


def test_evaluate_refuses_features_other_than_the_models(chain, tmp_path):
    """Scoring a model on features of another embedder, shape or frontend gives numbers that mean
    nothing; evaluate checks the features against the model's features.json first."""
    from disco.errors import ConfigError
    from disco.evaluate import run_evaluate
    from disco.train import run_train

    emb_dir = str(chain["root"] / "embeddings")
    run_train(emb_dir, str(tmp_path / "model"), model="linear", seed=2)
    info_path = tmp_path / "model" / "features.json"
    info = json.loads(info_path.read_text())
    layer = info["embedder_version"].rsplit("/", 1)[0] + "/penultimate"
    for other in (
        {"embedder_version": layer},
        {"embedder": params.RELEASE_EMBEDDER},
        {"dim": info["dim"] + 1},
    ):
        info_path.write_text(json.dumps({**info, **other}))
        with pytest.raises(
            ConfigError, match=r"model: trained on .* features .*, but .* holds musicnn features"
        ):
            run_evaluate(str(tmp_path / "model"), emb_dir, str(tmp_path / "eval"), rf_baseline=False)
        assert not (tmp_path / "eval").exists()
    info_path.write_text(json.dumps(info))
    run_evaluate(str(tmp_path / "model"), emb_dir, str(tmp_path / "eval"), rf_baseline=False)


def test_tune_mode_records_the_search(chain, tmp_path):
    import keras

    from disco.train import run_train
    from disco.train.train import load_classifier

    def tuned(name):
        emb = str(chain["root"] / "embeddings")
        return run_train(
            emb,
            str(tmp_path / name),
            model="baseline",
            epochs=2,
            patience=1,
            seed=3,
            tune=True,
            tune_trials=2,
        )

    s = tuned("tuned")
    assert 1e-5 <= s.l2 <= 1e-2 and 1e-4 <= s.learning_rate <= 3e-3
    # the model is trained with what the search found, not only recorded with it
    net, _ = load_classifier(str(tmp_path / "tuned"))
    rates = [layer.rate for layer in net.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [pytest.approx(s.dropout)]
    assert (tmp_path / "tuned" / "tuning").is_dir()
    # The same seed searches the same way: every trial scores the same and the same values win.
    again = tuned("again")
    assert (again.learning_rate, again.l2, again.dropout) == (s.learning_rate, s.l2, s.dropout)
    assert _trial_scores(tmp_path / "again") == _trial_scores(tmp_path / "tuned") != []


def _trial_scores(model_dir):
    return [
        json.loads(p.read_text())["score"]
        for p in sorted((model_dir / "tuning").glob("*/trial_*/trial.json"))
    ]


def test_cli_flags_override_the_preset_even_at_the_default_presets_values(chain, tmp_path):
    """`--preset seed --model auto --learning-rate 0.001`: both values are the default preset's, and
    both were asked for, so both are used (seed's own are baseline and 1e-4)."""
    from disco.cli import main

    seed = params.PRESETS["seed"]
    default = params.PRESETS[params.DEFAULT_PRESET]
    assert (seed.model, seed.learning_rate) != (default.model, default.learning_rate)
    out = tmp_path / "model"
    args = ["train", str(chain["root"] / "embeddings"), "--out", str(out), "--preset", "seed"]
    args += ["--model", default.model, "--learning-rate", str(default.learning_rate), "--epochs", "1"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["preset"], summary["model"], summary["learning_rate"]) == (
        "seed",
        default.model,
        default.learning_rate,
    )
    assert (summary["l2"], summary["dropout"]) == (seed.l2, seed.dropout)  # the rest: the preset's
