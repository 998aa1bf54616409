"""Quality benchmark: demo data → resample → embed (musicnn) → train (each model) → evaluate.

Prints test mAP and macro F1 (official-style split of the demo dataset, observed entries only)
for each model next to the random-forest recipe scored by the same code. Targets (issue 5): the
stronger model reaches test mAP >= 0.90 on the demo dataset, and every model beats the random
forest on mAP. Then the embedding precision check (issue 4): the stronger model, trained on float32
embeddings, scored on float32 and on bfloat16 embeddings of the same test clips; downstream mAP
must not move.

    .venv/bin/python bench/bench_quality.py [--clips 200] [--seed 2018] [--workdir runs/bench-quality]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

import numpy as np

# (label, model, hyperparameters): each model at the settings `make demo` uses. The earlier
# project's settings (the defaults: lr 1e-4, L2 1e-2) were chosen for 15,000 training clips, ~230
# steps an epoch; on ~130 demo clips that is 3 steps an epoch and the baseline stops undertrained,
# so its row is shown for reference, outside the comparison.
CONFIGS = [
    ("baseline (lr 1e-3, L2 1e-4, dropout 0.5)", "baseline", {"learning_rate": 1e-3, "l2": 1e-4}),
    (
        "attention (lr 1e-3, L2 1e-4, dropout 0.3)",
        "attention",
        {"learning_rate": 1e-3, "l2": 1e-4, "dropout": 0.3},
    ),
]
REFERENCE = ("baseline, brief defaults (lr 1e-4, L2 1e-2; reference)", "baseline", {})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--workdir", default="runs/bench-quality")
    ap.add_argument("--precision", choices=("float32", "bfloat16"), default=None)
    ap.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="training seeds for the spread table (each also draws its own validation split); 1: none",
    )
    ap.add_argument(
        "--features",
        default=None,
        help="skip the demo: train and evaluate on these features (an embed output, or the release "
        "root holding openmic-2018.npz for the real VGGish comparison)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from disco.evaluate import run_evaluate
    from disco.train import run_train

    w = args.workdir
    t0 = time.perf_counter()
    embeddings = {}
    if args.features:
        feats, source = args.features, f"features from {args.features}"
    else:
        embeddings = _demo_embeddings(args, w, t0)
        from disco.embedders.precision import resolve_precision

        chosen = resolve_precision(args.precision)
        feats, source = embeddings[chosen], f"demo dataset ({args.clips} clips), musicnn embeddings, {chosen}"

    def train_eval(i, model: str, hp: dict, features: str, *, baselines: bool = False, seed: int = args.seed):
        mdir = os.path.join(w, f"model-{i}")
        tr = run_train(features, mdir, model=model, seed=seed, **hp)
        ev = run_evaluate(mdir, features, os.path.join(w, f"eval-{i}"), seed=seed, rf_baseline=baselines)
        with open(os.path.join(w, f"eval-{i}", "metrics.json")) as fh:
            metrics = json.load(fh)
        return tr, ev, metrics

    rows = []
    for i, (label, model, hp) in enumerate(CONFIGS):
        tr, ev, metrics = train_eval(i, model, hp, feats, baselines=(i == 0))
        rows.append((label, ev["mAP"], ev["f1_macro"], tr["val_mAP"], tr["best_epoch"]))
        if i == 0:
            refs = [
                (name, metrics[key]["mAP"], metrics[key]["f1_macro"])
                for key, name in (
                    ("random_forest", "random forest (100 trees, depth 8, mean features)"),
                    ("logistic_regression", "logistic regression per class (mean features)"),
                )
            ]
        print(f"trained {label}: test mAP {ev['mAP']:.3f}", flush=True)
    tr, ev, _ = train_eval(len(CONFIGS), REFERENCE[1], REFERENCE[2], feats)
    reference = (REFERENCE[0], ev["mAP"], ev["f1_macro"], tr["val_mAP"], tr["best_epoch"])

    print(f"\nTest split, {source}, seed {args.seed}:\n")
    print(f"{'model':<56} {'test mAP':>8} {'macro F1':>8} {'val mAP':>8} {'epoch':>6}")
    for label, m, f1, v, e in rows:
        print(f"{label:<56} {m:8.3f} {f1:8.3f} {v:8.3f} {e:6d}")
    for name, m, f1 in refs:
        print(f"{name:<56} {m:8.3f} {f1:8.3f}")
    label, m, f1, v, e = reference
    print(f"{label:<56} {m:8.3f} {f1:8.3f} {v:8.3f} {e:6d}")
    best = max(r[1] for r in rows)
    rf = refs[0][1]
    print(
        f"\nstronger model test mAP {best:.3f} (target >= 0.90 on the demo): {'MET' if best >= 0.90 else 'NOT MET'}"
    )
    print(f"every model beats the random forest on mAP: {'yes' if all(r[1] > rf for r in rows) else 'no'}")
    print(
        f"stronger model over random forest / logistic regression: {rows[-1][1] - rf:+.3f} / "
        f"{rows[-1][1] - refs[1][1]:+.3f} mAP"
    )

    if args.seeds > 1:
        # The same comparison over more seeds: on a test split of a few dozen clips one run's ranking
        # can be noise, so the targets are also checked on the mean.
        draws = {label: [m] for label, m, *_ in rows}
        draws.update({name: [m] for name, m, _ in refs})
        seeds = [args.seed + k for k in range(args.seeds)]
        for seed in seeds[1:]:
            for i, (label, model, hp) in enumerate(CONFIGS):
                _, ev, metrics = train_eval(
                    f"{i}-seed{seed}", model, hp, feats, baselines=(i == 0), seed=seed
                )
                draws[label].append(ev["mAP"])
                if i == 0:
                    for key, (name, _, _) in zip(("random_forest", "logistic_regression"), refs):
                        draws[name].append(metrics[key]["mAP"])
            print(f"seed {seed} done", flush=True)
        print(
            f"\nTest mAP over seeds {', '.join(map(str, seeds))} (each seed also draws its validation split):\n"
        )
        print(f"{'model':<56} {'mean':>6} {'sd':>6}  per seed")
        for name, values in draws.items():
            print(
                f"{name:<56} {np.mean(values):6.3f} {np.std(values):6.3f}  "
                f"{' '.join(f'{v:.3f}' for v in values)}"
            )
        rf_mean = float(np.mean(draws[refs[0][0]]))
        means = [float(np.mean(draws[label])) for label, *_ in CONFIGS]
        print(
            f"\nstronger model mean test mAP {max(means):.3f} (target >= 0.90): "
            f"{'MET' if max(means) >= 0.90 else 'NOT MET'}"
        )
        print(
            f"every model beats the random forest on mean mAP: {'yes' if all(m > rf_mean for m in means) else 'no'}"
        )

    if embeddings:
        # One model trained on float32 embeddings, scored on the float32 and on the bfloat16
        # embeddings of the same test clips: the precision's own effect on downstream mAP, free of
        # training noise (a second training run alone moves mAP by ~0.02 on this small test split).
        stronger = CONFIGS[-1]
        i = len(CONFIGS) + 1
        mdir = os.path.join(w, f"model-{i}")
        run_train(embeddings["float32"], mdir, model=stronger[1], seed=args.seed, **stronger[2])
        precision_rows = []
        for precision in ("float32", "bfloat16"):
            ev = run_evaluate(
                mdir,
                embeddings[precision],
                os.path.join(w, f"eval-{i}-{precision}"),
                seed=args.seed,
                rf_baseline=False,
            )
            precision_rows.append((precision, ev["mAP"], ev["f1_macro"]))
        print(
            f"\nEmbedding precision: {stronger[0]} trained on float32 embeddings, scored on the test clips'\n"
            f"float32 and bfloat16 embeddings:\n"
        )
        print(f"{'test embeddings':<16} {'test mAP':>8} {'macro F1':>8}")
        for precision, m, f1 in precision_rows:
            print(f"{precision:<16} {m:8.3f} {f1:8.3f}")
        delta = precision_rows[1][1] - precision_rows[0][1]
        print(f"bfloat16 - float32 test mAP: {delta:+.4f} (target: within ±0.005)")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


def _demo_embeddings(args, w: str, t0: float) -> dict[str, str]:
    from disco.beam.embed import run_embed
    from disco.beam.resample import run_resample
    from disco.data.demo import generate_demo_dataset

    data = os.path.join(w, "openmic-2018")
    generate_demo_dataset(data, clips=args.clips, seed=args.seed)
    print(f"demo data: {args.clips} clips ({time.perf_counter() - t0:.0f} s)", flush=True)
    rs = run_resample(data, os.path.join(w, "resampled"), seed=args.seed)
    print(f"resample: {rs['ok']} ok, {rs['failed']} failed ({rs['seconds']:.0f} s)", flush=True)
    embeddings = {}
    for precision in ("float32", "bfloat16"):
        em = run_embed(
            [os.path.join(w, "resampled")],
            os.path.join(w, f"embeddings-{precision}"),
            embedder="musicnn",
            precision=precision,
        )
        embeddings[precision] = os.path.join(w, f"embeddings-{precision}")
        print(
            f"embed: {em['records']} records, musicnn {em['frames']}x{em['dim']} {em['precision']} "
            f"({em['seconds']:.0f} s)",
            flush=True,
        )
    return embeddings


if __name__ == "__main__":
    raise SystemExit(main())
