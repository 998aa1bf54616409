"""Per-class logistic regression on time-averaged, standardised features, as a Keras model.

One L2-regularised logistic regression per class, over that class's observed entries only
(Y_mask), with sklearn's objective ``C * sum(log loss) + ||w||^2 / 2`` (intercept not penalised).
The 20 problems are independent, so they are solved together by one L-BFGS run over the stacked
parameters: seconds on the full train split where 20 separate sklearn fits take minutes.

The fitted classifier is written as an ordinary Keras model (mean over frames, the standardisation
as a ``Normalization`` layer, a ``Dense`` sigmoid layer holding the coefficients), so evaluate,
export, ``disco predict`` and the pipeline treat it like any other ``model.keras``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from disco import params

log = logging.getLogger(__name__)

# The grid C is chosen from by grouped cross-validation on train (inverse regularisation strength,
# sklearn's convention). On the dev set's 5.8k clips the best C is 0.01-0.03; on a few hundred
# clips it is larger.
C_GRID: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
CV_FOLDS: int = 3
_MAX_ITER = 1000  # warm starts along the C path need far fewer


@dataclass
class LinearFit:
    mean: np.ndarray  # [dim] of the time-averaged train features
    std: np.ndarray  # [dim]
    weights: np.ndarray  # [dim, classes]
    bias: np.ndarray  # [classes]
    c: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (_pool(x) - self.mean) / self.std
        return 1.0 / (1.0 + np.exp(-(z @ self.weights + self.bias)))


def _pool(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float64).mean(axis=1)


def _solve(
    z: np.ndarray, target: np.ndarray, mask: np.ndarray, c: float, init: np.ndarray | None = None
) -> np.ndarray:
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits

    n, dim = z.shape
    k = target.shape[1]

    def objective(theta):
        w = theta[: dim * k].reshape(dim, k)
        b = theta[dim * k :]
        logits = z @ w + b
        # log(1 + exp(-s * logit)) with s = +-1, computed stably.
        signed = np.where(target, logits, -logits)
        loss = np.logaddexp(0.0, -signed)
        grad_logits = -mask * np.where(target, 1.0, -1.0) / (1.0 + np.exp(signed))
        value = c * np.sum(mask * loss) + 0.5 * np.sum(w * w)
        gw = c * (z.T @ grad_logits) + w
        gb = c * grad_logits.sum(axis=0)
        return value, np.concatenate([gw.ravel(), gb])

    # Small matrix products, thousands of them: BLAS threads only contend (5x slower on a busy
    # 2-core machine), so the solver runs single-threaded.
    with threadpool_limits(1):
        res = minimize(
            objective,
            np.zeros(dim * k + k) if init is None else init,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": _MAX_ITER, "gtol": 1e-6, "ftol": 1e-10},
        )
    return res.x


def fit_linear(
    x: np.ndarray, y_true: np.ndarray, y_mask: np.ndarray, *, c: float, init: LinearFit | None = None
) -> LinearFit:
    """x [N, frames, dim] (or [N, dim]); classes with only one observed label value get a constant
    score (their observed positive rate): nothing to rank with, AP is the base rate either way.
    ``init`` (a fit on the same examples with a smaller C) warm-starts the solver."""
    pooled = _pool(x) if np.ndim(x) == 3 else np.asarray(x, np.float64)
    mean, std = pooled.mean(axis=0), pooled.std(axis=0) + 1e-8
    z = (pooled - mean) / std
    mask = np.asarray(y_mask, np.float64)
    target = (np.asarray(y_true) >= params.POSITIVE_THRESHOLD) & (mask > 0)
    observed = mask.sum(axis=0)
    positives = (target * mask).sum(axis=0)
    learnable = (positives > 0) & (positives < observed)
    weights = np.zeros((z.shape[1], target.shape[1]))
    bias = np.zeros(target.shape[1])
    if learnable.any():
        k = int(learnable.sum())
        start = (
            None
            if init is None
            else np.concatenate([init.weights[:, learnable].ravel(), init.bias[learnable]])
        )
        theta = _solve(z, target[:, learnable], mask[:, learnable], c, start)
        weights[:, learnable], bias[learnable] = theta[: z.shape[1] * k].reshape(-1, k), theta[-k:]
    rate = np.clip(positives / np.maximum(observed, 1.0), 1e-6, 1 - 1e-6)
    rate = np.where(observed > 0, rate, 0.5)
    bias[~learnable] = np.log(rate[~learnable] / (1.0 - rate[~learnable]))
    return LinearFit(mean, std, weights, bias, float(c))


def recording_groups(keys) -> np.ndarray:
    """The recording's group (``track:<track>``, :func:`disco.records.clip_group`) of each
    ``<track>_<start>`` key: segments of one recording share it."""
    from disco.records import clip_group

    return np.array([clip_group(k) for k in keys], dtype=str).reshape(len(keys))


def group_folds(keys: np.ndarray, folds: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Fold index per example, whole groups to a fold: ``groups`` (e.g. artists), by default the
    recording (:func:`recording_groups`), so two segments of one recording never sit on both
    sides of a fold. Groups are dealt in a seeded shuffle of their order by first key, so the
    folds do not depend on how groups are named (artist or track ids of singleton groups give the
    same folds)."""
    keys = np.asarray(keys).astype(str)
    groups = recording_groups(keys) if groups is None else np.asarray(groups).astype(str)
    first: dict[str, str] = {}
    for key, group in zip(keys, groups):
        first[group] = min(first.get(group, key), key)
    unique = sorted(first, key=lambda g: (first[g], g))
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of_group = {unique[j]: i % folds for i, j in enumerate(order)}
    return np.array([fold_of_group[g] for g in groups], dtype=int).reshape(len(keys))


