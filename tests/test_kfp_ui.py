"""What the KFP UI shows for an evaluation: the pooled confusion matrix and ROC curve (unit level),
then a real kfp.local run (SubprocessRunner, the release-features branch) whose evaluate step's
Metrics and ClassificationMetrics artifacts must be non-empty and equal to its metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from train_fixtures import make_release_features

from disco import params
from disco.evaluate.pooled import micro_confusion, micro_roc


def _toy():
    y_true = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    y_mask = np.array([[1, 1, 0], [1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=bool)
    scores = np.array([[0.9, 0.6, 0.1], [0.2, 0.3, 0.7], [0.4, 0.9, 0.2], [0.6, 0.1, 0.8]])
    return y_true, scores, y_mask


def test_micro_confusion_counts_observed_entries_at_each_class_threshold():
    y_true, scores, y_mask = _toy()
    conf = micro_confusion(y_true, scores, y_mask, [0.5, 0.5, 0.75], rule="r")
    # By hand, observed entries only (the masked-out 0.1 / 0.9 / ... never count):
    # class 0 (t .5): clips 0..3 -> TP, TN, FN, FP; class 1 (t .5): clips 0,1,3 -> FP, FN, TN;
    # class 2 (t .75): clips 1,2,3 -> TN (0.7 < .75), TN, TP.
    assert (conf.tp, conf.fp, conf.fn, conf.tn) == (2, 2, 2, 4)
    assert conf.tp + conf.fp + conf.fn + conf.tn == int(y_mask.sum())
    assert conf.matrix() == [[4, 2], [2, 2]]
    # A single threshold applies to every class.
    assert micro_confusion(y_true, scores, y_mask, 0.5, rule="r").fp == 3


def test_micro_roc_matches_sklearn_over_observed_entries_and_is_json():
    from sklearn.metrics import roc_curve

    y_true, scores, y_mask = _toy()
    roc = micro_roc(y_true, scores, y_mask)
    fpr, tpr, _ = roc_curve(y_true[y_mask] >= 0.5, scores[y_mask])
    assert roc.fpr == pytest.approx(fpr.tolist()) and roc.tpr == pytest.approx(tpr.tolist())
    assert all(np.isfinite(roc.thresholds)) and roc.thresholds[0] > scores.max()
    json.dumps(roc.__dict__, allow_nan=False)
    rng = np.random.default_rng(0)
    big = micro_roc(rng.random((3000, 20)) > 0.5, rng.random((3000, 20)), np.ones((3000, 20)), max_points=50)
    assert 2 < len(big.fpr) <= 50 and big.fpr[0] == 0.0 and big.fpr[-1] == 1.0
    assert micro_roc(np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 2))) is None


@pytest.mark.slow
def test_evaluate_step_publishes_metrics_json_to_the_kfp_ui(tmp_path, openmic_sample):
    from disco.runner import run_local

    data = make_release_features(tmp_path / "openmic-2018", openmic_sample, seed=3)
    run_dir = tmp_path / "run"
    run_local(str(data), run_dir, use_release_features=True, epochs=2, batch_size=16, seed=5, cache=False)
    result = json.loads((run_dir / params.METRICS_FILE).read_text())

    def artifact(name: str) -> dict:
        hits = sorted((run_dir / "pipeline_root").glob(f"*/evaluate-classifier*/{name}"))
        assert len(hits) == 1, hits
        return json.loads(hits[0].read_text())

    # Scalars: mAP, macro F1 and every defined per-class AP and F1, as metrics.json has them.
    scalars = artifact("metrics")
    assert scalars["mAP"] == pytest.approx(result["mAP"])
    assert scalars["f1_macro"] == pytest.approx(result["f1_macro"])
    assert scalars["f1_macro_tuned"] == pytest.approx(result["f1_macro_tuned"])
    defined = 0
    for name, row in result["per_class"].items():
        for key in ("ap", "f1"):
            if row[key] is None:
                assert f"{key}_{name}" not in scalars
            else:
                assert scalars[f"{key}_{name}"] == pytest.approx(row[key])
                defined += 1
    assert defined > 0

    # ClassificationMetrics: the pooled confusion matrix and ROC curve, non-empty, as recorded.
    ui = artifact("confusion")
    conf = result["confusion"]
    assert conf["tp"] + conf["fp"] + conf["fn"] + conf["tn"] == result["observed_entries"] > 0
    assert [a["displayName"] for a in ui["confusionMatrix"]["annotationSpecs"]] == list(
        params.CONFUSION_CATEGORIES
    )
    assert [r["row"] for r in ui["confusionMatrix"]["rows"]] == [
        [conf["tn"], conf["fp"]],
        [conf["fn"], conf["tp"]],
    ]
    roc = result["roc_micro"]
    points = ui["confidenceMetrics"]
    assert len(points) == len(roc["fpr"]) > 2
    assert [p["falsePositiveRate"] for p in points] == pytest.approx(roc["fpr"])
    assert [p["recall"] for p in points] == pytest.approx(roc["tpr"])
    assert [p["confidenceThreshold"] for p in points] == pytest.approx(roc["thresholds"])

    # The matrix is the model's decision rule (thresholds.json) applied to the scores evaluate saved.
    scores = np.load(_one(run_dir, "evaluate-classifier*/evaluation/test_scores.npz"))
    thresholds = json.loads(_one(run_dir, "train-classifier*/model/thresholds.json").read_text())
    mask = scores["y_mask"].astype(bool)
    decided = scores["scores"] >= np.asarray(thresholds["thresholds"])[None, :]
    truth = scores["y_true"] >= params.POSITIVE_THRESHOLD
    assert int(np.sum(decided[mask] & truth[mask])) == conf["tp"]
    assert int(np.sum(decided[mask] & ~truth[mask])) == conf["fp"]


def _one(run_dir: Path, pattern: str) -> Path:
    hits = sorted((run_dir / "pipeline_root").glob(f"*/{pattern}"))
    assert len(hits) == 1, hits
    return hits[0]
