"""Model selection for ``--model auto``: train the candidates, keep what held-out data says is best.

Candidates: the per-class logistic regression (C on a grid), the network (``AUTO_CANDIDATES``),
and their average, all scored by cross-fitting (:func:`select_cross_fitted`): out-of-fold
predictions over every training clip, whatever the data's size. One validation split cannot do
this job well: a validation split of a few hundred clips holds too few positives of most classes to
rank candidates or to place a decision threshold. The per-class thresholds are tuned on the same
out-of-fold predictions that chose the winner, and the record of what was tried
(``selection.json``) is written beside the model.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from disco import params
from disco.errors import ConfigError
from disco.train.train import quiet_retracing

log = logging.getLogger(__name__)

SELECTION_FILE = "selection.json"
AVERAGE = "average"


@dataclass
class CandidateScore:
    name: str  # "linear", a network name, or "average"
    val_mAP: float  # held-out mAP: out-of-fold under cross-fitting
    setting: str  # what was fitted, e.g. "C=0.03" or "attention, best epoch 12"


@dataclass
class Selection:
    method: str  # "cross-fitting" (older models: "validation split" | "k-fold cross-validation")
    folds: int  # 0 for the validation split
    held_out_examples: int
    candidates: list[CandidateScore] = field(default_factory=list)
    chosen: str = ""
    chosen_val_mAP: float = float("nan")

    def write(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(asdict(self), fh, indent=2)
            fh.write("\n")

    @classmethod
    def read(cls, path: str) -> Selection:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
        raw["candidates"] = [CandidateScore(**c) for c in raw.get("candidates", [])]
        return cls(**raw)


@dataclass
class Selected:
    model: object  # keras.Model: what model.keras holds
    held_out_scores: np.ndarray  # the winner's predictions on the held-out examples
    held_out_y_true: np.ndarray
    held_out_y_mask: np.ndarray
    selection: Selection
    best_epoch: int  # the network's (0 when the linear model alone was chosen)
    history: dict


def average_model(members, *, frames: int, dim: int, name: str = "disco_average"):
    """One Keras model averaging the members' probabilities. ``name`` must differ between averages
    that end up inside one model (Keras refuses two layers of one name)."""
    import keras
    from keras import layers

    inputs = keras.Input((frames, dim), name="embedding")
    outputs = layers.Average(name="probabilities")([m(inputs) for m in members])
    return keras.Model(inputs, outputs, name=name)


def _pick(scored: dict[str, float]) -> str:
    # Ties go to the simpler candidate (the order of the dict: linear, network, average).
    return max(scored, key=lambda k: scored[k] - 1e-9 * list(scored).index(k))


@quiet_retracing()
def select_cross_fitted(
    fs,
    *,
    network: dict,
    out_dir: str,
    seed: int,
    prepare_network,
    only_linear: bool = False,
    folds: int = params.SELECTION_FOLDS,
    refits: int = 0,
) -> Selected:
    """Cross-fitting: ``folds`` grouped folds over train + validation (by artist where the features
    know it, else by recording: ``SplitData.groups``). Per fold, the regression (along the C path)
    and the network are fitted on the other folds and predict this fold; the candidates are ranked
    by those out-of-fold predictions, which cover every training clip. Both choose their setting
    on the pooled out-of-fold predictions, never on one fold: one C for all folds, and one epoch
    count for all fold networks, which train side by side (:func:`_fit_folds`). When a network is
    kept (alone or averaged with the regression), it is the average of ``refits`` networks refitted
    on all of the data for that epoch count (seeds apart from the folds'); with ``refits`` 0, the
    average of the fold networks themselves (each has seen (folds - 1) / folds of the data). The
    regression is refitted on all of it (seconds).

    ``network`` holds the network's hyperparameters: ``epochs`` (at most), ``patience`` (epochs
    without a better pooled out-of-fold mAP before stopping), ``ensemble`` (networks per fold) and
    ``prepare_network``'s keywords; ``prepare_network`` is :func:`disco.train.train.prepare_network`
    or a variant of it (bench/bench_ideas.py)."""
    from disco.metrics import mean_ap
    from disco.train.features import concat_splits
    from disco.train.linear import C_GRID, fit_linear, group_folds, keras_linear, past_the_peak

    pool = concat_splits([fs.splits[params.SPLIT_TRAIN], fs.splits[params.SPLIT_VALIDATION]])
    originals = pool.originals()
    if len(originals) == 0:
        raise ConfigError(f"{fs.source}: no training examples")
    folds = max(2, min(folds, len(np.unique(originals.groups))))
    fold_of_group = dict(zip(originals.groups, group_folds(originals.keys, folds, seed, originals.groups)))
    fold = np.array([fold_of_group.get(g, -1) for g in pool.groups])
    partner_fold = np.array([fold_of_group.get(g, -1) if g else -1 for g in pool.partner_groups])
    held_fold = fold[pool.augmentation_id == 0]
    n, k = len(originals), params.NUM_CLASSES
    # Augmented copies of a held-out clip, and mixtures with one as partner, stay out of that
    # fold's training.
    fit_parts = [pool.subset((fold != f) & (partner_fold != f)) for f in range(folds)]
    held_parts = [originals.subset(held_fold == f) for f in range(folds)]
    lin_oof: dict[float, np.ndarray] = {}
    previous = [None] * folds
    path = []
    for c in C_GRID:
        # Ascending C, each fold warm-started from its previous fit; stop past the peak.
        lin_oof[c] = np.zeros((n, k))
        for f in range(folds):
            part = fit_parts[f]
            previous[f] = fit_linear(part.x, part.y_true, part.y_mask, c=c, init=previous[f])
            lin_oof[c][held_fold == f] = previous[f].predict(held_parts[f].x)
        path.append(mean_ap(originals.y_true, lin_oof[c], originals.y_mask))
        log.info("select: linear C=%g out-of-fold mAP %.4f", c, path[-1])
        if past_the_peak(path):
            break
    lin_scores = dict(zip(lin_oof, path))
    best_c = max(lin_scores, key=lambda c: (lin_scores[c], -c))
    lin = fit_linear(pool.x, pool.y_true, pool.y_mask, c=best_c)
    lin_model = keras_linear(lin, frames=fs.frames, dim=fs.dim)
    scored = {"linear": lin_scores[best_c]}
    settings = {"linear": f"C={best_c:g}, refitted on all {n} clips"}
    oof = {"linear": lin_oof[best_c]}
    models = {"linear": lin_model}
    history, best_epoch = {}, 0
    if not only_linear:
        hp = dict(network)
        name, epochs, patience = hp["model"], hp.pop("epochs"), hp.pop("patience")
        ensemble = hp.pop("ensemble", 1)
        trainings = [
            [prepare_network(fit_parts[f], seed=seed + 100 * f + m, **hp) for m in range(ensemble)]
            for f in range(folds)
        ]
        net_oof, best_epoch, history = _fit_folds(
            trainings,
            held_parts,
            held_fold,
            originals,
            epochs=epochs,
            patience=patience,
            out_dir=out_dir,
            source=fs.source,
        )
        nets = [_fold_model(members, fs, seed + 100 * f) for f, members in enumerate(trainings)]
        settings[name] = (
            f"average of the {folds} fold networks, {best_epoch} epochs (best pooled out-of-fold mAP)"
        )
        scored[name] = mean_ap(originals.y_true, net_oof, originals.y_mask)
        oof[name] = net_oof
        oof[AVERAGE] = (lin_oof[best_c] + net_oof) / 2
        scored[AVERAGE] = mean_ap(originals.y_true, oof[AVERAGE], originals.y_mask)
        settings[AVERAGE] = "mean of the two"
        if refits and _pick(scored) != "linear":
            # A network that sees all of the data ranks better than one that saw (folds - 1) /
            # folds of it, for the epoch count the folds chose together (make bench-quality:
            # refits against the fold networks' average). Only when a network is kept: the choice
            # rests on the fold networks' out-of-fold scores.
            nets = []
            for i in range(refits):
                training = prepare_network(pool, seed=seed + 100 * folds + i, **hp)
                for epoch in range(best_epoch):
                    loss = training.train_epoch(epoch)
                    # "epoch " first, the epoch the first argument: the runner thins such lines.
                    log.info("epoch %3d  loss %.4f  (refit %d/%d)", epoch + 1, loss, i + 1, refits)
                nets.append(training.net)
            settings[name] = (
                f"average of {refits} networks refitted on all {n} clips for {best_epoch} epochs "
                f"(the fold networks' best pooled out-of-fold epoch)"
            )
        models[name] = (
            average_model(nets, frames=fs.frames, dim=fs.dim, name=f"disco_{name}_average")
            if len(nets) > 1
            else nets[0]
        )
        models[AVERAGE] = average_model([lin_model, models[name]], frames=fs.frames, dim=fs.dim)
    sel = Selection("cross-fitting", folds, n)
    sel.candidates = [CandidateScore(name, float(v), settings[name]) for name, v in scored.items()]
    sel.chosen = _pick(scored)
    sel.chosen_val_mAP = float(scored[sel.chosen])
    for cand in sel.candidates:
        log.info("select: %s out-of-fold mAP %.4f (%s)", cand.name, cand.val_mAP, cand.setting)
    return Selected(
        models[sel.chosen],
        np.asarray(oof[sel.chosen], np.float32),
        originals.y_true,
        originals.y_mask,
        sel,
        best_epoch if sel.chosen != "linear" else 0,
        history,
    )


def _fit_folds(trainings, held_parts, held_fold, originals, *, epochs, patience, out_dir, source):
    """Trains every fold's networks one epoch at a time, all folds in step, and scores the pooled
    out-of-fold predictions after each epoch by :class:`~disco.train.train.HeldOutStop`: one epoch
    count for all folds, chosen on every training clip, as the regression's C is. Stopping a fold
    network on the very fold it then predicts would choose its epoch on the clips that score it, and
    the network's out-of-fold mAP would flatter it against the regression. Leaves each network at
    the best epoch's weights; returns the out-of-fold predictions there, that epoch count and the
    history (mean training loss over the networks, pooled out-of-fold cross-entropy and mAP)."""
    import tensorflow as tf

    from disco.train.train import HeldOutStop, TrainingDivergedError, network_scores

    rule = HeldOutStop(
        originals.y_true,
        originals.y_mask,
        patience=patience,
        source=source,
        what="the pooled out-of-fold predictions",
    )
    # The pooled curve is what chose the epoch count: that is what `tensorboard --logdir` shows.
    writer = (
        tf.summary.create_file_writer(os.path.join(out_dir, "tensorboard", "cross-fitting"))
        if out_dir
        else None
    )
    n, k = len(originals), params.NUM_CLASSES
    history: dict[str, list[float]] = {}
    best_oof, best_weights = None, None
    for epoch in range(epochs):
        oof, losses = np.zeros((n, k)), []
        for f, members in enumerate(trainings):
            losses += [t.train_epoch(epoch) for t in members]
            x = held_parts[f].x
            oof[held_fold == f] = np.mean([network_scores(t.net, x) for t in members], axis=0)
        row = rule.update(epoch, oof, float(np.mean(losses)))
        for key, value in row.items():
            history.setdefault(key, []).append(value)
        if writer is not None:
            with writer.as_default(step=epoch):
                for key, value in row.items():
                    tf.summary.scalar(key, value)
        if rule.improved:
            best_oof = oof
            best_weights = [[t.net.get_weights() for t in members] for members in trainings]
        if rule.stop:
            break
    if writer is not None:
        writer.close()
    if best_weights is None:
        raise TrainingDivergedError(
            f"{source}: the fold networks' out-of-fold predictions never scored (NaN) in {epoch + 1} epochs"
        )
    for members, weights in zip(trainings, best_weights):
        for t, w in zip(members, weights):
            t.net.set_weights(w)
    log.info(
        "select: fold networks stopped after %d epochs; best pooled epoch %d", epoch + 1, rule.best_epoch + 1
    )
    return best_oof, rule.best_epoch + 1, history


def _fold_model(members, fs, seed: int):
    """A fold's network: its one member, or its members' average, named by its first seed (one
    member of the folds' average)."""
    if len(members) == 1:
        return members[0].net
    return average_model(
        [t.net for t in members], frames=fs.frames, dim=fs.dim, name=f"disco_ensemble_seed{seed}"
    )
