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

    from components import _runtime
    from disco import params
    from disco.evaluate import run_evaluate

    _runtime.setup_logging()
    summary = run_evaluate(model.path, features.path, evaluation.path, seed=seed)
    result = _runtime.read_json(os.path.join(evaluation.path, params.METRICS_FILE))
    # The UI's views are metrics.json's own numbers: scalars (mAP, per-class AP and F1), the pooled
    # confusion matrix at the model's decision rule and the pooled ROC curve.
    _runtime.log_metrics(metrics, _runtime.headline_metrics(result))
    _runtime.log_classification(confusion, result)
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
