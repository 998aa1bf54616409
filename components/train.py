"""Train component: the Keras classifier over [frames, dim] embeddings, masked loss, early stopping."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output


def train_classifier(
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
    """Train on the features' train split, early-stop on validation, tune per-class thresholds."""
    from components import _runtime
    from disco.train import run_train

    _runtime.setup_logging()
    summary = run_train(
        features.path,
        model.path,
        model=model_type,
        batch_size=batch_size,
        epochs=epochs,
        learning_rate=learning_rate,
        dropout=dropout,
        l2=l2,
        patience=patience,
        seed=seed,
    )
    model.metadata["framework"] = "keras"
    model.metadata["model_type"] = model_type
    _runtime.describe(model, summary, keys=("epochs_run", "best_epoch", "frames", "dim", "embedder"))
    _runtime.log_metrics(
        history, {k: v for k, v in summary.to_dict().items() if k.startswith(("best_", "val_", "epochs"))}
    )


def make_component(image: str):
    return dsl.component(train_classifier, base_image=image, install_kfp_package=False)
