"""Quality benchmark (make bench-quality): first the real-features table, then the demo table.

1. ``audioset-music20-dev`` (real VGGish features, release layout; ../shared): every preset and every
   idea tried, over 3 seeds (each seed also draws its own validation split), mean ± sd of test mAP,
   macro F1 at the decision rule (thresholds tuned on held-out training predictions), at 0.5, with
   thresholds tuned on test out-of-fold (10-fold: what tuning on test-like data reaches) and in-sample
   (the oracle, optimistic), and the minutes per fit; the references (random forest recipe,
   per-class LR with C by cross-validation, both on the full train split) scored by the same code.
   Checks issue 11's targets on the means: default >= LR + 0.05 and >= RF + 0.15 mAP, F1 at the rule
   within 0.03 of the test-tuned (out-of-fold) F1, default's training under 5 minutes.
2. The demo dataset (resample → embed with musicnn → the presets), and the embedding precision check.

    .venv/bin/python bench/bench_quality.py [--dev DIR] [--seeds 3] [--skip-demo]
        [--only-dev-presets | --only-default | --only TEXT ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

import numpy as np

DEV_DEFAULT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "audioset-music20-dev"
)

# (label, preset, overrides): the presets, then the ideas tried, each a change of one thing.
PRESET_ROWS = [
    ("default preset (auto, cross-fitted: LR / attention, 5 refits / avg)", "default", {}),
    ("seed preset (dense baseline, lr 1e-4, L2 1e-2)", "seed", {}),
    ("demo preset (one attention model, lr 1e-3, L2 1e-4)", "demo", {}),
]
IDEA_ROWS = [
    ("idea: default + mixup 0.4 on the embeddings", "default", {"mixup_alpha": 0.4}),
    ("idea: default, dropout 0.5", "default", {"dropout": 0.5}),
    ("idea: linear only (LR, C by cross-fitting)", "default", {"model": "linear"}),
    ("idea: default, refits 0 (the 5 fold networks averaged)", "default", {"refits": 0}),
    ("idea: demo preset + mixup 0.4 (one net, one validation split)", "demo", {"mixup_alpha": 0.4}),
    ("idea: seed ensemble x3 on one validation split", "demo", {"ensemble": 3}),
]
RF = "random forest recipe (full train)"
LR = "logistic regression per class (full train, C by CV)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", default=DEV_DEFAULT, help="release root with real features (openmic-2018.npz)")
    ap.add_argument("--clips", type=int, default=200, help="demo clips")
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workdir", default="runs/bench-quality")
    ap.add_argument("--precision", choices=("float32", "bfloat16"), default=None)
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-dev", action="store_true")
    ap.add_argument("--only-dev-presets", action="store_true", help="dev table without the idea rows")
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="dev table of the default preset (with the references) and the rows whose label contains TEXT",
    )
    ap.add_argument(
        "--only-default",
        action="store_true",
        help="dev table of the default preset and the references only (e.g. its fit time on an idle machine)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t0 = time.perf_counter()
    seeds = [args.seed + k for k in range(args.seeds)]
    if not args.skip_demo:
        # Now, not after the dev table's hour: a folder in the way fails at once, a rerun reuses it.
        from disco.data.demo import ensure_demo_dataset

        ensure_demo_dataset(os.path.join(args.workdir, "openmic-2018"), clips=args.clips, seed=args.seed)
    if not args.skip_dev:
        rows = PRESET_ROWS + ([] if args.only_dev_presets else IDEA_ROWS)
        unmatched = [text for text in args.only if not any(text in r[0] for r in rows[1:])]
        if unmatched:
            raise SystemExit(f"--only {unmatched[0]!r}: no row's label contains it")
        if args.only_default or args.only:
            rows = rows[:1] + [r for r in rows[1:] if any(text in r[0] for text in args.only)]
        results = _table(args.dev, rows, seeds, os.path.join(args.workdir, "dev"))
        _print_table(
            f"Test split of {os.path.basename(os.path.normpath(args.dev))} (real VGGish features)",
            results,
            seeds,
        )
        _targets(results)
    if not args.skip_demo:
        embeddings = _demo_embeddings(args, args.workdir, t0)
        from disco.embedders.precision import resolve_precision

        chosen = resolve_precision(args.precision)
        results = _table(embeddings[chosen], PRESET_ROWS, seeds, os.path.join(args.workdir, "demo"))
        _print_table(f"Demo dataset ({args.clips} clips), musicnn embeddings, {chosen}", results, seeds)
        _precision_check(args, embeddings)
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


def _table(features: str, rows, seeds, workdir: str) -> dict[str, dict[str, list]]:
    """label -> {"mAP": [...], "f1": [...], "f1_half": [...], "f1_oracle": [...], "minutes": [...]}."""
    from disco.evaluate import run_evaluate
    from disco.train import run_train

    out: dict[str, dict[str, list]] = {}
    for seed in seeds:
        for i, (label, preset, overrides) in enumerate(rows):
            mdir = os.path.join(workdir, f"model-{i}-seed{seed}")
            edir = os.path.join(workdir, f"eval-{i}-seed{seed}")
            tr = run_train(features, mdir, preset=preset, seed=seed, **overrides)
            references = i == 0
            run_evaluate(mdir, features, edir, seed=seed, rf_baseline=references)
            with open(os.path.join(edir, "metrics.json")) as fh:
                m = json.load(fh)
            _add(out, label, m, tr["seconds"] / 60)
            if references:
                _add(out, RF, m["random_forest"], None)
                _add(out, LR, m["logistic_regression"], None)
            print(
                f"seed {seed}: {label}: test mAP {m['mAP']:.3f} ({tr['seconds']:.0f} s, {tr['chosen']})",
                flush=True,
            )
    return out


def _add(out, label, m, minutes):
    row = out.setdefault(
        label, {"mAP": [], "f1": [], "f1_half": [], "f1_oracle": [], "f1_cross": [], "minutes": []}
    )
    row["mAP"].append(m["mAP"])
    row["f1"].append(m["f1_macro"])
    row["f1_half"].append(m["f1_macro_at_0.5"])
    row["f1_oracle"].append(m["f1_macro_oracle"])
    row["f1_cross"].append(m["f1_macro_cross_tuned"])
    if minutes is not None:
        row["minutes"].append(minutes)


def _ms(values) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "n/a"


def _print_table(title: str, results, seeds) -> None:
    print(f"\n{title}, seeds {', '.join(map(str, seeds))} (mean ± sd):\n")
    print(
        f"{'model':<66} {'test mAP':>13} {'F1 (rule)':>13} {'F1 @0.5':>13} {'F1 test-cv':>13} "
        f"{'F1 oracle':>13} {'min/fit':>7}"
    )
    for label, r in results.items():
        minutes = f"{np.mean(r['minutes']):7.1f}" if r["minutes"] else f"{'':>7}"
        print(
            f"{label:<66} {_ms(r['mAP']):>13} {_ms(r['f1']):>13} {_ms(r['f1_half']):>13} "
            f"{_ms(r['f1_cross']):>13} {_ms(r['f1_oracle']):>13} {minutes}"
        )


def _targets(results) -> None:
    default = results[PRESET_ROWS[0][0]]
    d, lr, rf = (float(np.mean(results[k]["mAP"])) for k in (PRESET_ROWS[0][0], LR, RF))
    f1, oracle = float(np.mean(default["f1"])), float(np.mean(default["f1_oracle"]))
    cross = float(np.mean(default["f1_cross"]))
    minutes = float(np.max(default["minutes"]))
    print(f"\ndefault - LR: {d - lr:+.3f} mAP (target >= +0.05): {'MET' if d - lr >= 0.05 else 'NOT MET'}")
    print(f"default - RF: {d - rf:+.3f} mAP (target >= +0.15): {'MET' if d - rf >= 0.15 else 'NOT MET'}")
    print(
        f"default macro F1 at the rule {f1:.3f}, with thresholds tuned on test out-of-fold {cross:.3f}: "
        f"gap {cross - f1:+.3f} (target <= 0.03): {'MET' if cross - f1 <= 0.03 else 'NOT MET'}"
    )
    print(
        f"  (in-sample oracle, tuned on the very test entries it scores: {oracle:.3f}, gap {oracle - f1:+.3f}; "
        "with a handful of test positives per class it overstates what any threshold rule reaches)"
    )
    print(
        f"default training: at most {minutes:.1f} min per fit (target < 5): {'MET' if minutes < 5 else 'NOT MET'}"
    )


def _precision_check(args, embeddings) -> None:
    """One model trained on float32 embeddings, scored on the float32 and on the bfloat16 embeddings
    of the same test clips: the precision's own effect on downstream mAP, free of training noise."""
    from disco.evaluate import run_evaluate
    from disco.train import run_train

    mdir = os.path.join(args.workdir, "demo", "model-precision")
    run_train(embeddings["float32"], mdir, preset="demo", seed=args.seed)
    rows = []
    for precision in ("float32", "bfloat16"):
        ev = run_evaluate(
            mdir,
            embeddings[precision],
            os.path.join(args.workdir, "demo", f"eval-{precision}"),
            seed=args.seed,
            rf_baseline=False,
        )
        rows.append((precision, ev["mAP"], ev["f1_macro"]))
    print("\nEmbedding precision: demo preset trained on float32 embeddings, scored on the test clips'")
    print("float32 and bfloat16 embeddings:\n")
    print(f"{'test embeddings':<16} {'test mAP':>8} {'macro F1':>8}")
    for precision, m, f1 in rows:
        print(f"{precision:<16} {m:8.3f} {f1:8.3f}")
    print(f"bfloat16 - float32 test mAP: {rows[1][1] - rows[0][1]:+.4f} (target: within ±0.005)")


def _demo_embeddings(args, w: str, t0: float) -> dict[str, str]:
    from disco.beam.embed import run_embed
    from disco.beam.resample import run_resample
    from disco.data.demo import ensure_demo_dataset

    data = os.path.join(w, "openmic-2018")
    ensure_demo_dataset(data, clips=args.clips, seed=args.seed)
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