def choose_c(
    x: np.ndarray,
    y_true: np.ndarray,
    y_mask: np.ndarray,
    keys: np.ndarray,
    *,
    seed: int = params.DEFAULT_SEED,
    grid: tuple[float, ...] = C_GRID,
    folds: int = CV_FOLDS,
    groups: np.ndarray | None = None,
) -> tuple[float, dict[float, float]]:
    """C with the best out-of-fold mAP (k-fold over these examples grouped by ``groups``, default
    the recording: see :func:`group_folds`); returns it and the score of every C tried."""
    from disco.metrics import mean_ap

    fold = group_folds(keys, min(folds, len(np.unique(keys))), seed, groups)
    pooled = _pool(x)
    previous: dict[int, LinearFit | None] = {f: None for f in np.unique(fold)}
    scores: dict[float, float] = {}
    for c in sorted(grid):
        oof = np.zeros(np.shape(y_true), np.float64)
        for f in previous:
            held = fold == f
            # Each fold's fit warm-starts from its fit at the previous (smaller) C.
            previous[f] = fit_linear(pooled[~held], y_true[~held], y_mask[~held], c=c, init=previous[f])
            oof[held] = previous[f].predict(pooled[held][:, None, :])
        scores[c] = mean_ap(y_true, oof, y_mask)
        log.info("logistic regression C=%g: cross-validated mAP %.4f", c, scores[c])
        if past_the_peak(list(scores.values())):
            break
    grid = tuple(scores)
    best = max(grid, key=lambda c: (scores[c], -c))
    return best, scores


def past_the_peak(scores: list[float]) -> bool:
    """Two falls in a row along the ascending C path: larger C (slower to fit, weaker
    regularisation) only overfits more."""
    return len(scores) >= 3 and scores[-1] < scores[-2] < scores[-3]


def keras_linear(fit: LinearFit, *, frames: int, dim: int):
    """The fitted regression as a Keras model [frames, dim] → 20 probabilities."""
    import keras
    from keras import layers

    inputs = keras.Input((frames, dim), name="embedding")
    x = layers.GlobalAveragePooling1D(name="mean_over_frames")(inputs)
    x = layers.Normalization(
        axis=-1,
        mean=fit.mean.astype(np.float32),
        variance=(fit.std**2).astype(np.float32),
        name="standardise",
    )(x)
    dense = layers.Dense(params.NUM_CLASSES, activation="sigmoid", name="probabilities")
    outputs = dense(x)
    dense.set_weights([fit.weights.astype(np.float32), fit.bias.astype(np.float32)])
    return keras.Model(inputs, outputs, name="disco_linear")
