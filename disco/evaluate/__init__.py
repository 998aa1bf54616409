"""Evaluation: masked metrics, the random-forest recipe, reports. ``run_evaluate`` is the step entry point."""

from disco.evaluate.evaluate import run_evaluate
from disco.evaluate.report import metrics_table

__all__ = ["metrics_table", "run_evaluate"]
