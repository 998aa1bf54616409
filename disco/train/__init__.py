"""Training: models, masked loss, the train step, export. ``run_train`` is the step entry point."""

from disco.train.train import run_train

__all__ = ["run_train"]
