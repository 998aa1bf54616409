"""Model selection for ``--model auto``: train the candidates, keep what validation says is best.

Candidates: the per-class logistic regression (C on a grid), the network (``AUTO_CANDIDATES``),
and their average. Mid-size data (at least ``SMALL_VALIDATION`` validation clips): candidates are
trained on train and scored on the artist-grouped validation split; the winner is kept as trained.
Small data: a few dozen validation clips cannot rank candidates, so they are scored out-of-fold by
grouped k-fold cross-validation over train + validation, and the winner is refitted on all of it
(the network for the median of the folds' best epochs). Either way the per-class thresholds are
tuned on the same held-out predictions that chose the winner, and the record of what was tried
(``selection.json``) is written beside the model.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from disco import params
from disco.errors import ConfigError

log = logging.getLogger(__name__)

SELECTION_FILE = "selection.json"
AVERAGE = "average"


@dataclass
class CandidateScore:
    name: str  # "linear", a network name, or "average"
    val_mAP: float
    setting: str  # what was fitted, e.g. "C=0.03" or "attention, best epoch 12"


@dataclass
class Selection:
    method: str  # "validation split" | "k-fold cross-validation"
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


def average_model(members, *, frames: int, dim: int):
    """One Keras model averaging the members' probabilities."""
    import keras
    from keras import layers

    inputs = keras.Input((frames, dim), name="embedding")
    outputs = layers.Average(name="probabilities")([m(inputs) for m in members])
    return keras.Model(inputs, outputs, name="disco_average")


def _pick(scored: dict[str, float]) -> str:
    # Ties go to the simpler candidate (the order of the dict: linear, network, average).
    return max(scored, key=lambda k: scored[k] - 1e-9 * list(scored).index(k))


def select_on_validation(
    fs, *, network: dict, out_dir: str, seed: int, fit_network, only_linear: bool = False
) -> Selected:
    from disco.metrics import mean_ap
    from disco.train.linear import C_GRID, fit_linear, keras_linear, past_the_peak

    train = fs.splits[params.SPLIT_TRAIN]
    val = fs.splits[params.SPLIT_VALIDATION].originals()
    sel = Selection("validation split", 0, len(val))
    best_lin, best_c, best_lin_map, previous, path = None, None, -np.inf, None, []
    for c in C_GRID:
        previous = fit_linear(train.x, train.y_true, train.y_mask, c=c, init=previous)
        score = mean_ap(val.y_true, previous.predict(val.x), val.y_mask)
        log.info("select: linear C=%g val mAP %.4f", c, score)
        if score > best_lin_map:
            best_lin, best_c, best_lin_map = previous, c, score
        path.append(score)
        if past_the_peak(path):
            break
    lin_val = best_lin.predict(val.x)
    lin_model = keras_linear(best_lin, frames=fs.frames, dim=fs.dim)
    if only_linear:
        sel.candidates = [CandidateScore("linear", float(best_lin_map), f"C={best_c:g}")]
        sel.chosen, sel.chosen_val_mAP = "linear", float(best_lin_map)
        return Selected(lin_model, np.asarray(lin_val, np.float32), val.y_true, val.y_mask, sel, 0, {})
    net, history, best_epoch = fit_network(train, val, seed=seed, out_dir=out_dir, **network)
    net_val = net.predict(val.x, verbose=0, batch_size=512)
    avg_val = (lin_val + net_val) / 2
    scored = {
        "linear": best_lin_map,
        network["model"]: mean_ap(val.y_true, net_val, val.y_mask),
        AVERAGE: mean_ap(val.y_true, avg_val, val.y_mask),
    }
    settings = {
        "linear": f"C={best_c:g}",
        network["model"]: f"{network['ensemble']} seed(s), median best epoch {best_epoch}",
        AVERAGE: "mean of the two",
    }
    sel.candidates = [CandidateScore(k, float(v), settings[k]) for k, v in scored.items()]
    sel.chosen = _pick(scored)
    sel.chosen_val_mAP = float(scored[sel.chosen])
    model, val_scores = {
        "linear": (lin_model, lin_val),
        network["model"]: (net, net_val),
        AVERAGE: (average_model([lin_model, net], frames=fs.frames, dim=fs.dim), avg_val),
    }[sel.chosen]
    return Selected(
        model,
        np.asarray(val_scores, np.float32),
        val.y_true,
        val.y_mask,
        sel,
        best_epoch if sel.chosen != "linear" else 0,
        history,
    )


