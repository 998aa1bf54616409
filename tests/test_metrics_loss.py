"""Masked loss and masked metrics: unobserved entries never count."""

from __future__ import annotations

import numpy as np
import pytest

from disco import params
from disco.metrics import average_precision, classification_report, mean_ap, prf


def _labels(rng, n=40):
    y_true = rng.uniform(0, 1, (n, params.NUM_CLASSES)).astype(np.float32)
    y_mask = rng.uniform(0, 1, (n, params.NUM_CLASSES)) < 0.3
    scores = rng.uniform(0, 1, (n, params.NUM_CLASSES)).astype(np.float32)
    return y_true, y_mask, scores


def test_masked_loss_ignores_unobserved_entries(rng):
    import tensorflow as tf

    from disco.train.losses import MaskedBinaryCrossentropy, pack_targets

    y_true, y_mask, scores = _labels(rng)
    logits = tf.Variable(np.log(scores / (1 - scores)))
    changed = np.where(y_mask, y_true, 1.0 - y_true)  # flip every unobserved relevance
    loss = MaskedBinaryCrossentropy()
    grads = []
    for yt in (y_true, changed):
        with tf.GradientTape() as tape:
            value = loss(pack_targets(yt, y_mask), tf.sigmoid(logits))
        grads.append((float(value), tape.gradient(value, logits).numpy()))
    assert grads[0][0] == pytest.approx(grads[1][0])
    np.testing.assert_allclose(grads[0][1], grads[1][1])
    assert not grads[0][1][~y_mask].any()  # no gradient through unobserved entries
    # and an observed entry does move it
    flipped = y_true.copy()
    i, j = np.argwhere(y_mask)[0]
    flipped[i, j] = 1.0 - flipped[i, j] if abs(flipped[i, j] - 0.5) > 0.01 else 0.0
    assert float(loss(pack_targets(flipped, y_mask), tf.sigmoid(logits))) != pytest.approx(grads[0][0])


def test_ap_matches_sklearn_on_observed_entries(rng):
    from sklearn.metrics import average_precision_score

    y_true, y_mask, scores = _labels(rng, n=200)
    aps = average_precision(y_true, scores, y_mask)
    for c in range(params.NUM_CLASSES):
        m = y_mask[:, c]
        expected = average_precision_score(y_true[m, c] >= 0.5, scores[m, c])
        assert aps[c] == pytest.approx(expected)
    assert mean_ap(y_true, scores, y_mask) == pytest.approx(np.mean(aps))


def test_class_without_observed_positives_is_na_not_zero(rng):
    y_true, y_mask, scores = _labels(rng, n=100)
    y_mask[:, 3] = False
    y_true[:, 5] = 0.1  # observed, but never positive
    aps = average_precision(y_true, scores, y_mask)
    assert aps[3] is None and aps[5] is None
    report = classification_report(y_true, scores, y_mask)
    assert report["per_class"][params.CLASSES[3]]["ap"] is None
    assert report["mAP"] == pytest.approx(np.mean([a for a in aps if a is not None]))
    # Precision, recall and F1 alike: n/a for a class with no observed positive, out of the means.
    per = report["per_class"][params.CLASSES[5]]
    assert (per["precision"], per["recall"], per["f1"]) == (None, None, None)
    precisions = [c["precision"] for c in report["per_class"].values() if c["precision"] is not None]
    assert report["precision_macro"] == pytest.approx(np.mean(precisions))


def test_a_nan_score_is_refused_not_made_a_threshold(rng):
    """A NaN sorts anywhere: it became the tuned threshold, written to thresholds.json."""
    from disco.metrics import tune_thresholds

    y_true, y_mask, scores = _labels(rng, n=50)
    y_mask[:, 2] = True
    scores[0, 2] = np.nan
    with pytest.raises(ValueError, match="class 2: 1 held-out scores are NaN or infinite"):
        tune_thresholds(y_true, scores, y_mask)
    scores[0, 2] = 0.5
    assert all(np.isfinite(tune_thresholds(y_true, scores, y_mask)))


def test_prf_hand_computed():
    y_true = np.zeros((4, params.NUM_CLASSES), np.float32)
    y_mask = np.zeros((4, params.NUM_CLASSES), bool)
    y_true[:, 0] = [1.0, 0.9, 0.2, 0.0]
    y_mask[:, 0] = [True, True, True, False]  # the 4th clip is unobserved for class 0
    scores = np.zeros((4, params.NUM_CLASSES), np.float32)
    scores[:, 0] = [0.8, 0.3, 0.6, 0.99]
    r = prf(y_true, scores, y_mask, 0.5)
    # observed: TP (0.8), FN (0.3), FP (0.6); the unobserved 0.99 does not count
    assert r["precision"][0] == pytest.approx(0.5)
    assert r["recall"][0] == pytest.approx(0.5)
    assert r["f1"][0] == pytest.approx(0.5)
    assert (r["support"][0], r["observed"][0]) == (2, 3)


def _best_f1_brute_force(t: np.ndarray, s: np.ndarray) -> float:
    best = 0.0
    for th in np.unique(s):
        pred = s >= th
        best = max(best, 2 * np.sum(pred & t) / (pred.sum() + t.sum()))
    return best


def test_tuned_thresholds_reach_the_best_f1_on_their_own_entries(rng):
    from disco.metrics import tune_thresholds

    y_true, y_mask, scores = _labels(rng, n=200)
    scores = np.round(scores, 2)  # ties: a threshold can never split equal scores
    th = tune_thresholds(y_true, scores, y_mask)
    got = prf(y_true, scores, y_mask, th)["f1"]
    for c in range(params.NUM_CLASSES):
        m = y_mask[:, c]
        t, s = y_true[m, c] >= 0.5, scores[m, c]
        if t.any() and not t.all():
            assert got[c] == pytest.approx(_best_f1_brute_force(t, s))
        else:
            assert th[c] == 0.5


