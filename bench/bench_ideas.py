"""Ideas benchmark (make bench-ideas): what the field uses on frozen embeddings, tried on the default.

Each row is the default recipe (``auto``: cross-fitting over 5 artist-grouped folds, the linear model
and the attention network as candidates, the winner by out-of-fold mAP) with one change to
the network or its training, run through the library's own cross-fitting and training loop (the
``build`` and ``loss`` seams of ``disco.train.train.prepare_network``). Refits are off in every row (the
network candidate is the fold networks' average), so a row costs less than a default fit and is compared
with the ``default, refits 0`` row, the same recipe without the change. On
``audioset-music20-dev`` (real VGGish features) over 3 seeds: out-of-fold mAP (what selection sees),
test mAP and the paired test difference to the first row (mean ± sd), the per-seed signs, the kept
candidate and the minutes per fit. An idea is kept only when its paired difference is positive on
every seed and its mean exceeds the difference's sd.

Results are cached per (features directory, row, seed) under ``--workdir`` (JSON), so rows can be run in separate
processes (``--only TEXT``) and the whole table printed afterwards from the cache; each entry holds a key of the
idea's settings, the default recipe and the training code, and one with another key is computed again.

    .venv/bin/python bench/bench_ideas.py [--dev DIR] [--seeds 3] [--only TEXT ...] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

DEV_DEFAULT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "audioset-music20-dev"
)
BASELINE = "default, refits 0 (the recipe every idea changes)"


@dataclass(frozen=True)
class Idea:
    label: str
    build: str | None = None  # a builder below, by name
    build_args: dict = field(default_factory=dict)
    data: str | None = None  # a training-data transform below, by name
    label_smoothing: float = 0.0
    cosine_epochs: int = 0  # > 0: cosine decay to 0 over this many epochs, no early stop


IDEAS = [
    Idea(BASELINE),
    # Not an idea to keep: the evidence for the default's head, measured the same way as the rest.
    Idea("mean+max pooled dense head averaged in (disco's network before)", build="pooled_head"),
    # Training-only augmentation inside the network (build_model's frame_resample and noise_sd).
    Idea(
        "Gaussian noise on the standardised embeddings (sd 0.2)",
        build="default",
        build_args={"noise_sd": 0.2},
    ),
    Idea(
        "frame resampling (half the clips: 10 frames drawn with replacement)",
        build="default",
        build_args={"frame_resample": 0.5},
    ),
    Idea(
        "frame resampling (0.5) and Gaussian noise (0.2) together",
        build="default",
        build_args={"frame_resample": 0.5, "noise_sd": 0.2},
    ),
    Idea("label smoothing 0.1", label_smoothing=0.1),
    Idea("balanced sampling (clips with a positive twice per epoch)", data="balanced"),
    Idea("longer schedule: 40 epochs, cosine decay, no early stop", cosine_epochs=40),
    Idea("multi-head attention pooling (4 heads per class)", build="multihead", build_args={"heads": 4}),
    Idea("small transformer over the 10 frames (2 layers, width 128)", build="transformer"),
]


# --- networks: each takes build_model's arguments -------------------------------------------------


def _default(name, **kw):
    from disco.train.models import build_model

    return build_model(name, **kw)


def _standardised_input(frames, dim, mean, variance):
    import keras
    from keras import layers

    inputs = keras.Input((frames, dim), name="embedding")
    return inputs, layers.Normalization(axis=-1, mean=mean, variance=variance, name="standardise")(inputs)


def _pooled_head(name, *, frames, dim, mean, variance, dropout, l2, model_name, **kw):
    """The default network with a mean+max pooled dense head averaged with its attention pooling:
    disco's attention network until its measured removal."""
    import keras
    from keras import layers, regularizers

    from disco import params
    from disco.train.models import AttentionPooling, frame_projection

    reg = regularizers.l2(l2) if l2 else None
    inputs, x = _standardised_input(frames, dim, mean, variance)
    x = frame_projection(x, dropout=dropout, reg=reg)
    att = AttentionPooling(params.NUM_CLASSES, l2=l2)(x)
    pooled = layers.Concatenate()([layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)])
    logits = layers.Dense(params.NUM_CLASSES, kernel_regularizer=reg)(layers.Dropout(dropout)(pooled))
    outputs = layers.Average(name="probabilities")([att, layers.Activation("sigmoid")(logits)])
    return keras.Model(inputs, outputs, name=model_name)


