"""Micro-averaged (pooled) views of a multi-label evaluation: every observed (clip, class) entry of
the split counts as one binary decision. These are what a single-task viewer such as the KFP UI's
ClassificationMetrics (one confusion matrix, one ROC curve) can draw for a 20-class multi-label
model; the per-class figures stay in ``metrics.json``'s ``per_class``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from disco.evaluate.metrics import binarize

# Upper bound on the ROC points kept: the curve is drawn, not integrated, and KFP keeps it in the
# artifact's metadata (a database row), which must stay small on a 5,085-clip test split.
MAX_ROC_POINTS = 200


@dataclass(frozen=True)
class Confusion:
    """Pooled 2x2 counts at a decision rule, over observed entries only."""

    tp: int
    fp: int
    fn: int
    tn: int
    rule: str

    def matrix(self) -> list[list[int]]:
        """Rows are the truth (absent, present), columns the decision (absent, present)."""
        return [[self.tn, self.fp], [self.fn, self.tp]]


@dataclass(frozen=True)
class RocCurve:
    """Pooled ROC over observed entries; ``thresholds`` are score cut-offs (score >= t is positive)."""

    fpr: list[float]
    tpr: list[float]
    thresholds: list[float]


def _pooled(y_true, y_score, y_mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mask = np.asarray(y_mask).astype(bool)
    truth = binarize(np.asarray(y_true))
    return truth, np.asarray(y_score, dtype=np.float64), mask


def micro_confusion(y_true, y_score, y_mask, thresholds, *, rule: str) -> Confusion:
    """Counts at per-class ``thresholds`` (a scalar applies to every class), the model's decision rule."""
    truth, score, mask = _pooled(y_true, y_score, y_mask)
    cut = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (score.shape[1],))
    decided = score >= cut[None, :]
    t, d = truth[mask], decided[mask]
    return Confusion(
        tp=int(np.sum(t & d)),
        fp=int(np.sum(~t & d)),
        fn=int(np.sum(t & ~d)),
        tn=int(np.sum(~t & ~d)),
        rule=rule,
    )


def micro_roc(y_true, y_score, y_mask, *, max_points: int = MAX_ROC_POINTS) -> RocCurve | None:
    """The pooled ROC curve, thinned to at most ``max_points``; None when the observed entries are
    all positive or all negative (no curve is defined)."""
    from sklearn.metrics import roc_curve

    truth, score, mask = _pooled(y_true, y_score, y_mask)
    t, s = truth[mask], score[mask]
    if not t.any() or t.all():
        return None
    fpr, tpr, thr = roc_curve(t, s, drop_intermediate=True)
    # sklearn's first cut-off is +inf (nothing positive), which JSON cannot hold: any value above
    # the highest score decides the same.
    thr = np.where(np.isfinite(thr), thr, np.nextafter(max(1.0, float(s.max())), np.inf))
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr, thr = fpr[keep], tpr[keep], thr[keep]
    return RocCurve(fpr=fpr.tolist(), tpr=tpr.tolist(), thresholds=thr.tolist())
