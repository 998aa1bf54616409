"""Evaluate component: per-class AP / F1, mAP on the official test split, RF baseline, HTML report."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output


def evaluate_classifier(
    seed: int,
    model: Input[Model],
    features: Input[Dataset],
    evaluation: Output[Dataset],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[HTML],
    table: Output[Markdown],
) -> NamedTuple("EvaluateOutputs", [("mAP", float), ("f1_macro", float), ("evaluation_uri", str)]):
    """Score the test split (masked entries only) and publish metrics, matrix, table and report."""
    import os
    from collections import namedtuple

    from disco import params
    from disco.evaluate import run_evaluate
    from disco_components import _runtime

    _runtime.setup_logging()
    summary = run_evaluate(model.path, features.path, evaluation.path, seed=seed)
    result = _runtime.read_json(os.path.join(evaluation.path, params.METRICS_FILE))
    headline = {"mAP": result.get("mAP"), "f1_macro": result.get("f1_macro")}
    for name, row in (result.get("per_class") or {}).items():
        headline[f"ap_{name}"] = row.get("ap")
        headline[f"f1_{name}"] = row.get("f1")
    rf = result.get("random_forest") or {}
    if "mAP" in rf:
        headline["rf_mAP"] = rf["mAP"]
        headline["rf_f1_macro"] = rf.get("f1_macro")
    lr = result.get("logistic_regression") or {}
    if "mAP" in lr:
        headline["lr_mAP"] = lr["mAP"]
    _runtime.log_metrics(metrics, headline)
    matrix = _runtime.confusion_counts(result)
    if matrix is not None:
        # Multi-label: one 2x2 matrix pooled over every annotated (class, clip) test entry.
        confusion.log_confusion_matrix(["absent", "present"], matrix)
    _runtime.persist(confusion)
    report_src = os.path.join(evaluation.path, params.REPORT_FILE)
    if os.path.exists(report_src):
        _runtime.copy_file(report_src, report.path)
    else:
        with open(report.path, "w", encoding="utf-8") as fh:
            fh.write("<html><body><p>evaluate wrote no report.html</p></body></html>\n")
    with open(table.path, "w", encoding="utf-8") as fh:
        fh.write(_runtime.metrics_markdown(result))
    _runtime.describe(evaluation, summary, keys=("mAP", "f1_macro"))
    outputs = namedtuple("EvaluateOutputs", ["mAP", "f1_macro", "evaluation_uri"])
    return outputs(
        float(result.get("mAP", float("nan"))), float(result.get("f1_macro", float("nan"))), evaluation.uri
    )


def make_component(image: str):
    return dsl.component(evaluate_classifier, base_image=image, install_kfp_package=False)