def _multihead(name, *, frames, dim, mean, variance, heads, dropout, l2, model_name, **kw):
    """The default network with ``heads`` attention poolings per class, averaged."""
    import keras
    from keras import layers, ops, regularizers

    from disco import params
    from disco.train.models import AttentionPooling, frame_projection

    reg = regularizers.l2(l2) if l2 else None
    inputs, x = _standardised_input(frames, dim, mean, variance)
    x = frame_projection(x, dropout=dropout, reg=reg)
    att = AttentionPooling(params.NUM_CLASSES * heads, l2=l2)(x)
    att = layers.Lambda(lambda a: ops.mean(ops.reshape(a, (-1, heads, params.NUM_CLASSES)), axis=1))(att)
    return keras.Model(inputs, att, name=model_name)


def _transformer(name, *, frames, dim, mean, variance, dropout, l2, model_name, width=128, layers_=2, **kw):
    """Pre-norm transformer encoder over the frames (learned positions), then the default's attention
    pooling."""
    import keras
    from keras import layers

    from disco import params
    from disco.train.models import AttentionPooling

    inputs, x = _standardised_input(frames, dim, mean, variance)
    x = layers.Dense(width)(x)
    positions = layers.Embedding(frames, width)(keras.ops.arange(frames)[None])
    x = x + positions
    for _ in range(layers_):
        h = layers.LayerNormalization()(x)
        x = x + layers.Dropout(dropout)(layers.MultiHeadAttention(4, width // 4, dropout=dropout)(h, h))
        h = layers.Dense(2 * width, activation="gelu")(layers.LayerNormalization()(x))
        x = x + layers.Dropout(dropout)(layers.Dense(width)(h))
    x = layers.LayerNormalization()(x)
    return keras.Model(inputs, AttentionPooling(params.NUM_CLASSES, l2=l2)(x), name=model_name)


BUILDERS = {
    "default": _default,
    "multihead": _multihead,
    "transformer": _transformer,
    "pooled_head": _pooled_head,
}


def _balanced(train):
    """Clips with at least one observed positive appear twice per epoch."""
    from disco import params

    positive = ((train.y_true >= params.POSITIVE_THRESHOLD) & (train.y_mask > 0)).any(axis=1)
    return train.subset(np.concatenate([np.arange(len(train)), np.flatnonzero(positive)]))


DATA = {"balanced": _balanced}


# --- one row, one seed ----------------------------------------------------------------------------


def _preparer(idea: Idea, source: str):
    """``prepare_network`` with the idea's data, network and loss; its schedule needs the number
    of batches, known only here."""
    from functools import partial

    import keras

    from disco.train.losses import MaskedBinaryCrossentropy
    from disco.train.train import prepare_network

    def prepare(train, **hp):
        if idea.data:
            train = DATA[idea.data](train)
        if idea.build:
            hp["build"] = partial(BUILDERS[idea.build], **idea.build_args)
        if idea.label_smoothing:
            hp["loss"] = MaskedBinaryCrossentropy(label_smoothing=idea.label_smoothing)
        if idea.cosine_epochs:
            steps = math.ceil(len(train) / hp["batch_size"]) * idea.cosine_epochs
            hp["learning_rate"] = keras.optimizers.schedules.CosineDecay(hp["learning_rate"], steps)
        return prepare_network(train, source=source, **hp)

    return prepare


@dataclass
class RowResult:
    label: str
    seed: int
    oof_map: float  # the network candidate's out-of-fold mAP
    chosen: str
    test_map: float  # the kept candidate's
    minutes: float


def run_row(idea: Idea, dev: str, seed: int, workdir: str) -> RowResult:
    from disco import params
    from disco.metrics import mean_ap
    from disco.train.features import load_features
    from disco.train.select import select_cross_fitted
    from disco.train.train import network_hyperparameters

    fs = load_features(dev, seed=seed)
    preset = params.PRESETS[params.DEFAULT_PRESET]
    network = {**network_hyperparameters(preset), "model": params.AUTO_CANDIDATES[-1]}
    if idea.cosine_epochs:
        # The whole schedule runs; the best pooled epoch is still the one kept.
        network.update(epochs=idea.cosine_epochs, patience=idea.cosine_epochs)
    t0 = time.time()
    picked = select_cross_fitted(
        fs,
        network=network,
        out_dir=os.path.join(workdir, "scratch"),
        seed=seed,
        prepare_network=_preparer(idea, fs.source),
        refits=0,
    )
    minutes = (time.time() - t0) / 60
    test = fs.splits[params.SPLIT_TEST]
    scores = {c.name: c.val_mAP for c in picked.selection.candidates}
    return RowResult(
        idea.label,
        seed,
        scores[network["model"]],
        picked.selection.chosen,
        float(mean_ap(test.y_true, picked.model.predict(test.x, verbose=0, batch_size=512), test.y_mask)),
        minutes,
    )


def _row_key(idea: Idea) -> str:
    """What a cached row's figures depend on besides the features and the seed: the idea's own
    fields, the default recipe it changes, and the code that trains and scores it (the library's
    training package, metrics and parameters, and this script). Any change computes the row again."""
    import disco
    from disco import params

    key = hashlib.sha1(json.dumps(asdict(idea), sort_keys=True).encode())
    key.update(json.dumps(asdict(params.PRESETS[params.DEFAULT_PRESET]), sort_keys=True).encode())
    package = os.path.dirname(disco.__file__)
    code = sorted(glob.glob(os.path.join(package, "train", "*.py")))
    code += [
        os.path.join(package, "metrics.py"),
        os.path.join(package, "params.py"),
        os.path.abspath(__file__),
    ]
    for path in code:
        with open(path, "rb") as fh:
            key.update(fh.read())
    return key.hexdigest()[:16]


def _cached(idea: Idea, dev: str, seed: int, workdir: str) -> RowResult:
    # Keyed by the features' directory too: another --dev must not reuse these figures.
    where = os.path.abspath(dev)
    cache = os.path.join(workdir, f"{os.path.basename(where)}-{hashlib.sha1(where.encode()).hexdigest()[:8]}")
    slug = "".join(c if c.isalnum() else "-" for c in idea.label)[:60]
    path = os.path.join(cache, f"{slug}-seed{seed}.json")
    key = _row_key(idea)
    if os.path.exists(path):
        with open(path) as fh:
            cached = json.load(fh)
        if cached.pop("key", None) == key:
            return RowResult(**cached)
        print(f"{idea.label}, seed {seed}: cached with other code or settings; computing again", flush=True)
    result = run_row(idea, dev, seed, workdir)
    os.makedirs(cache, exist_ok=True)
    with open(path + ".tmp", "w") as fh:
        json.dump({**asdict(result), "key": key}, fh)
    os.replace(path + ".tmp", path)
    return result


def _ms(values) -> str:
    return f"{np.mean(values):+.3f} ± {np.std(values):.3f}" if values else "n/a"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", default=DEV_DEFAULT, help="release root with real features (openmic-2018.npz)")
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workdir", default="runs/bench-ideas")
    ap.add_argument("--only", action="append", default=[], help="rows whose label contains TEXT")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not os.path.isdir(args.dev):
        raise SystemExit(f"{args.dev}: no such directory (the dev set lives in ../shared/data)")
    seeds = [args.seed + i for i in range(args.seeds)]
    rows = [i for i in IDEAS if not args.only or any(t in i.label for t in args.only)]
    if not rows:
        raise SystemExit(f"--only {args.only}: no row matches; rows: {[i.label for i in IDEAS]}")
    results: dict[str, list[RowResult]] = {}
    for seed in seeds:
        for idea in rows:
            r = _cached(idea, args.dev, seed, args.workdir)
            results.setdefault(idea.label, []).append(r)
            print(
                f"seed {seed}: {idea.label}: out-of-fold {r.oof_map:.3f}, test {r.test_map:.3f} "
                f"({r.chosen}, {r.minutes:.1f} min)",
                flush=True,
            )
    base = results.get(BASELINE)
    print(f"\nIdeas on the default (refits 0), audioset-music20-dev, seeds {', '.join(map(str, seeds))}:\n")
    print(
        f"{'idea':<72} {'out-of-fold':>13} {'test mAP':>13} {'test - row 1':>14} {'signs':>6} "
        f"{'kept cand.':>11} {'min/fit':>7}  verdict"
    )
    for label, rs in results.items():
        oof = [r.oof_map for r in rs]
        test = [r.test_map for r in rs]
        chosen = "/".join(sorted({r.chosen for r in rs}))
        if base is None or label == BASELINE:
            diff, signs, verdict = "", "", "(reference)" if label == BASELINE else "(no reference row run)"
        else:
            d = [r.test_map - b.test_map for r, b in zip(rs, base)]
            diff, signs = _ms(d), "".join("+" if x > 0 else "-" for x in d)
            verdict = "kept" if all(x > 0 for x in d) and np.mean(d) > np.std(d) else "not kept"
        print(
            f"{label:<72} {np.mean(oof):.3f} ± {np.std(oof):.3f} {np.mean(test):.3f} ± {np.std(test):.3f} "
            f"{diff:>14} {signs:>6} {chosen:>11} {np.mean([r.minutes for r in rs]):7.1f}  {verdict}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
