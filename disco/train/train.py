"""The train step: masked multi-label training with early stopping on validation mAP."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import time
from dataclasses import asdict, replace
from functools import partial

import numpy as np

from disco import params
from disco.errors import ConfigError, DatasetError, DiscoError
from disco.publish import publishes
from disco.results import TrainResult
from disco.runinfo import seed_everything

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
THRESHOLDS_FILE = "thresholds.json"
HISTORY_FILE = "history.csv"
FEATURES_INFO_FILE = "features.json"


class TrainingDivergedError(DiscoError):
    """The training loss became NaN or infinite: the weights are garbage, nothing is saved."""


def resolve_preset(preset: str = params.DEFAULT_PRESET, **overrides) -> params.TrainPreset:
    """The named preset with every override that is not None applied, checked (the pipeline's
    "the preset's" values are dropped before, by :func:`preset_overrides`, so that -1 given here
    is a bad learning rate, not a request)."""
    if preset not in params.PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(params.PRESETS)}")
    unknown = set(overrides) - set(params.TrainPreset.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown training parameter(s): {', '.join(sorted(unknown))}")
    hp = replace(params.PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
    problems = []
    if hp.model not in params.MODELS:
        problems.append(f"model {hp.model!r} (choose one of {', '.join(params.MODELS)})")
    if not hp.learning_rate > 0 or not np.isfinite(hp.learning_rate):
        problems.append(f"learning rate {hp.learning_rate} (must be > 0)")
    if not 0 <= hp.dropout < 1:
        problems.append(f"dropout {hp.dropout} (must be in [0, 1))")
    if not hp.l2 >= 0:
        problems.append(f"L2 {hp.l2} (must be >= 0)")
    if not hp.mixup_alpha >= 0:
        problems.append(f"mixup alpha {hp.mixup_alpha} (must be >= 0; 0 turns mixup off)")
    for name in ("batch_size", "epochs", "patience", "ensemble"):
        if getattr(hp, name) < 1:
            problems.append(f"{name.replace('_', ' ')} {getattr(hp, name)} (must be >= 1)")
    if hp.refits < 0:
        problems.append(f"refits {hp.refits} (must be >= 0; 0 averages the fold networks)")
    if problems:
        raise ConfigError("invalid training parameters: " + "; ".join(problems))
    return hp


def network_hyperparameters(hp) -> dict:
    """A network's own hyperparameters (fit_network's keywords) from a preset or its dict: all
    its fields but the description and the refit count, which belong to cross-fitting."""
    fields = asdict(hp) if isinstance(hp, params.TrainPreset) else hp
    return {k: v for k, v in fields.items() if k not in ("description", "refits")}


def preset_overrides(**given) -> dict:
    """The pipeline's hyperparameters as overrides: those at ``params.FROM_PRESET`` (or
    ``FROM_PRESET_MODEL``) take the chosen preset's; every other value is used as given, even one
    equal to another preset's."""
    return {k: v for k, v in given.items() if not params.from_preset(v)}


class HeldOutStop:
    """Early stopping on held-out predictions, one rule for a single network's validation split and
    for cross-fitting's pooled out-of-fold predictions: masked mAP each epoch, the best epoch kept,
    a stop ``patience`` epochs after the last improvement. Not a loss: a training loss that
    includes the L2 penalty falls every epoch under strong regularisation whether or not the model
    gets better. The history's ``val_loss`` is the held-out predictions' unregularised masked
    cross-entropy, for single networks and cross-fitting alike."""

    def __init__(self, y_true, y_mask, *, patience: int, source: str, what: str = "validation"):
        from disco.train.losses import MaskedBinaryCrossentropy, pack_targets

        self.y_true, self.y_mask, self.patience = y_true, y_mask, patience
        self.best, self.best_epoch, self.wait = -np.inf, -1, 0
        self.improved = self.stop = False
        self.loss, self.targets = MaskedBinaryCrossentropy(), pack_targets(y_true, y_mask)
        # A few held-out clips (a small validation split, a tiny dataset) may have no class with both an observed positive
        # and an observed negative: mAP is then NaN every epoch, no epoch would count as best,
        # and training would end after `patience` epochs with arbitrary weights. Stop on the
        # unregularised masked cross-entropy there instead, which is defined.
        self.by_loss = not _scorable_labels(y_true, y_mask)
        if self.by_loss:
            log.warning(
                "%s: %s (%d clips) has no class with both an observed positive and an observed "
                "negative (mAP undefined): early stopping on its masked cross-entropy",
                source,
                what,
                len(y_true),
            )

    def update(self, epoch: int, scores, train_loss: float) -> dict:
        """Scores one epoch's held-out predictions; returns its history row (``loss``, ``val_loss``:
        the unregularised masked cross-entropy, ``val_mAP``) and sets ``improved`` / ``stop``."""
        from disco.metrics import mean_ap

        cross_entropy = float(self.loss(self.targets, scores))
        row = {
            "loss": float(train_loss),
            "val_loss": cross_entropy,
            "val_mAP": mean_ap(self.y_true, scores, self.y_mask),
        }
        score = -cross_entropy if self.by_loss else row["val_mAP"]
        self.improved = score > self.best + 1e-6
        log.info(
            "epoch %3d  loss %.4f  val_loss %.4f  val_mAP %.4f%s%s",
            epoch + 1,
            row["loss"],
            row["val_loss"],
            row["val_mAP"],
            f"  masked cross-entropy {cross_entropy:.4f}" if self.by_loss else "",
            "  *" if self.improved else "",
        )
        if self.improved:
            self.best, self.best_epoch, self.wait = score, epoch, 0
        else:
            self.wait += 1
            self.stop = self.wait >= self.patience
        return row


