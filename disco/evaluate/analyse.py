"""Compare evaluated runs: every evaluate output found under a directory, in one table
(``results.csv``, ``results.md``) and two plots (mAP per run, per-class AP per run)."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from disco import params
from disco.errors import ConfigError

log = logging.getLogger(__name__)

RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
MAP_PLOT = "map_per_run.png"
AP_PLOT = "ap_per_class.png"

# The train step's hyperparameters, in the order the table shows them.
HYPERPARAMETERS = (
    "learning_rate",
    "dropout",
    "l2",
    "batch_size",
    "epochs",
    "patience",
    "mixup_alpha",
    "ensemble",
    "refits",
)
AP_PREFIX = "AP_"
COLUMN_ORDER = (
    "run",
    "model",
    "embedder",
    *HYPERPARAMETERS,
    "seed",
    "tuned",
    "mAP",
    "f1_macro",
    "f1_macro_tuned",
    "rf_mAP",
    "rf_f1_macro",
    "lr_mAP",
    "test_examples",
    "epochs_run",
    "best_epoch",
    "val_mAP",
)
# Shown in results.md and on stdout; results.csv has every column.
SUMMARY_COLUMNS = (
    "run",
    "model",
    "embedder",
    *HYPERPARAMETERS[:3],
    "seed",
    "mAP",
    "f1_macro",
    "rf_mAP",
    "lr_mAP",
)


def _read_json(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); ignored", path, exc)
        return None
    return data if isinstance(data, dict) else None


def _resolve_recorded(recorded: str | None, near: Path, root: Path, step: str) -> Path | None:
    """The output of ``step`` (its summary.json says so) recorded by a later step, absolute or
    relative to where that step ran. Copies inside ``root`` come first: when the runs were copied
    from elsewhere (another machine, a bucket, an archive), the recorded absolute path is the
    original's, which may be gone or, worse, re-run since; its last few components are looked for
    beside ``near``'s ancestors inside ``root`` (kfp.local keeps train and evaluate outputs as
    siblings under one pipeline run). The recorded path itself is taken last (a model trained
    outside the runs folder)."""
    if not recorded or "://" in recorded:
        return None

    def is_step(candidate: Path) -> bool:
        return ((_read_json(candidate / params.SUMMARY_FILE) or {}).get("step")) == step

    path = Path(recorded)
    if not path.is_absolute() and is_step(near / path):
        return (near / path).resolve()
    parts = path.parts
    for ancestor in (near, *near.parents):
        if ancestor != root and root not in ancestor.parents:
            break
        for n in range(min(4, len(parts) - 1), 0, -1):
            candidate = ancestor.joinpath(*parts[-n:])
            if is_step(candidate):
                return candidate.resolve()
    return path.resolve() if path.is_absolute() and is_step(path) else None


def find_runs(runs_dir: str | os.PathLike[str]) -> list[Path]:
    """Directories under runs_dir (itself included) holding an evaluate output, each run once.

    ``disco run`` leaves the evaluate output deep in ``pipeline_root/`` and a copy of its
    ``metrics.json`` at the top of the run directory (with ``run_summary.json``); the top directory
    stands for the run and the nested original is left out. Other nested evaluate outputs of the same
    directory (earlier pipeline runs into it) remain runs of their own."""

    root = Path(runs_dir).resolve()
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Hidden directories (.kfp-cache, .git, ...) hold no runs of their own.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != params.CACHE_DIR_NAME)
        if params.METRICS_FILE in filenames:
            found.append(Path(dirpath))
    covered: set[Path] = set()
    for top in found:
        summary = _read_json(top / params.RUN_SUMMARY_FILE)
        if summary is None:
            continue
        evaluation = _resolve_recorded(summary.get("evaluation_dir"), top, root, "evaluate")
        if evaluation is not None:
            covered.add(evaluation)
        copy = (top / params.METRICS_FILE).read_bytes()
        for other in found:
            if top in other.parents and (other / params.METRICS_FILE).read_bytes() == copy:
                covered.add(other)
    return [d for d in found if d not in covered]


def _num(value: Any) -> float:
    """JSON numbers as floats; null (a class with nothing to rank) as NaN."""
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def describe_run(run_dir: Path, root: Path) -> dict | None:
    """One results row: identity, hyperparameters, headline metrics and per-class AP of a run."""

    metrics = _read_json(run_dir / params.METRICS_FILE)
    if metrics is None or "mAP" not in metrics:
        log.warning("%s: not an evaluate output (no mAP); ignored", run_dir / params.METRICS_FILE)
        return None
    name = run_dir.relative_to(root).as_posix()
    row: dict[str, Any] = {
        "run": root.name if name == "." else name,
        "model": metrics.get("model"),
        "embedder": metrics.get("embedder"),
    }

    # Parameters, most specific last: what `disco run` was asked for, then what train recorded.
    found: dict[str, Any] = {}
    evaluation_dir = run_dir
    run_summary = _read_json(run_dir / params.RUN_SUMMARY_FILE)
    own_info = _read_json(run_dir / params.RUN_INFO_FILE) or {}
    if run_summary is not None:
        found.update(run_summary.get("parameters") or {})
        evaluation_dir = (
            _resolve_recorded(run_summary.get("evaluation_dir"), run_dir, root, "evaluate") or run_dir
        )
        if own_info.get("seed") is not None:
            found["seed"] = own_info["seed"]
    eval_info = _read_json(evaluation_dir / params.RUN_INFO_FILE) or {}
    model_dir = _resolve_recorded(
        (eval_info.get("parameters") or {}).get("model_dir"), evaluation_dir, root, "train"
    )
    if model_dir is not None:
        train_info = _read_json(model_dir / params.RUN_INFO_FILE) or {}
        found.update(train_info.get("parameters") or {})
        if train_info.get("seed") is not None:
            found["seed"] = train_info["seed"]
        train_summary = _read_json(model_dir / params.SUMMARY_FILE) or {}
        # run_info records the arguments as given (a preset and its overrides); the summary holds the
        # values the preset resolved to.
        found.update({k: train_summary[k] for k in HYPERPARAMETERS if train_summary.get(k) is not None})
        for key in ("epochs_run", "best_epoch", "val_mAP"):
            row[key] = train_summary.get(key)
    elif run_summary is None:
        log.warning("%s: the train step's run_info.json was not found; hyperparameters left blank", run_dir)
    row["model"] = row["model"] or found.get("model")
    row["embedder"] = row["embedder"] or found.get("embedder")
    for key in HYPERPARAMETERS:
        row[key] = found.get(key)
    row["seed"] = found.get("seed", eval_info.get("seed"))
    if "tune" in found:
        row["tuned"] = bool(found["tune"])

    rf = metrics.get("random_forest") or {}
    row.update(
        mAP=_num(metrics.get("mAP")),
        f1_macro=_num(metrics.get("f1_macro")),
        f1_macro_tuned=_num(metrics.get("f1_macro_tuned")),
        rf_mAP=_num(rf.get("mAP")),
        rf_f1_macro=_num(rf.get("f1_macro")),
        lr_mAP=_num((metrics.get("logistic_regression") or {}).get("mAP")),
        test_examples=metrics.get("examples"),
    )
    per_class = metrics.get("per_class") or {}
    for cls in params.CLASSES:
        row[f"{AP_PREFIX}{cls}"] = _num((per_class.get(cls) or {}).get("ap"))
    row["path"] = str(run_dir)
    return row


def _fmt(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:g}" if column in HYPERPARAMETERS else f"{value:.4f}"
    return str(value)


def summary_table(df, *, markdown: bool = False) -> str:
    """The summary columns as a Markdown table or aligned text."""
    cols = [c for c in SUMMARY_COLUMNS if c in df.columns]
    cells = [[_fmt(v, c) for v, c in zip(row, cols)] for row in df[cols].itertuples(index=False)]
    if markdown:
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in cells]
        return "\n".join(lines)
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(out)


def plot_map(df, path: Path) -> None:
    """mAP per run as horizontal bars, best at the top, each run's random-forest mAP marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(df)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * n))
    y = np.arange(n)[::-1]  # first row (best) at the top
    ax.barh(y, df["mAP"].fillna(0.0), color="tab:blue", label="model")
    for yi, value in zip(y, df["mAP"]):
        if not math.isnan(value):
            ax.text(value + 0.01, yi, f"{value:.3f}", va="center", fontsize=8)
    rf = df["rf_mAP"].to_numpy(dtype=float)
    if np.isfinite(rf).any():
        ax.scatter(rf, y, marker="D", color="black", zorder=3, label="random forest recipe")
    ax.set_yticks(y, df["run"])
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("test mAP (observed entries)")
    ax.set_title("mAP per run")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_class_ap(df, path: Path) -> None:
    """Per-class AP, runs x classes, as a heatmap; classes with nothing to rank are grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cols = [f"{AP_PREFIX}{c}" for c in params.CLASSES]
    values = np.ma.masked_invalid(df[cols].to_numpy(dtype=float))
    n = len(df)
    fig, ax = plt.subplots(figsize=(12, 1.8 + 0.45 * n))
    cmap = matplotlib.colormaps["viridis"].copy()
    cmap.set_bad("lightgrey")
    image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(n):
        for j in range(len(cols)):
            if not values.mask[i, j]:
                v = values[i, j]
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if v > 0.6 else "white",
                )
    ax.set_xticks(range(len(cols)), params.CLASSES, rotation=60, ha="right")
    ax.set_yticks(range(n), df["run"])
    ax.set_title("test AP per class (grey: no observed positive or negative)")
    fig.colorbar(image, ax=ax, label="AP", fraction=0.03)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def analyse_runs(runs_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]):
    """Aggregate every evaluated run under runs_dir into out_dir: results.csv (one row per run, mAP
    descending), results.md, map_per_run.png and ap_per_class.png. Returns the table."""
    import pandas as pd

    root = Path(runs_dir).resolve()
    if not root.is_dir():
        raise ConfigError(f"{runs_dir}: not a directory")
    rows = [r for r in (describe_run(d, root) for d in find_runs(root)) if r is not None]
    if not rows:
        raise ConfigError(
            f"{runs_dir}: no runs found (no evaluate output, i.e. no {params.METRICS_FILE}, under it)"
        )
    df = pd.DataFrame(rows)
    leading = [c for c in COLUMN_ORDER if c in df.columns]
    ap_cols = [f"{AP_PREFIX}{c}" for c in params.CLASSES]
    df = df[leading + [c for c in df.columns if c not in (*leading, *ap_cols, "path")] + ap_cols + ["path"]]
    df = df.sort_values(["mAP", "run"], ascending=[False, True], na_position="last", kind="mergesort")
    df = df.reset_index(drop=True)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / RESULTS_CSV, index=False)
    plot_map(df, out / MAP_PLOT)
    plot_class_ap(df, out / AP_PLOT)
    (out / RESULTS_MD).write_text(
        f"# Runs under `{runs_dir}`\n\n{len(df)} runs, best test mAP first; every column in "
        f"[{RESULTS_CSV}]({RESULTS_CSV}).\n\n{summary_table(df, markdown=True)}\n\n"
        f"![mAP per run]({MAP_PLOT})\n\n![AP per class]({AP_PLOT})\n",
        encoding="utf-8",
    )
    log.info("analyse: %d runs under %s -> %s", len(df), runs_dir, out)
    return df
