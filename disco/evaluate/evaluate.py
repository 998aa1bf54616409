"""The evaluate step: test-split metrics over observed entries for the trained model, next to the
random-forest recipe, written as metrics.json, an HTML report and a Markdown summary."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict

import numpy as np

from disco import params
from disco.errors import ConfigError
from disco.publish import publishes
from disco.results import EvaluateResult, TrainResult

log = logging.getLogger(__name__)

SCORES_FILE = "test_scores.npz"


@publishes("evaluate")
def run_evaluate(
    model_dir: str,
    features: str,
    out_dir: str,
    *,
    rf_baseline: bool = True,
    seed: int = params.DEFAULT_SEED,
    validation_fraction: float = params.DEFAULT_VALIDATION_FRACTION,
) -> EvaluateResult:
    """The evaluate step: the trained classifier scored on the official split01 test split, over
    observed (``y_mask``) entries only, beside the random-forest and logistic-regression baselines.

    Args:
        model_dir: a train step output.
        features: the features the model was trained on (their test split is scored).
        out_dir: where ``metrics.json``, ``report.html``, the test scores, ``summary.json`` and
            ``run_info.json`` go.
        rf_baseline: also fit and score the baselines on the same features.
        seed: seed of the baselines and of the validation split (release features).
        validation_fraction: validation share carved from train (release features only).

    Returns:
        The typed result also written to ``summary.json``: test ``mAP``, ``f1_macro``, the
        baselines' mAP and timings; ``metrics.json`` holds the per-class table.
    """
    from disco.evaluate.baseline import full_train, logistic_regression_reference, random_forest_scores
    from disco.evaluate.report import write_reports
    from disco.metrics import classification_report
    from disco.train.features import check_trained_on, load_features
    from disco.train.select import SELECTION_FILE, Selection
    from disco.train.train import FEATURES_INFO_FILE, load_classifier

    start = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    fs = load_features(features, seed=seed, validation_fraction=validation_fraction)
    test = fs.splits[params.SPLIT_TEST].originals()
    if len(test) == 0:
        raise ConfigError(f"{features}: no test examples")
    info_path = os.path.join(model_dir, FEATURES_INFO_FILE)
    if os.path.exists(info_path):  # a model folder made by hand may have none
        with open(info_path) as fh:
            check_trained_on(json.load(fh), fs, model_dir)
    net, thresholds = load_classifier(model_dir)
    scores = net.predict(test.x, verbose=0, batch_size=512)
    metrics = classification_report(test.y_true, scores, test.y_mask, thresholds=thresholds)
    metrics["split"] = params.SPLIT_TEST
    metrics["examples"] = len(test)
    metrics["observed_entries"] = int(test.y_mask.sum())
    metrics.update(_pooled_views(test.y_true, scores, test.y_mask, thresholds))
    # A model folder made by hand (not by disco train) has no summary; its model is then unnamed.
    has_summary = os.path.exists(os.path.join(model_dir, params.SUMMARY_FILE))
    train_summary = TrainResult.read(model_dir).to_dict() if has_summary else {}
    metrics["model"] = train_summary.get("chosen") or train_summary.get("model")
    metrics["preset"] = train_summary.get("preset")
    selection_path = os.path.join(model_dir, SELECTION_FILE)
    if os.path.exists(selection_path):
        metrics["selection"] = asdict(Selection.read(selection_path))
    metrics["embedder"] = fs.embedder
    if rf_baseline:
        train = full_train(fs)
        rf_scores = random_forest_scores(train, test, seed=seed)
        metrics["random_forest"] = classification_report(test.y_true, rf_scores, test.y_mask)
        metrics["random_forest"]["trained_on"] = len(train)
        lr_scores, lr_c = logistic_regression_reference(train, test, seed=seed)
        metrics["logistic_regression"] = classification_report(test.y_true, lr_scores, test.y_mask)
        metrics["logistic_regression"].update(C=lr_c, trained_on=len(train))
    else:
        rf_scores = None
    np.savez_compressed(
        os.path.join(out_dir, SCORES_FILE),
        keys=test.keys,
        scores=scores,
        y_true=test.y_true,
        y_mask=test.y_mask,
        **({"rf_scores": rf_scores} if rf_scores is not None else {}),
    )
    with open(os.path.join(out_dir, params.METRICS_FILE), "w") as fh:
        json.dump(metrics, fh, indent=2)
    write_reports(
        out_dir,
        metrics=metrics,
        y_true=test.y_true,
        y_mask=test.y_mask,
        scores=scores,
        keys=test.keys,
        model_dir=model_dir,
        features=features,
        evaluate_seconds=time.perf_counter() - start,
    )
    return EvaluateResult(
        mAP=metrics["mAP"],
        f1_macro=metrics["f1_macro"],
        f1_macro_tuned=metrics.get("f1_macro_tuned"),
        rf_mAP=metrics.get("random_forest", {}).get("mAP"),
        lr_mAP=metrics.get("logistic_regression", {}).get("mAP"),
        examples=len(test),
        seconds=round(time.perf_counter() - start, 2),
    )


def _pooled_views(y_true, scores, y_mask, thresholds) -> dict:
    """metrics.json's micro-averaged confusion (at the model's own thresholds, thresholds.json) and
    ROC curve: what the KFP UI's ClassificationMetrics draws, recorded here so the component only
    copies them."""
    from dataclasses import asdict

    from disco.evaluate.pooled import micro_confusion, micro_roc
    from disco.train.train import THRESHOLDS_FILE

    rule = f"score >= per-class threshold ({THRESHOLDS_FILE})"
    roc = micro_roc(y_true, scores, y_mask)
    return {
        "confusion": asdict(micro_confusion(y_true, scores, y_mask, thresholds, rule=rule)),
        "roc_micro": asdict(roc) if roc is not None else None,
    }
