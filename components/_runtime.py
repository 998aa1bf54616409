"""Helpers the component bodies import at run time (inside the container or kfp.local's subprocess).

A lightweight KFP component ships only its own function's source in the compiled YAML, so anything
shared between components has to be importable from the image: this module is part of the installed
``disco`` distribution (``components*`` is packaged), which is why the bodies import it instead of
repeating it. Nothing here imports TensorFlow or Beam.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
from collections.abc import Iterable, Mapping
from typing import Any

from disco import params
from disco.results import ResampleResult, StepResult

log = logging.getLogger("disco.components")

_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging() -> None:
    """INFO logging for the step's own loggers; under the local runner, progress, result and error
    also go to its events file (disco.stepevents), which is what the runner reads."""
    from disco import stepevents

    root = logging.getLogger()
    if not any(getattr(h, "_disco_component", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_LOG_FORMAT, datefmt="%H:%M:%S"))
        handler._disco_component = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    stepevents.install()


def split_args(options: str) -> list[str]:
    """Beam pass-through options arrive as one shell-quoted string (a KFP parameter cannot be a
    free-form argv list on every backend)."""
    return shlex.split(options or "")


def has_shards(directory: str, prefix: str) -> bool:
    from disco import records

    return bool(records.list_shards(directory, prefix))


def describe(artifact: Any, summary: StepResult, *, keys: Iterable[str]) -> None:
    """Copy the summary's headline numbers onto the artifact's metadata, so the KFP UI shows them
    without opening the files."""
    values = summary.to_dict()
    for key in keys:
        value = values.get(key)
        if isinstance(value, float) and value != value:
            continue  # NaN cannot be stored in KFP metadata (JSON)
        if isinstance(value, (int, float, str, bool)):
            artifact.metadata[key] = value
        elif isinstance(value, Mapping):
            artifact.metadata[key] = {
                str(k): v for k, v in value.items() if isinstance(v, (int, float, str, bool))
            }


def log_metrics(metrics: Any, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if value != value or value in (float("inf"), float("-inf")):
            # KFP metadata is JSON (protobuf Struct): an undefined metric (e.g. the AP of a class
            # with no observed positive) is left out rather than failing the step.
            continue
        metrics.log_metric(name, float(value))
    persist(metrics)


def persist(artifact: Any) -> None:
    """Write a metrics-type artifact's metadata to its file. KFP keeps Metrics and
    ClassificationMetrics in metadata only, but kfp.local's task cache treats an output whose file
    does not exist as a miss, so without this no step with a metrics output would ever be reused."""
    os.makedirs(os.path.dirname(artifact.path) or ".", exist_ok=True)
    with open(artifact.path, "w", encoding="utf-8") as fh:
        json.dump(artifact.metadata, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")


def failures_markdown(summary: ResampleResult, *, limit: int = 50) -> str:
    failures = summary.failures
    lines = [
        "# Resample failures",
        "",
        f"{summary.ok} clips resampled, {summary.failed} failed (dead letters in `{params.FAILURES_FILE}`).",
        "",
    ]
    if failures:
        lines += ["| key | path | reason |", "| --- | --- | --- |"]
        for item in failures[:limit]:
            reason = str(item.get("reason", "")).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {item.get('key', '')} | {item.get('path', '')} | {reason} |")
        if len(failures) > limit:
            lines.append(f"\n... and {len(failures) - limit} more.")
    return "\n".join(lines) + "\n"


def metrics_markdown(metrics: Mapping[str, Any]) -> str:
    """The test-set table for the KFP UI's Markdown artifact (disco's one metrics renderer)."""
    from disco.evaluate.report import headline, metrics_table

    return f"# Test metrics (official split01 test)\n\n**{headline(metrics)}**\n\n{metrics_table(metrics, 'markdown')}"


def confusion_counts(metrics: Mapping[str, Any]) -> list[list[int]] | None:
    """The micro-averaged 2x2 matrix evaluate recorded in metrics.json (rows truth absent/present,
    columns decision absent/present, at the model's decision rule); None when it recorded none."""
    conf = metrics.get("confusion")
    if not isinstance(conf, Mapping) or not all(k in conf for k in ("tp", "fp", "fn", "tn")):
        return None
    return [[int(conf["tn"]), int(conf["fp"])], [int(conf["fn"]), int(conf["tp"])]]


def headline_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The scalars the KFP UI lists for an evaluation: mAP, macro F1, per-class AP and F1, the
    reference recipes' mAP. Values are metrics.json's own (undefined ones are dropped by log_metrics)."""
    headline: dict[str, Any] = {
        "mAP": metrics.get("mAP"),
        "f1_macro": metrics.get("f1_macro"),
        # Macro F1 at the model's own thresholds, the rule the confusion matrix uses.
        "f1_macro_tuned": metrics.get("f1_macro_tuned"),
    }
    for name, row in (metrics.get("per_class") or {}).items():
        headline[f"ap_{name}"] = row.get("ap")
        headline[f"f1_{name}"] = row.get("f1")
    rf = metrics.get("random_forest") or {}
    if "mAP" in rf:
        headline["rf_mAP"] = rf["mAP"]
        headline["rf_f1_macro"] = rf.get("f1_macro")
    lr = metrics.get("logistic_regression") or {}
    if "mAP" in lr:
        headline["lr_mAP"] = lr["mAP"]
    return headline


def log_classification(artifact: Any, metrics: Mapping[str, Any]) -> None:
    """metrics.json's pooled confusion matrix and ROC curve onto a ClassificationMetrics artifact
    (the KFP UI draws both), then persisted. Copied, not recomputed: evaluate owns the decision rule."""
    matrix = confusion_counts(metrics)
    if matrix is not None:
        artifact.log_confusion_matrix(list(params.CONFUSION_CATEGORIES), matrix)
    roc = metrics.get("roc_micro")
    if isinstance(roc, Mapping):
        artifact.log_roc_curve(list(roc["fpr"]), list(roc["tpr"]), list(roc["thresholds"]))
    persist(artifact)


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def copy_file(src: str, dst: str) -> None:
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    shutil.copyfile(src, dst)


def empty_step(out_dir: str, step: str, *, parameters: Mapping[str, Any], seed: int | None) -> StepResult:
    """Outputs of a step that had nothing to do (augmentation with 0 copies): still a directory
    with summary.json and run_info.json, so downstream steps and readers see the same layout. The
    summary is the step's result type (disco.steps) at its defaults, with the seed."""
    from disco import stepevents
    from disco.publish import Staging
    from disco.runinfo import write_run_info
    from disco.steps import STEP

    summary = STEP[step].result.from_dict({"seed": seed})

    # Published like any step output (an empty manifest), but without finish_step's check that
    # refuses an empty output: here empty is what was asked for.
    with Staging(out_dir, step=summary.step) as stage:
        write_run_info(stage.path, step=summary.step, parameters=parameters, seed=seed)
        summary.write(stage.path)
        stage.write_manifest(parameters)
        stage.publish()
    stepevents.result(summary.step, out_dir, summary.summary_line())
    return summary
