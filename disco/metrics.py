"""Masked multi-label metrics: only observed (y_mask) entries count; positive means y_true >= 0.5.

A class with no observed positive (or no observed negative) in the evaluated split has no defined
AP; it is reported as None ("n/a") and left out of the means rather than counted as 0.
"""

from __future__ import annotations

import numpy as np

from disco import params


def binarize(y_true: np.ndarray) -> np.ndarray:
    return np.asarray(y_true) >= params.POSITIVE_THRESHOLD


def _observed(y_true, y_score, y_mask, c):
    m = np.asarray(y_mask[:, c]).astype(bool)
    return binarize(y_true[m, c]), np.asarray(y_score)[m, c]


def average_precision(y_true: np.ndarray, y_score: np.ndarray, y_mask: np.ndarray) -> list[float | None]:
    from sklearn.metrics import average_precision_score

    out: list[float | None] = []
    for c in range(y_true.shape[1]):
        t, s = _observed(y_true, y_score, y_mask, c)
        out.append(float(average_precision_score(t, s)) if t.any() and not t.all() else None)
    return out


def mean_ap(y_true, y_score, y_mask) -> float:
    aps = [a for a in average_precision(y_true, y_score, y_mask) if a is not None]
    return float(np.mean(aps)) if aps else float("nan")


def prf(y_true, y_score, y_mask, thresholds) -> dict[str, list]:
    """Per-class precision, recall, F1 and support (observed positives) at the given thresholds."""
    thresholds = np.broadcast_to(np.asarray(thresholds, float), (y_true.shape[1],))
    out = {"precision": [], "recall": [], "f1": [], "support": [], "observed": []}
    for c in range(y_true.shape[1]):
        t, s = _observed(y_true, y_score, y_mask, c)
        pred = s >= thresholds[c]
        tp = int(np.sum(pred & t))
        fp = int(np.sum(pred & ~t))
        fn = int(np.sum(~pred & t))
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else None
        f = (2 * p * r / (p + r) if p + r else 0.0) if r is not None else None
        # Like recall and F1: a class with no observed positive is left out of the means.
        out["precision"].append(p if t.any() else None)
        out["recall"].append(r)
        out["f1"].append(f)
        out["support"].append(int(t.sum()))
        out["observed"].append(int(t.size))
    return out


def macro(values: list[float | None]) -> float:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else float("nan")


def tune_thresholds(y_true, y_score, y_mask, *, default: float = 0.5) -> list[float]:
    """Per class, the threshold maximising F1 on these (held-out) entries; ``default`` for a class
    with no observed positive or no observed negative.

    The threshold sits midway between the last score predicted positive and the next one down:
    placing it exactly at the lowest accepted score (the classic sweep) rejects every later clip that
    scores a hair below it, which on well-separated held-out data puts thresholds near 1.0."""
    out = []
    for c in range(y_true.shape[1]):
        t, s = _observed(y_true, y_score, y_mask, c)
        if not np.isfinite(s).all():
            # A NaN sorts anywhere and would become the threshold: the model diverged on these clips.
            raise ValueError(f"class {c}: {int((~np.isfinite(s)).sum())} held-out scores are NaN or infinite")
        if not t.any() or t.all():
            out.append(default)
            continue
        order = np.argsort(-s, kind="stable")
        s, t = s[order], t[order]
        f1 = 2 * np.cumsum(t) / (np.arange(1, len(s) + 1) + t.sum())
        # A cut between two equal scores cannot be made by a threshold.
        f1[:-1][s[1:] == s[:-1]] = -1.0
        i = int(np.argmax(f1))
        # In float64: the float32 midpoint of two neighbouring float32 scores rounds onto one of them,
        # which can put the threshold on the very score it should reject.
        out.append(float(s[i]) if i == len(s) - 1 else (float(s[i]) + float(s[i + 1])) / 2)
    return out


def cross_tuned_f1(y_true, y_score, y_mask, *, folds: int = 10, seed: int = 0) -> float:
    """Macro F1 with each example decided by thresholds tuned on the other folds of the same split.

    The in-sample oracle (thresholds tuned on the very entries they are scored on) overstates what
    any threshold rule can reach when a class has a handful of positives; this is its honest
    counterpart: tuned on data from the test distribution, never on the clip being decided."""
    n = len(y_true)
    fold = np.random.default_rng(seed).permutation(n) % max(2, min(folds, n))
    decided = np.zeros(np.shape(y_score), np.float32)
    for f in np.unique(fold):
        held = fold == f
        th = tune_thresholds(y_true[~held], y_score[~held], y_mask[~held])
        decided[held] = np.asarray(y_score)[held] >= np.asarray(th)
    return macro(prf(y_true, decided, y_mask, 0.5)["f1"])


def classification_report(y_true, y_score, y_mask, *, thresholds=None) -> dict:
    """Everything evaluate reports for one model on one split.

    The decision rule is the model's validation-tuned per-class thresholds when it has them (the
    headline ``f1_macro``, precision and recall); 0.5 otherwise. ``f1_macro_at_0.5`` is kept for
    comparison, ``f1_macro_oracle`` (thresholds tuned on this very split: an upper bound no
    deployed rule reaches) and ``f1_macro_cross_tuned`` (tuned on this split out-of-fold, see
    :func:`cross_tuned_f1`) show how much the rule leaves on the table."""
    aps = average_precision(y_true, y_score, y_mask)
    at_half = prf(y_true, y_score, y_mask, params.POSITIVE_THRESHOLD)
    rule = prf(y_true, y_score, y_mask, thresholds) if thresholds is not None else at_half
    oracle = prf(y_true, y_score, y_mask, tune_thresholds(y_true, y_score, y_mask))
    cross_tuned = cross_tuned_f1(y_true, y_score, y_mask)
    per_class = {}
    for c, name in enumerate(params.CLASSES):
        row = {
            "ap": aps[c],
            "precision": rule["precision"][c],
            "recall": rule["recall"][c],
            "f1": rule["f1"][c],
            "support": rule["support"][c],
            "observed": rule["observed"][c],
            "f1_at_0.5": at_half["f1"][c],
        }
        if thresholds is not None:
            row.update(
                threshold=float(thresholds[c]),
                f1_tuned=rule["f1"][c],
                precision_tuned=rule["precision"][c],
                recall_tuned=rule["recall"][c],
            )
        per_class[name] = row
    report = {
        "mAP": macro(aps),
        "decision_rule": "validation-tuned thresholds" if thresholds is not None else "0.5",
        "f1_macro": macro(rule["f1"]),
        "precision_macro": macro(rule["precision"]),
        "recall_macro": macro(rule["recall"]),
        "f1_macro_at_0.5": macro(at_half["f1"]),
        "f1_macro_oracle": macro(oracle["f1"]),
        "f1_macro_cross_tuned": cross_tuned,
        "per_class": per_class,
    }
    if thresholds is not None:
        report["f1_macro_tuned"] = macro(rule["f1"])
    return report
