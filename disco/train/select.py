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


def select_cross_fitted(
    fs,
    *,
    network: dict,
    out_dir: str,
    seed: int,
    fit_network,
    only_linear: bool = False,
    folds: int = params.SELECTION_FOLDS,
    refits: int = 0,
) -> Selected:
    """Cross-fitting: ``folds`` grouped folds over train + validation (by artist where the features
    know it, else by recording: ``SplitData.groups``). Per fold, the
    regression (along the C path) and the network are fitted on the other folds (the network
    early-stopped on this fold) and predict this fold; the candidates are ranked by those
    out-of-fold predictions, which cover every training clip. When a network is kept (alone or
    averaged with the regression), it is the average of ``refits`` networks refitted on all of the
    data for the folds' median best epoch (seeds apart from the folds'); with ``refits`` 0, the
    average of the fold networks themselves (each has seen (folds - 1) / folds of the data). The
    regression is refitted on all of it (seconds)."""
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
    history, epochs = {}, []
    if not only_linear:
        net_oof, nets = np.zeros((n, k)), []
        for f in range(folds):
            net, hist, best_epoch = fit_network(
                fit_parts[f],
                held_parts[f],
                seed=seed + 100 * f,
                out_dir=out_dir if f == 0 else None,
                **network,
            )
            net_oof[held_fold == f] = net.predict(held_parts[f].x, verbose=0, batch_size=512)
            nets.append(net)
            epochs.append(best_epoch)
            history = history or hist
            log.info("select: fold %d/%d done (network best epoch %d)", f + 1, folds, best_epoch)
        name = network["model"]
        settings[name] = f"average of the {folds} fold networks, best epochs {epochs}"
        scored[name] = mean_ap(originals.y_true, net_oof, originals.y_mask)
        oof[name] = net_oof
        oof[AVERAGE] = (lin_oof[best_c] + net_oof) / 2
        scored[AVERAGE] = mean_ap(originals.y_true, oof[AVERAGE], originals.y_mask)
        settings[AVERAGE] = "mean of the two"
        if refits and _pick(scored) != "linear":
            # A network that sees all of the data ranks better than one that saw (folds - 1) /
            # folds of it, and the fold networks' median best epoch is a sound length for it
            # (make bench-quality: refits against the fold networks' average). Only when a
            # network is kept: the choice rests on the fold networks' out-of-fold scores.
            nets, refit_epochs = [], max(1, int(np.median(epochs)))
            for i in range(refits):
                net, _, _ = fit_network(
                    pool,
                    None,
                    seed=seed + 100 * folds + i,
                    **{**network, "epochs": refit_epochs, "ensemble": 1},
                )
                nets.append(net)
                log.info(
                    "select: refit %d/%d done (%d epochs on all %d clips)", i + 1, refits, refit_epochs, n
                )
            settings[name] = (
                f"average of {refits} networks refitted on all {n} clips for {refit_epochs} epochs "
                f"(the median of the {folds} fold networks' best epochs {epochs})"
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
        int(np.median(epochs)) if epochs and sel.chosen != "linear" else 0,
        history,
    )
