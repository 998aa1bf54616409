"""Evaluation: masked metrics, the random-forest recipe, reports. ``run_evaluate`` is the step entry point."""

from disco.evaluate.evaluate import metrics_table, run_evaluate

__all__ = ["metrics_table", "run_evaluate"]
