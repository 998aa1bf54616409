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

log = logging.getLogger("disco.components")

_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging() -> None:
    """INFO logging for the step's own loggers, in the format the local runner filters on."""
    root = logging.getLogger()
    if not any(getattr(h, "_disco_component", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_LOG_FORMAT, datefmt="%H:%M:%S"))
        handler._disco_component = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def split_args(options: str) -> list[str]:
    """Beam pass-through options arrive as one shell-quoted string (a KFP parameter cannot be a
    free-form argv list on every backend)."""
    return shlex.split(options or "")


def has_shards(directory: str, prefix: str) -> bool:
    from disco import records

    return bool(records.list_shards(directory, prefix))


def describe(artifact: Any, summary: Mapping[str, Any], *, keys: Iterable[str]) -> None:
    """Copy the summary's headline numbers onto the artifact's metadata, so the KFP UI shows them
    without opening the files."""
    for key in keys:
        value = summary.get(key)
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


def failures_markdown(summary: Mapping[str, Any], *, limit: int = 50) -> str:
    failures = list(summary.get("failures") or [])
    lines = [
        "# Resample failures",
        "",
        f"{summary.get('ok', 0)} clips resampled, {summary.get('failed', len(failures))} failed "
        f"(dead letters in `{params.FAILURES_FILE}`).",
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


def confusion_counts(metrics: Mapping[str, Any]) -> list[list[float]] | None:
    """Micro-averaged 2x2 confusion matrix over the annotated (masked-in) test entries, when
    evaluate recorded the counts; None otherwise (the UI then simply has no matrix)."""
    conf = metrics.get("confusion")
    if isinstance(conf, Mapping) and all(k in conf for k in ("tp", "fp", "fn", "tn")):
        return [[float(conf["tn"]), float(conf["fp"])], [float(conf["fn"]), float(conf["tp"])]]
    totals = {"tp": 0.0, "fp": 0.0, "fn": 0.0, "tn": 0.0}
    for row in (metrics.get("per_class") or {}).values():
        if not all(k in row for k in ("tp", "fp", "fn", "tn")):
            return None
        for k in totals:
            totals[k] += float(row[k])
    if not metrics.get("per_class"):
        return None
    return [[totals["tn"], totals["fp"]], [totals["fn"], totals["tp"]]]


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def copy_file(src: str, dst: str) -> None:
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    shutil.copyfile(src, dst)


def empty_step(
    out_dir: str, *, step: str, parameters: Mapping[str, Any], seed: int | None, summary: dict
) -> dict:
    """Outputs of a step that had nothing to do (augmentation with 0 copies): still a directory
    with summary.json and run_info.json, so downstream steps and readers see the same layout."""
    from disco.runinfo import write_run_info

    os.makedirs(out_dir, exist_ok=True)
    write_run_info(out_dir, step=step, parameters=parameters, seed=seed)
    with open(os.path.join(out_dir, params.SUMMARY_FILE), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return summary
