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
