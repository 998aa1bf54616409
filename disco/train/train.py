"""The train step: masked multi-label training with early stopping on validation mAP."""

from __future__ import annotations

import csv
import json
import logging
import os
import time

import numpy as np

from disco import params
from disco.errors import ConfigError
from disco.publish import publishes
from disco.results import TrainResult
from disco.runinfo import seed_everything

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
THRESHOLDS_FILE = "thresholds.json"
HISTORY_FILE = "history.csv"
FEATURES_INFO_FILE = "features.json"


def _callbacks(val, patience: int, out_dir: str):
    import keras

    from disco.evaluate.metrics import mean_ap

    class ValidationMAP(keras.callbacks.Callback):
        """Masked validation mAP each epoch; keeps the best weights and stops after `patience`
        epochs without improvement (Keras' EarlyStopping cannot see a metric computed this way).

        An epoch with the same mAP as the best and a lower validation loss also counts as an
        improvement: on a small validation split mAP often stops moving (the ranking of a few
        dozen clips is already right) while the model is still learning, and stopping at the first
        epoch of such a plateau kept undertrained weights."""

        def __init__(self):
            super().__init__()
            self.best = -np.inf
            self.best_loss = np.inf
            self.best_epoch = -1
            self.best_weights = None
            self.wait = 0

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            score = mean_ap(val.y_true, self.model.predict(val.x, verbose=0, batch_size=512), val.y_mask)
            logs["val_mAP"] = score
            loss = float(logs.get("val_loss", np.inf))
            improved = score > self.best + 1e-6 or (abs(score - self.best) <= 1e-6 and loss < self.best_loss)
            log.info(
                "epoch %3d  loss %.4f  val_loss %.4f  val_mAP %.4f%s",
                epoch + 1,
                logs.get("loss", np.nan),
                logs.get("val_loss", np.nan),
                score,
                "  *" if improved else "",
            )
            if improved:
                self.best, self.best_loss, self.best_epoch, self.wait = max(score, self.best), loss, epoch, 0
                self.best_weights = self.model.get_weights()
            else:
                self.wait += 1
                if self.wait >= patience:
                    self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return ValidationMAP(), keras.callbacks.TensorBoard(
        os.path.join(out_dir, "tensorboard"), write_graph=False
    )


def fit_model(
    fs,
    *,
    model: str,
    batch_size: int,
    epochs: int,
    learning_rate: float,
    dropout: float,
    l2: float,
    patience: int,
    out_dir: str,
    seed: int,
):
    import keras

    from disco.train.losses import MaskedBinaryCrossentropy, pack_targets
    from disco.train.models import build_model

    train, val = fs.splits[params.SPLIT_TRAIN], fs.splits[params.SPLIT_VALIDATION].originals()
    if len(train) == 0:
        raise ConfigError(f"{fs.source}: no training examples")
    if len(val) == 0:
        raise ConfigError(
            f"{fs.source}: no validation examples; lower nothing, add data or a validation fraction"
        )
    seed_everything(seed)
    flat = train.x.reshape(-1, fs.dim)
    net = build_model(
        model,
        frames=fs.frames,
        dim=fs.dim,
        dropout=dropout,
        l2=l2,
        mean=flat.mean(0),
        variance=flat.var(0) + 1e-6,
    )
    net.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=MaskedBinaryCrossentropy())
    best, tensorboard = _callbacks(val, patience, out_dir)
    history = net.fit(
        train.x,
        pack_targets(train.y_true, train.y_mask),
        batch_size=batch_size,
        epochs=epochs,
        validation_data=(val.x, pack_targets(val.y_true, val.y_mask)),
        shuffle=True,
        verbose=0,
        callbacks=[best, tensorboard],
    )
    return net, history.history, best


@publishes("train")
def run_train(
    features: str,
    out_dir: str,
    *,
    model: str = "baseline",
    batch_size: int = params.DEFAULT_BATCH_SIZE,
    epochs: int = params.DEFAULT_EPOCHS,
    learning_rate: float = params.DEFAULT_LEARNING_RATE,
    dropout: float = params.DEFAULT_DROPOUT,
    l2: float = params.DEFAULT_L2,
    patience: int = params.DEFAULT_PATIENCE,
    seed: int = params.DEFAULT_SEED,
    validation_fraction: float = params.DEFAULT_VALIDATION_FRACTION,
    tune: bool = False,
    tune_trials: int = 6,
) -> TrainResult:
    from disco.evaluate.metrics import mean_ap, tune_thresholds
    from disco.train.features import load_features

    start = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    fs = load_features(features, seed=seed, validation_fraction=validation_fraction)
    hp = {
        "model": model,
        "batch_size": batch_size,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "dropout": dropout,
        "l2": l2,
        "patience": patience,
    }
    if tune:
        from disco.train.tuning import tune_hyperparameters

        hp.update(tune_hyperparameters(fs, base=hp, out_dir=out_dir, seed=seed, trials=tune_trials))
    net, history, best = fit_model(fs, out_dir=out_dir, seed=seed, **hp)
    val = fs.splits[params.SPLIT_VALIDATION].originals()
    val_scores = net.predict(val.x, verbose=0, batch_size=512)
    thresholds = tune_thresholds(val.y_true, val_scores, val.y_mask)
    net.save(os.path.join(out_dir, MODEL_FILE))
    with open(os.path.join(out_dir, THRESHOLDS_FILE), "w") as fh:
        json.dump(
            {"classes": list(params.CLASSES), "thresholds": thresholds, "tuned_on": params.SPLIT_VALIDATION},
            fh,
            indent=2,
        )
    with open(os.path.join(out_dir, FEATURES_INFO_FILE), "w") as fh:
        json.dump(
            {
                "source": str(features),
                "kind": fs.kind,
                "embedder": fs.embedder,
                "frames": fs.frames,
                "dim": fs.dim,
            },
            fh,
            indent=2,
        )
    with open(os.path.join(out_dir, HISTORY_FILE), "w", newline="") as fh:
        keys = list(history)
        w = csv.writer(fh)
        w.writerow(["epoch", *keys])
        for i in range(len(history[keys[0]])):
            w.writerow([i + 1, *(history[k][i] for k in keys)])
    return TrainResult(
        **hp,
        features=str(features),
        feature_kind=fs.kind,
        embedder=fs.embedder,
        frames=fs.frames,
        dim=fs.dim,
        examples={k: len(v) for k, v in fs.splits.items()},
        augmented_train_examples=int(np.sum(fs.splits[params.SPLIT_TRAIN].augmentation_id > 0)),
        epochs_run=len(history.get("loss", [])),
        best_epoch=best.best_epoch + 1,
        val_mAP=float(mean_ap(val.y_true, val_scores, val.y_mask)),
        seconds=round(time.perf_counter() - start, 2),
    )