def _finite_loss(source: str):
    import keras

    class FiniteLoss(keras.callbacks.Callback):
        """Stops at the first batch whose loss is NaN or infinite, naming it and the features."""

        def __init__(self):
            super().__init__()
            self.epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            loss = float((logs or {}).get("loss", 0.0))
            if not np.isfinite(loss):
                raise TrainingDivergedError(
                    f"{source}: training loss is {loss} at epoch {self.epoch + 1}, batch {batch + 1}; "
                    "check the features for NaN/Inf or lower the learning rate (nothing saved)"
                )

    return FiniteLoss()


def _callbacks(val, patience: int, out_dir: str | None, source: str = "features"):
    import keras

    class ValidationMAP(keras.callbacks.Callback):
        """:class:`HeldOutStop` on the validation split each epoch (Keras' EarlyStopping cannot see
        a metric computed over observed entries only); restores the best weights at the end."""

        def __init__(self):
            super().__init__()
            self.rule = HeldOutStop(val.y_true, val.y_mask, patience=patience, source=source)
            self.best_weights = None

        @property
        def best_epoch(self) -> int:
            return self.rule.best_epoch

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            scores = network_scores(self.model, val.x)
            row = self.rule.update(epoch, scores, logs.get("loss", np.nan))
            # History, TensorBoard and history.csv read these logs after this callback.
            logs["val_loss"], logs["val_mAP"] = row["val_loss"], row["val_mAP"]
            if self.rule.improved:
                self.best_weights = self.model.get_weights()
            if self.rule.stop:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    class FixedEpochs(keras.callbacks.Callback):
        """No validation (a refit for a number of epochs chosen by cross-validation)."""

        def __init__(self):
            super().__init__()
            self.best_epoch = -1

        def on_epoch_end(self, epoch, logs=None):
            self.best_epoch = epoch
            log.info("epoch %3d  loss %.4f", epoch + 1, (logs or {}).get("loss", np.nan))

    callbacks = [ValidationMAP() if val is not None else FixedEpochs(), _finite_loss(source)]
    if out_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(out_dir, "tensorboard"), write_graph=False))
    return callbacks


def network_scores(net, x: np.ndarray) -> np.ndarray:
    """The network's probabilities for ``x`` (inference mode), by calling it directly on chunks of
    ``params.SCORE_CHUNK`` clips. Keras' ``predict`` builds a dataset and an iterator on every call,
    which costs more than the scoring itself when held-out clips are scored after every epoch."""
    k = net.output_shape[-1]
    chunks = [
        np.asarray(net(x[i : i + params.SCORE_CHUNK], training=False))
        for i in range(0, len(x), params.SCORE_CHUNK)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, k), np.float32)


