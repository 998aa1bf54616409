"""The dataset authors' baseline recipe, scored by the same code as our models: one random forest
per class (100 trees, max depth 8) on time-averaged features, trained on that class's observed
train entries only; and, as a second reference, one logistic regression per class on the same
standardised features."""

from __future__ import annotations

import numpy as np

from disco import params
from disco.metrics import binarize

RF_TREES = 100
RF_DEPTH = 8


LR_C = 1.0
LR_MAX_ITER = 2000


def _per_class_scores(train, test, make_classifier, *, standardise: bool) -> np.ndarray:
    x_train = train.x.mean(axis=1).astype(np.float64)
    x_test = test.x.mean(axis=1).astype(np.float64)
    if standardise:
        mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    scores = np.full((len(test), params.NUM_CLASSES), 0.5, np.float32)
    for c in range(params.NUM_CLASSES):
        m = train.y_mask[:, c].astype(bool)
        y = binarize(train.y_true[m, c])
        if m.sum() == 0 or y.all() or not y.any():
            # Nothing to learn from: a constant score carries no ranking (AP = base rate).
            scores[:, c] = float(y.mean()) if m.any() else 0.5
            continue
        clf = make_classifier(c)
        clf.fit(x_train[m], y)
        scores[:, c] = clf.predict_proba(x_test)[:, 1]
    return scores


def random_forest_scores(train, test, *, seed: int = params.DEFAULT_SEED) -> np.ndarray:
    from sklearn.ensemble import RandomForestClassifier

    return _per_class_scores(
        train,
        test,
        lambda c: RandomForestClassifier(
            n_estimators=RF_TREES, max_depth=RF_DEPTH, random_state=seed + c, n_jobs=-1
        ),
        standardise=False,
    )


def logistic_regression_scores(train, test, *, seed: int = params.DEFAULT_SEED) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    return _per_class_scores(
        train,
        test,
        lambda c: LogisticRegression(C=LR_C, max_iter=LR_MAX_ITER, random_state=seed + c),
        standardise=True,
    )
