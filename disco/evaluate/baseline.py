"""References scored by the same code as our models, both trained on the FULL train split (the
official train partition: train + validation originals), each class on its observed entries only:
the dataset authors' recipe, one random forest per class (100 trees, max depth 8) on time-averaged
features; and one logistic regression per class on the same features, standardised, with C chosen
by grouped cross-validation on that train split (disco.train.linear)."""

from __future__ import annotations

import numpy as np

from disco import params
from disco.metrics import binarize

RF_TREES = 100
RF_DEPTH = 8


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


def logistic_regression_reference(
    train, test, *, seed: int = params.DEFAULT_SEED
) -> tuple[np.ndarray, float]:
    """Test scores and the C cross-validation chose."""
    from disco.train.linear import choose_c, fit_linear

    c, _ = choose_c(train.x, train.y_true, train.y_mask, train.keys, seed=seed, groups=train.groups)
    return fit_linear(train.x, train.y_true, train.y_mask, c=c).predict(test.x).astype(np.float32), c


def logistic_regression_scores(train, test, *, seed: int = params.DEFAULT_SEED) -> np.ndarray:
    return logistic_regression_reference(train, test, seed=seed)[0]


def full_train(fs):
    """The official train partition: train and validation originals (augmented copies left out, as
    the recipes never saw them)."""
    from disco.train.features import concat_splits

    return concat_splits(
        [fs.splits[params.SPLIT_TRAIN].originals(), fs.splits[params.SPLIT_VALIDATION].originals()]
    )
