"""Train component: the Keras classifier over [frames, dim] embeddings, masked loss, early stopping."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output


def train_classifier(
    preset: str,
    model_type: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    dropout: float,
    l2: float,
    patience: int,
    seed: int,
    features: Input[Dataset],
    model: Output[Model],
    history: Output[Metrics],
):
    """Train the preset's recipe (a hyperparameter at ``params.FROM_PRESET`` / ``FROM_PRESET_MODEL``
    takes the preset's), early-stop on validation, tune per-class thresholds."""
    # The first statement, so locals() holds exactly the component's arguments; disco.steps maps
    # them to the run parameters (model_type is the run's model).
    arguments = dict(locals())
    from disco.steps import STEP, hyperparameters
    from disco.train import run_train
    from disco.train.train import preset_overrides
    from disco_components import _runtime

    _runtime.setup_logging()
    values = STEP["train"].run_values(arguments)
    summary = run_train(
        features.path, model.path, preset=preset, seed=seed, **preset_overrides(**hyperparameters(values))
    )
    model.metadata["framework"] = "keras"
    model.metadata["model_type"] = summary.chosen
    model.metadata["preset"] = preset
    _runtime.describe(model, summary, keys=("epochs_run", "best_epoch", "frames", "dim", "embedder"))
    _runtime.log_metrics(
        history, {k: v for k, v in summary.to_dict().items() if k.startswith(("best_", "val_", "epochs"))}
    )


def make_component(image: str):
    return dsl.component(train_classifier, base_image=image, install_kfp_package=False)
