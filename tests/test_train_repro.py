"""Training repeats: the same seed gives the same model, another seed another one; and training on
the release's precomputed features (``openmic-2018.npz``) learns what the features carry.

tests/test_import_features.py covers the npz turned into embedding records and the pipeline's
release branch running; here `run_train` reads the npz directly and must learn a planted signal."""

from __future__ import annotations

import json
import random
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from helpers.train_fixtures import chance_map, make_release_features

from disco import params

pytestmark = pytest.mark.slow

HP = dict(
    model="attention", epochs=3, batch_size=16, learning_rate=1e-3, dropout=0.3, l2=1e-4, mixup_alpha=0.0
)
# Mixup (--mixup-alpha) trains through a tf.data path of its own, which must repeat too.
MIXUP = {**HP, "mixup_alpha": 0.4}


@contextmanager
def _another_thread_drawing_random_numbers():
    """What a Beam or Dask worker, or a client's retry jitter, does beside training in one process."""
    done = threading.Event()

    def draw():
        while not done.is_set():
            random.random()
            np.random.random()
            done.wait(0.0002)

    thread = threading.Thread(target=draw, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, openmic_sample) -> dict:
    from disco.train import run_train

    base = tmp_path_factory.mktemp("repro")
    data = make_release_features(base / "openmic-2018", openmic_sample, shift=0.6, seed=11)
    out = {"data": data, "base": base}
    for name, seed, hp in (
        ("a", 5, HP),
        ("a_again", 5, HP),
        ("b", 6, HP),
        ("m", 5, MIXUP),
        ("m_again", 5, MIXUP),
    ):
        out[name] = base / name
        out[f"{name}_summary"] = run_train(str(data), str(out[name]), seed=seed, **hp)
    out["a_busy"] = base / "a_busy"
    with _another_thread_drawing_random_numbers():
        run_train(str(data), str(out["a_busy"]), seed=5, **HP)
    return out


def _model(path: Path):
    from disco.train.train import load_classifier

    return load_classifier(str(path))[0]


def _test_split(data: Path):
    from disco.train.features import load_features

    return load_features(str(data)).splits[params.SPLIT_TEST]


def test_same_seed_same_model_and_metrics(trained):
    from disco.metrics import mean_ap

    a, again = _model(trained["a"]), _model(trained["a_again"])
    test = _test_split(trained["data"])
    pa, pb = a.predict(test.x, verbose=0), again.predict(test.x, verbose=0)
    np.testing.assert_allclose(pa, pb, rtol=0, atol=1e-6)
    assert mean_ap(test.y_true, pa, test.y_mask) == pytest.approx(
        mean_ap(test.y_true, pb, test.y_mask), abs=1e-6
    )
    assert trained["a_summary"]["val_mAP"] == pytest.approx(trained["a_again_summary"]["val_mAP"], abs=1e-6)
    for wa, wb in zip(a.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=1e-6)
    # The per-epoch record and the tuned thresholds repeat too.
    assert (trained["a"] / "history.csv").read_text() == (trained["a_again"] / "history.csv").read_text()
    assert json.loads((trained["a"] / "thresholds.json").read_text()) == json.loads(
        (trained["a_again"] / "thresholds.json").read_text()
    )