def test_tuned_threshold_sits_midway_in_the_gap_of_separable_scores(rng):
    from disco.metrics import tune_thresholds

    n = 60
    y_true = np.zeros((n, params.NUM_CLASSES), np.float32)
    y_true[: n // 3] = 1.0
    y_mask = np.ones_like(y_true, bool)
    scores = np.where(y_true > 0, rng.uniform(0.9, 1.0, y_true.shape), rng.uniform(0.0, 0.2, y_true.shape))
    th = np.array(tune_thresholds(y_true, scores, y_mask))
    lowest_positive = scores[: n // 3].min(axis=0)
    highest_negative = scores[n // 3 :].max(axis=0)
    np.testing.assert_allclose(th, (lowest_positive + highest_negative) / 2)


def test_tuned_threshold_separates_neighbouring_float32_scores():
    """Saturated sigmoids give neighbouring float32 scores; the threshold between a positive and the
    next float32 down (a negative) must still accept the one and reject the other."""
    from disco.metrics import tune_thresholds

    y_true = np.zeros((4, params.NUM_CLASSES), np.float32)
    y_true[:2] = 1.0
    top = np.float32(0.7)
    below = np.nextafter(top, np.float32(0), dtype=np.float32)
    scores = np.tile(np.array([[0.9], [top], [below], [0.1]], np.float32), (1, params.NUM_CLASSES))
    th = tune_thresholds(y_true, scores, np.ones_like(y_true, bool))
    assert prf(y_true, scores, np.ones_like(y_true, bool), th)["f1"] == [1.0] * params.NUM_CLASSES


def test_cross_tuned_f1_is_honest_where_the_in_sample_oracle_is_not(rng):
    """Scores carrying no information: tuning on the very entries finds a lucky threshold per class;
    tuning on the other folds cannot, so it stays near the F1 of chance."""
    from disco.metrics import cross_tuned_f1

    rate = 0.04  # a handful of positives per class, as in a small test split
    y_true = (rng.uniform(size=(200, params.NUM_CLASSES)) < rate).astype(np.float32)
    y_mask = np.ones_like(y_true, bool)
    noise = rng.uniform(size=y_true.shape)
    report = classification_report(y_true, noise, y_mask)
    everything_positive = 2 * rate / (1 + rate)
    assert report["f1_macro_oracle"] > everything_positive + 0.03
    assert report["f1_macro_cross_tuned"] < everything_positive + 0.03
    informative = np.clip(y_true * 0.6 + noise * 0.5, 0, 1)
    assert cross_tuned_f1(y_true, informative, y_mask) > 0.9


def test_mixup_targets_mix_the_two_masked_losses(rng):
    """The packed mixed target is one masked loss equal to lam * loss(a) + (1 - lam) * loss(b), each
    over its own observed entries: a class observed in one clip only still counts at its share."""
    from disco.train.losses import mixup_batches, pack_targets

    n, k = 32, params.NUM_CLASSES
    y_true, y_mask, scores = _labels(rng, n=n)
    # One-hot "embeddings": a mixed row reads off its two clips and lam directly.
    x = np.eye(n, dtype=np.float32)[:, None, :]
    packed = pack_targets(y_true, y_mask)
    xb, yb = next(iter(mixup_batches(x, packed, batch_size=n, alpha=0.4, seed=3)))
    xb, yb = xb.numpy()[:, 0, :], yb.numpy()
    p = np.clip(scores, 1e-3, 1 - 1e-3)
    mixed = 0
    for row in range(n):
        i, j = np.argsort(-xb[row])[:2]
        lam = float(xb[row, i])
        j = j if xb[row, j] > 0 else i  # mixed with itself
        mixed += j != i
        assert lam + float(xb[row, j]) * (j != i) == pytest.approx(1.0, abs=1e-5)

        def bce(t, row=row):
            return -(t * np.log(p[row]) + (1 - t) * np.log(1 - p[row]))

        lam_j = 1 - lam
        expected = lam * packed[i, k:] * bce(packed[i, :k]) + lam_j * packed[j, k:] * bce(packed[j, :k])
        np.testing.assert_allclose(yb[row, k:] * bce(yb[row, :k]), expected, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(yb[row, k:], lam * packed[i, k:] + lam_j * packed[j, k:], atol=1e-6)
    assert mixed > n // 2
    assert (yb[:, :k] >= 0).all() and (yb[:, :k] <= 1).all()


def test_label_smoothing_is_the_masked_loss_on_targets_moved_toward_one_half(rng):
    import keras
    import tensorflow as tf

    from disco.train.losses import MaskedBinaryCrossentropy, pack_targets

    y_true, y_mask, scores = _labels(rng)
    s = 0.2
    smoothed = MaskedBinaryCrossentropy(label_smoothing=s)
    target = (y_true >= 0.5) * (1 - s) + s / 2
    bce = -(target * np.log(scores) + (1 - target) * np.log(1 - scores))
    per_example = (bce * y_mask).sum(1) / np.maximum(y_mask.sum(1), 1)
    value = float(smoothed(pack_targets(y_true, y_mask), tf.constant(scores, tf.float32)))
    assert value == pytest.approx(per_example.mean(), rel=1e-4)
    assert value != pytest.approx(float(MaskedBinaryCrossentropy()(pack_targets(y_true, y_mask), scores)))
    # a saved model's compiled loss comes back with its smoothing
    again = keras.losses.deserialize(keras.losses.serialize(smoothed))
    assert again.label_smoothing == s