class _TracingCountedTogether(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def quiet_retracing():
    """Drops TensorFlow's "excessive retracing" warning while several networks train in one
    process. Each network traces its training function once (a test checks), but TensorFlow counts
    the traces of every network's function together, so five networks read as retracing; the
    warning would tell the user of a problem that is not there."""
    logger = logging.getLogger("tensorflow")
    quiet = _TracingCountedTogether()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


class NetworkTraining:
    """A built and compiled network with its training data, trained an epoch at a time: cross-fitting
    trains its fold networks side by side, so that one epoch count is chosen for all of them on
    their pooled out-of-fold predictions (:mod:`disco.train.select`)."""

    def __init__(self, net, data: dict, source: str):
        self.net, self.data, self.finite = net, data, _finite_loss(source)

    def train_epoch(self, epoch: int) -> float:
        """Trains epoch ``epoch`` (0-based; the optimizer's state carries over); its mean loss."""
        history = self.net.fit(
            **self.data, initial_epoch=epoch, epochs=epoch + 1, verbose=0, callbacks=[self.finite]
        )
        return float(history.history["loss"][-1])


def prepare_network(
    train,
    *,
    model: str,
    batch_size: int,
    learning_rate,
    dropout: float,
    l2: float,
    seed: int,
    source: str = "features",
    mixup_alpha: float = 0.0,
    build=None,
    loss=None,
) -> NetworkTraining:
    """A network built and compiled for ``train`` (inputs standardised by its statistics, inside
    the model), with its training data: shuffled batches, mixed when ``mixup_alpha`` > 0. ``build``
    (``build_model``'s signature) and ``loss`` (a Keras loss over packed targets) replace the network
    and :class:`MaskedBinaryCrossentropy`: the seams through which bench/bench_ideas.py tries other
    networks and losses in this very loop."""
    import keras

    from disco.train.losses import MaskedBinaryCrossentropy, mixup_batches, pack_targets
    from disco.train.models import build_model

    _refuse_non_finite(train, "train", source)
    seed_everything(seed)
    frames, dim = train.x.shape[1:]
    flat = train.x.reshape(-1, dim)
    net = (build or build_model)(
        model,
        frames=frames,
        dim=dim,
        dropout=dropout,
        l2=l2,
        mean=flat.mean(0),
        variance=flat.var(0) + 1e-6,
        model_name=f"disco_{model}_seed{seed}",
        seed=seed,
    )
    net.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss or MaskedBinaryCrossentropy(),
        steps_per_execution=params.STEPS_PER_EXECUTION,
    )
    targets = pack_targets(train.y_true, train.y_mask)
    if mixup_alpha > 0:
        # Shuffled by the dataset itself (Keras would warn that its own shuffle does nothing).
        mixed = mixup_batches(train.x, targets, batch_size=batch_size, alpha=mixup_alpha, seed=seed)
        data = {"x": mixed, "shuffle": False}
    else:
        data = {"x": train.x, "y": targets, "batch_size": batch_size, "shuffle": True}
    return NetworkTraining(net, data, source)


def _refuse_non_finite(data, split: str, source: str) -> None:
    bad = np.flatnonzero(~np.isfinite(data.x).all(axis=(1, 2)))
    if len(bad):
        # A ReLU maps NaN to 0, so such features need not show in the loss: refuse them here.
        raise TrainingDivergedError(
            f"{source}: {len(bad)} {split} example(s) have NaN/Inf features, first {data.keys[bad[0]]}"
        )


def fit_network(
    train,
    val,
    *,
    epochs: int,
    patience: int,
    seed: int,
    out_dir: str | None = None,
    source: str = "features",
    ensemble: int = 1,
    **network,
):
    """One network (:func:`prepare_network`, whose keywords ``network`` holds) on ``train``,
    early-stopped on ``val`` by :class:`HeldOutStop` (None: exactly ``epochs`` epochs). ``ensemble``
    is the caller's business (fit_members). Returns the network, its history and the stopping
    callback (``best_epoch``, 0-based)."""
    if val is not None:
        _refuse_non_finite(val, "validation", source)
        if not (val.y_mask > 0).any():
            raise DatasetError(
                source, f"validation ({len(val)} clips) has no observed label to stop training on"
            )
    run = prepare_network(train, seed=seed, source=source, **network)
    callbacks = _callbacks(val, patience, out_dir, source)
    # No validation_data: Keras would run over the validation split a second time each epoch for
    # a loss that includes the L2 penalty; the stopping rule's own pass gives the unregularised one.
    history = run.net.fit(**run.data, epochs=epochs, verbose=0, callbacks=callbacks)
    return run.net, history.history, callbacks[0]


def _scorable_labels(y_true, y_mask) -> bool:
    """Whether any class has an observed positive and an observed negative (mAP is defined)."""
    observed = np.asarray(y_mask) > 0
    positive = np.asarray(y_true) >= params.POSITIVE_THRESHOLD
    return bool(((observed & positive).any(axis=0) & (observed & ~positive).any(axis=0)).any())