def select_by_cross_validation(
    fs,
    *,
    network: dict,
    out_dir: str,
    seed: int,
    fit_network,
    only_linear: bool = False,
    folds: int = params.SELECTION_FOLDS,
) -> Selected:
    from disco.metrics import mean_ap
    from disco.train.features import concat_splits
    from disco.train.linear import C_GRID, fit_linear, group_folds, keras_linear, past_the_peak

    pool = concat_splits([fs.splits[params.SPLIT_TRAIN], fs.splits[params.SPLIT_VALIDATION]])
    originals = pool.originals()
    if len(originals) == 0:
        raise ConfigError(f"{fs.source}: no training examples")
    folds = max(2, min(folds, len(np.unique([str(k).split("_")[0] for k in originals.keys]))))
    fold_of_key = dict(zip(originals.keys, group_folds(originals.keys, folds, seed)))
    fold = np.array([fold_of_key.get(k, -1) for k in pool.keys])
    held_fold = fold[pool.augmentation_id == 0]
    n, k = len(originals), params.NUM_CLASSES
    fit_parts = [pool.subset(fold != f) for f in range(folds)]
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
        if past_the_peak(path):
            break
    net_oof = np.zeros((n, k))
    epochs = []
    for f in range(0 if only_linear else folds):
        # Augmented copies of a held-out clip stay out of that fold's training. One network per
        # fold keeps k-fold affordable; the refit below trains the full ensemble.
        net, _, best_epoch = fit_network(
            fit_parts[f], held_parts[f], seed=seed + f, out_dir=None, **{**network, "ensemble": 1}
        )
        net_oof[held_fold == f] = net.predict(held_parts[f].x, verbose=0, batch_size=512)
        epochs.append(best_epoch)
        log.info("select: fold %d/%d done (network best epoch %d)", f + 1, folds, epochs[-1])
    lin_scores = dict(zip(lin_oof, path))
    best_c = max(lin_scores, key=lambda c: (lin_scores[c], -c))
    avg_oof = (lin_oof[best_c] + net_oof) / 2
    scored = {"linear": lin_scores[best_c]}
    if not only_linear:
        scored[network["model"]] = mean_ap(originals.y_true, net_oof, originals.y_mask)
        scored[AVERAGE] = mean_ap(originals.y_true, avg_oof, originals.y_mask)
    refit_epochs = int(np.median(epochs)) if epochs else 0
    settings = {
        "linear": f"C={best_c:g}",
        network["model"]: f"fold best epochs {epochs}, refit for {refit_epochs}",
        AVERAGE: "mean of the two",
    }
    sel = Selection("k-fold cross-validation", folds, n)
    sel.candidates = [CandidateScore(name, float(v), settings[name]) for name, v in scored.items()]
    sel.chosen = _pick(scored)
    sel.chosen_val_mAP = float(scored[sel.chosen])
    for cand in sel.candidates:
        log.info("select: %s cross-validated mAP %.4f (%s)", cand.name, cand.val_mAP, cand.setting)
    members, history = [], {}
    if sel.chosen in ("linear", AVERAGE):
        lin = fit_linear(pool.x, pool.y_true, pool.y_mask, c=best_c)
        members.append(keras_linear(lin, frames=fs.frames, dim=fs.dim))
    if sel.chosen != "linear":
        net, history, _ = fit_network(
            pool, None, seed=seed, out_dir=out_dir, **{**network, "epochs": max(refit_epochs, 1)}
        )
        members.append(net)
    model = members[0] if len(members) == 1 else average_model(members, frames=fs.frames, dim=fs.dim)
    oof = {"linear": lin_oof[best_c], network["model"]: net_oof, AVERAGE: avg_oof}[sel.chosen]
    return Selected(
        model,
        np.asarray(oof, np.float32),
        originals.y_true,
        originals.y_mask,
        sel,
        refit_epochs if sel.chosen != "linear" else 0,
        history,
    )
