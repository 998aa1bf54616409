"""The reference recipes scored beside every model: random forest and logistic regression per
class, trained on observed entries only."""

from __future__ import annotations

import numpy as np
import pytest

from disco import params
from disco.evaluate.baseline import logistic_regression_scores, random_forest_scores
from disco.metrics import classification_report
from disco.train.features import SplitData


def _split(rng, n: int, *, noise_labels_where_unobserved: bool) -> SplitData:
    """Class c is present when feature c (time-averaged) is high; unobserved entries carry labels
    that contradict the signal, so a recipe that trains on them gets worse."""
    x = rng.standard_normal((n, 10, 32)).astype(np.float32)
    present = x[:, :, : params.NUM_CLASSES].mean(axis=1) > 0
    y_true = present.astype(np.float32)
    y_mask = (rng.random((n, params.NUM_CLASSES)) < 0.5).astype(np.int64)
    if noise_labels_where_unobserved:
        y_true = np.where(y_mask == 1, y_true, 1.0 - y_true).astype(np.float32)
    keys = np.array([f"{i:06d}_0" for i in range(n)])
    return SplitData(keys=keys, x=x, y_true=y_true, y_mask=y_mask, augmentation_id=np.zeros(n, np.int64))


@pytest.mark.parametrize("recipe", [random_forest_scores, logistic_regression_scores])
def test_recipes_learn_from_observed_entries_only(rng, recipe):
    train = _split(rng, 600, noise_labels_where_unobserved=True)
    test = _split(rng, 300, noise_labels_where_unobserved=False)
    scores = recipe(train, test, seed=1)
    assert scores.shape == (300, params.NUM_CLASSES) and np.all((scores >= 0) & (scores <= 1))
    # Trained on the contradicting unobserved labels, mAP would be far below chance (~0.5).
    assert classification_report(test.y_true, scores, test.y_mask)["mAP"] > 0.85
    np.testing.assert_array_equal(scores, recipe(train, test, seed=1))


def test_a_class_with_one_label_value_gets_a_constant_score(rng):
    train = _split(rng, 200, noise_labels_where_unobserved=False)
    test = _split(rng, 50, noise_labels_where_unobserved=False)
    train.y_true[:, 3] = 1.0  # every observed entry positive: nothing to rank with
    scores = logistic_regression_scores(train, test)
    assert np.all(scores[:, 3] == scores[0, 3])