@quiet_retracing()
def fit_members(train, val, *, ensemble: int, seed: int, out_dir: str | None = None, **hp):
    """``ensemble`` networks (seeds seed, seed+1, ...) averaged into one Keras model; returns it,
    the first member's history and the members' median best epoch."""
    from disco.train.select import average_model

    members, epochs, history = [], [], {}
    for i in range(ensemble):
        net, hist, best = fit_network(train, val, seed=seed + i, out_dir=out_dir if i == 0 else None, **hp)
        members.append(net)
        epochs.append(best.best_epoch + 1)
        history = history or hist
    if len(members) == 1:
        return members[0], history, epochs[0]
    frames, dim = train.x.shape[1:]
    # Named by its first seed: a fold's ensemble is one member of the folds' average.
    return (
        average_model(members, frames=frames, dim=dim, name=f"disco_ensemble_seed{seed}"),
        history,
        int(np.median(epochs)),
    )


def _require_examples(fs, train, val) -> None:
    if len(train) == 0:
        raise ConfigError(f"{fs.source}: no training examples")
    if len(val) == 0:
        raise ConfigError(
            f"{fs.source}: no validation examples; lower nothing, add data or a validation fraction"
        )


@publishes("train")
def run_train(
    features: str,
    out_dir: str,
    *,
    preset: str = params.DEFAULT_PRESET,
    model: str | None = None,
    batch_size: int | None = None,
    epochs: int | None = None,
    learning_rate: float | None = None,
    dropout: float | None = None,
    l2: float | None = None,
    patience: int | None = None,
    ensemble: int | None = None,
    mixup_alpha: float | None = None,
    refits: int | None = None,
    seed: int = params.DEFAULT_SEED,
    validation_fraction: float = params.DEFAULT_VALIDATION_FRACTION,
    tune: bool = False,
    tune_trials: int = 6,
) -> TrainResult:
    """The train step: a masked multi-label classifier (sigmoid outputs, binary cross-entropy over
    observed entries only) on the train split. One network is early-stopped on validation mAP, with
    per-class decision thresholds tuned on validation; ``auto`` (the default preset's) chooses among
    its candidates, stops each fold network and tunes the thresholds on artist-grouped
    cross-fitting over train + validation instead (:mod:`disco.train.select`).

    Args:
        features: an embed step output, or a dataset root with the release's ``openmic-2018.npz``
            or ``vggish/*.json`` features.
        out_dir: where ``model.keras``, ``thresholds.json``, ``features.json``, the history,
            ``summary.json`` and ``run_info.json`` go.
        preset: a name of ``params.PRESETS``, the recipe the arguments below override.
        model: a name of ``params.MODELS`` (``auto``: candidates chosen by cross-fitting); None:
            the preset's.
        batch_size, epochs, learning_rate, dropout, l2, patience, ensemble, mixup_alpha: training
            hyperparameters (``patience``: epochs without validation progress before stopping;
            ``ensemble``: networks averaged, per fold under ``auto``; ``mixup_alpha``: mixup on
            the embeddings, 0 = off); None: the preset's.
        refits: under ``auto``, networks refitted on all of train + validation for the epoch
            count chosen on the fold networks' pooled out-of-fold mAP, and averaged (0: the fold
            networks are); None: the preset's.
        seed: seed of the split (release features) and of training.
        validation_fraction: validation share carved from train (release features only).
        tune: run a Keras Tuner search before the final fit.
        tune_trials: trials of that search.

    Returns:
        The typed result also written to ``summary.json``: the hyperparameters, ``embedder``, ``frames``,
        ``dim``, ``examples`` per split, ``epochs_run``, ``best_epoch``, ``val_mAP`` and timings.
    """
    from disco.metrics import mean_ap, tune_thresholds
    from disco.train.features import load_features

    start = time.perf_counter()
    chosen = resolve_preset(
        preset,
        model=model,
        batch_size=batch_size,
        epochs=epochs,
        learning_rate=learning_rate,
        dropout=dropout,
        l2=l2,
        patience=patience,
        ensemble=ensemble,
        mixup_alpha=mixup_alpha,
        refits=refits,
    )
    hp = {k: v for k, v in asdict(chosen).items() if k != "description"}
    if tune and hp["model"] not in params.NETWORKS:
        raise ConfigError(
            f"--tune searches a network's hyperparameters; pick one of {', '.join(params.NETWORKS)}"
        )
    fs = load_features(features, seed=seed, validation_fraction=validation_fraction)
    train = fs.splits[params.SPLIT_TRAIN]
    val = fs.splits[params.SPLIT_VALIDATION].originals()
    os.makedirs(out_dir, exist_ok=True)
    if tune:
        from disco.train.tuning import tune_hyperparameters

        hp.update(tune_hyperparameters(fs, base=hp, out_dir=out_dir, seed=seed, trials=tune_trials))
    # After tuning, so the networks train with what the search found (and the summary records).
    net_hp = network_hyperparameters(hp)
    selection = None
    if hp["model"] in params.NETWORKS:
        _require_examples(fs, train, val)
        net, history, best_epoch = fit_members(
            train, val, out_dir=out_dir, seed=seed, source=fs.source, **net_hp
        )
        held_scores = network_scores(net, val.x)
        held_true, held_mask = val.y_true, val.y_mask
    else:
        from disco.train import select

        if len(train) == 0:
            raise ConfigError(f"{fs.source}: no training examples")
        network = {**net_hp, "model": params.AUTO_CANDIDATES[-1]}
        kwargs = dict(
            network=network,
            out_dir=out_dir,
            seed=seed,
            prepare_network=partial(prepare_network, source=fs.source),
            refits=hp["refits"],
        )
        if hp["model"] == "linear":
            kwargs["only_linear"] = True
        picked = select.select_cross_fitted(fs, **kwargs)
        net, history, best_epoch = picked.model, picked.history, picked.best_epoch
        held_scores, held_true, held_mask = (
            picked.held_out_scores,
            picked.held_out_y_true,
            picked.held_out_y_mask,
        )
        selection = picked.selection
        selection.write(os.path.join(out_dir, select.SELECTION_FILE))
    bad = ~np.isfinite(held_scores) & (np.asarray(held_mask) > 0)
    if bad.any():
        raise TrainingDivergedError(
            f"{fs.source}: the model scores {int(bad.sum())} held-out entries NaN or infinite; no "
            "threshold can be placed (nothing saved): check the features or lower the learning rate"
        )
    thresholds = tune_thresholds(held_true, held_scores, held_mask)
    net.save(os.path.join(out_dir, MODEL_FILE))
    with open(os.path.join(out_dir, THRESHOLDS_FILE), "w") as fh:
        json.dump(
            {
                "classes": list(params.CLASSES),
                "thresholds": thresholds,
                "tuned_on": params.SPLIT_VALIDATION if selection is None else selection.method,
            },
            fh,
            indent=2,
        )
    with open(os.path.join(out_dir, FEATURES_INFO_FILE), "w") as fh:
        json.dump(
            {
                "source": str(features),
                "kind": fs.kind,
                "embedder": fs.embedder,
                "embedder_version": fs.embedder_version,
                "frames": fs.frames,
                "dim": fs.dim,
            },
            fh,
            indent=2,
        )
    with open(os.path.join(out_dir, HISTORY_FILE), "w", newline="") as fh:
        keys = list(history) or ["loss"]
        history = history or {"loss": []}
        w = csv.writer(fh)
        w.writerow(["epoch", *keys])
        for i in range(len(history[keys[0]])):
            w.writerow([i + 1, *(history[k][i] for k in keys)])
    return TrainResult(
        preset=preset,
        **hp,
        chosen=hp["model"] if selection is None else selection.chosen,
        selection=None if selection is None else selection.method,
        features=str(features),
        feature_kind=fs.kind,
        embedder=fs.embedder,
        frames=fs.frames,
        dim=fs.dim,
        examples={k: len(v) for k, v in fs.splits.items()},
        augmented_train_examples=int(np.sum(fs.splits[params.SPLIT_TRAIN].augmentation_id > 0)),
        epochs_run=len(history.get("loss", [])),
        best_epoch=best_epoch,
        val_mAP=float(mean_ap(held_true, held_scores, held_mask)),
        seconds=round(time.perf_counter() - start, 2),
    )


def load_classifier(model_dir: str):
    """The trained Keras classifier and its per-class thresholds from a train step's output."""
    import keras

    import disco.train.losses
    import disco.train.models  # noqa: F401
    from disco.inputs import read_thresholds
    from disco.publish import check_complete

    check_complete(model_dir)
    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.exists(path):
        raise ConfigError(f"{model_dir}: no {MODEL_FILE}; is this a train step output?")
    thresholds = read_thresholds(os.path.join(model_dir, THRESHOLDS_FILE))
    return keras.models.load_model(path), thresholds