def test_same_seed_same_model_while_another_thread_draws_from_the_global_generators(trained):
    """Keras seeds an unseeded layer from Python's global generator: the training seed must fix every
    layer's seed however much another thread draws from it meanwhile."""
    a, busy = _model(trained["a"]), _model(trained["a_busy"])
    for wa, wb in zip(a.get_weights(), busy.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert (trained["a"] / "history.csv").read_text() == (trained["a_busy"] / "history.csv").read_text()


def test_deterministic_kernels_change_nothing_on_cpu(trained, tmp_path, monkeypatch):
    """Training asks TensorFlow for deterministic kernels (a GPU's sum in another order on every run
    otherwise); on CPU the same seed trains the same model with them as without."""
    import tensorflow as tf
    from tensorflow.python.framework import config  # the switch back off is not public

    from disco.train import run_train

    assert config.is_op_determinism_enabled()  # the fixture's training turned them on
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism", lambda: None)
    config.disable_op_determinism()
    try:
        run_train(str(trained["data"]), str(tmp_path / "free"), seed=5, **MIXUP)
    finally:
        config.enable_op_determinism()
    for wa, wb in zip(
        _model(trained["m"]).get_weights(), _model(tmp_path / "free").get_weights(), strict=True
    ):
        np.testing.assert_array_equal(wa, wb)


def test_same_seed_same_model_with_mixup(trained):
    m, again = _model(trained["m"]), _model(trained["m_again"])
    test = _test_split(trained["data"])
    np.testing.assert_allclose(
        m.predict(test.x, verbose=0), again.predict(test.x, verbose=0), rtol=0, atol=1e-6
    )
    assert (trained["m"] / "history.csv").read_text() == (trained["m_again"] / "history.csv").read_text()
    # ... and mixup did change the training: not the model trained without it.
    assert np.abs(m.predict(test.x, verbose=0) - _model(trained["a"]).predict(test.x, verbose=0)).max() > 1e-3


def test_another_seed_another_model(trained):
    a, b = _model(trained["a"]), _model(trained["b"])
    gaps = [
        float(np.abs(wa - wb).max())
        for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True)
        if wa.dtype.kind == "f" and wa.size > params.NUM_CLASSES * 2
    ]
    assert gaps and min(gaps) > 1e-3, gaps
    test = _test_split(trained["data"])
    assert np.abs(a.predict(test.x, verbose=0) - b.predict(test.x, verbose=0)).max() > 1e-3


def test_training_on_the_release_npz_learns_the_planted_signal(trained, tmp_path):
    from disco.evaluate import run_evaluate

    summary = trained["a_summary"]
    assert summary["feature_kind"] == "npz" and summary["embedder"] == params.RELEASE_EMBEDDER
    assert (summary["frames"], summary["dim"]) == (params.RELEASE_VGGISH_FRAMES, params.VGGISH_EMBEDDING_SIZE)
    # features.json names the release's features, so export can refuse them (tests/test_steps.py).
    features = json.loads((trained["a"] / "features.json").read_text())
    assert features["embedder_version"] == f"{params.RELEASE_TARBALL_NAME}:{params.NPZ_FILE}"
    # Every clip of split01 is used: train + validation + test = the partition files' keys.
    partitions = trained["data"] / params.PARTITIONS_DIR
    official = sum(len(p.read_text().split()) for p in partitions.glob("*.csv"))
    assert sum(summary["examples"].values()) == official

    result = run_evaluate(str(trained["a"]), str(trained["data"]), str(tmp_path / "eval"), rf_baseline=False)
    test = _test_split(trained["data"])
    chance = chance_map(test.y_true, test.y_mask)
    assert result["examples"] == len(test)
    assert result["mAP"] > chance + 0.25, (result["mAP"], chance)


def test_release_json_features_quantised_and_float_mixed_are_all_dequantised(tmp_path, openmic_sample):
    """A root whose vggish/*.json mix the release's bytes with float features: every clip ends in
    VGGish's [-2, 2] range, the byte clips dequantised one by one (stacking them with float clips first
    would promote them to float and skip the dequantisation)."""
    import helpers.openmic_fixtures as fx

    from disco.data.openmic import dequantize, vggish_relpath
    from disco.train.features import load_features

    root = fx.make_dataset(tmp_path / "openmic-2018", openmic_sample, n_train=12, n_test=4, n_artists=4)
    real = json.loads((openmic_sample / vggish_relpath("000046_3840")).read_text())["features"]
    expected = dequantize(np.asarray(real, np.uint8))
    keys = sorted(p.stem for p in (root / "audio").rglob("*.ogg"))
    for i, key in enumerate(keys):
        path = root / vggish_relpath(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"features": real if i % 2 else expected.tolist()}))
    fs = load_features(str(root))
    assert fs.kind == "vggish_json" and sum(len(s) for s in fs.splits.values()) == len(keys)
    for split in fs.splits.values():
        np.testing.assert_allclose(split.x, np.broadcast_to(expected, split.x.shape), atol=1e-6)
