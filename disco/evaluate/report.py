"""The one renderer of an evaluation: the metrics table (terminal, Markdown, HTML) and the
self-contained HTML report (plots inlined as PNG, audio inlined as data URIs).

Every place that shows metrics (``disco evaluate``, ``disco run``, the local runner, the KFP
component's Markdown artifact and ``report.html``) goes through :func:`metrics_table`, so the
columns, the reference models and the way an undefined AP is shown are decided here once.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from disco import fileio, params
from disco.metrics import binarize

log = logging.getLogger(__name__)

HTML_FILE = params.REPORT_FILE
MARKDOWN_FILE = "report.md"
# The train step's per-epoch log (disco.train.train.HISTORY_FILE; named here so rendering a report
# does not import the training code and TensorFlow with it).
HISTORY_FILE = "history.csv"
# Error analysis: clips listed per class and side, and the most audio inlined into one report (a
# KFP HTML artifact is one file; 10 s of Ogg Vorbis is ~150 kB as a data URI).
ERROR_EXAMPLES = 3
AUDIO_BUDGET_BYTES = 4_000_000
UNDEFINED = "n/a"


@dataclass(frozen=True)
class Reference:
    """A reference recipe evaluate scores beside the model (its key in metrics.json)."""

    key: str
    short: str
    label: str


REFERENCES = (
    Reference("random_forest", "RF", "random forest (100 trees, depth 8, time-averaged features)"),
    Reference("logistic_regression", "LR", "logistic regression per class (time-averaged features)"),
)


# ---------------------------------------------------------------------------------------------
# The metrics table: one row model, three formats.


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    markdown_align: str = "---:"


@dataclass
class MetricsTable:
    """Rows of the per-class table and the summary lines below it, as formatted cells."""

    columns: list[Column]
    rows: list[list[str]]
    undefined: list[str]  # classes whose AP is undefined on this split
    summary: list[list[str]]  # [label, mAP, macro F1 @0.5, macro F1 @tuned]
    selection: Mapping[str, Any] | None = None


def _num(value: Any, digits: int = 3) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return UNDEFINED
    return UNDEFINED if math.isnan(v) or math.isinf(v) else f"{v:.{digits}f}"


def _references(metrics: Mapping[str, Any]) -> list[tuple[Reference, Mapping[str, Any]]]:
    return [(r, metrics[r.key]) for r in REFERENCES if isinstance(metrics.get(r.key), Mapping)]


def build_table(metrics: Mapping[str, Any]) -> MetricsTable:
    refs = _references(metrics)
    columns = [Column("class", 20, "---"), Column("AP", 6), Column("F1@0.5", 6), Column("F1@t", 6)]
    columns += [Column("P@t", 6), Column("R@t", 6)]
    columns += [Column(f"{r.short} AP", 6) for r, _ in refs]
    columns += [Column("pos", 4), Column("obs", 4)]
    rows, undefined = [], []
    for name, row in (metrics.get("per_class") or {}).items():
        if row.get("ap") is None:
            undefined.append(name)
        cells = [
            name + (" *" if row.get("ap") is None else ""),
            _num(row.get("ap")),
            # metrics.json's "f1" is at the decision rule since the thresholds became the rule.
            _num(row.get("f1_at_0.5", row.get("f1"))),
            _num(row.get("f1_tuned")),
            _num(row.get("precision")),
            _num(row.get("recall")),
        ]
        cells += [_num((ref.get("per_class") or {}).get(name, {}).get("ap")) for _, ref in refs]
        cells += [str(row.get("support", "")), str(row.get("observed", ""))]
        rows.append(cells)
    summary = [
        [
            "model",
            _num(metrics.get("mAP")),
            _num(metrics.get("f1_macro_at_0.5", metrics.get("f1_macro"))),
            _num(metrics.get("f1_macro_tuned")),
        ]
    ]
    for r, ref in refs:
        summary.append(
            [
                r.label,
                _num(ref.get("mAP")),
                _num(ref.get("f1_macro_at_0.5", ref.get("f1_macro"))),
                _num(ref.get("f1_macro_tuned")),
            ]
        )
    selection = metrics.get("selection")
    return MetricsTable(
        columns, rows, undefined, summary, selection if isinstance(selection, Mapping) else None
    )


_UNDEFINED_NOTE = (
    "* AP undefined: no observed positive (or no observed negative) in the test split; left out of mAP"
)
_SUMMARY_TITLES = ("", "mAP", "macro F1 @0.5", "macro F1 @tuned")


def metrics_table(metrics: Mapping[str, Any], fmt: str = "text") -> str:
    """The per-class test table with the summary (model and reference recipes) as ``text`` (the
    terminal), ``markdown`` (KFP's Markdown artifact, report.md) or ``html`` (report.html)."""
    table = build_table(metrics)
    render = {"text": _text, "markdown": _markdown, "html": _html}.get(fmt)
    if render is None:
        raise ValueError(f"unknown table format {fmt!r}")
    return render(table)


def _text(t: MetricsTable) -> str:
    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return f"{first:<{t.columns[0].width}} " + " ".join(
            f"{c:>{col.width}}" for c, col in zip(rest, t.columns[1:])
        )

    out = [line([c.title for c in t.columns])]
    out += [line(r) for r in t.rows]
    out.append("-" * len(out[0]))
    label_width = max(len(r[0]) for r in t.summary)
    out.append(f"{'':<{label_width}}  {'mAP':>6} {'F1@0.5':>6} {'F1@t':>6}")
    out += [f"{r[0]:<{label_width}}  {r[1]:>6} {r[2]:>6} {r[3]:>6}" for r in t.summary]
    if t.undefined:
        out.append(_UNDEFINED_NOTE)
    out += _selection_text(t.selection)
    return "\n".join(out)


def _markdown(t: MetricsTable) -> str:
    def cell(c: str) -> str:
        return c.replace("|", "\\|")

    out = ["| " + " | ".join(c.title for c in t.columns) + " |"]
    out.append("| " + " | ".join(c.markdown_align for c in t.columns) + " |")
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in t.rows]
    out += ["", "| " + " | ".join(_SUMMARY_TITLES) + " |", "| --- | ---: | ---: | ---: |"]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in t.summary]
    if t.undefined:
        out += ["", f"\\{_UNDEFINED_NOTE}"]
    out += _selection_markdown(t.selection)
    return "\n".join(out) + "\n"


def _html(t: MetricsTable) -> str:
    e = html.escape
    out = ["<table><tr>" + "".join(f"<th>{e(c.title)}</th>" for c in t.columns) + "</tr>"]
    for r in t.rows:
        css = ' class="undefined"' if r[0].endswith(" *") else ""
        out.append(f"<tr{css}>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>")
    out.append("</table>")
    out.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in _SUMMARY_TITLES) + "</tr>")
    out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in t.summary]
    out.append("</table>")
    if t.undefined:
        out.append(f'<p class="note">{e(_UNDEFINED_NOTE)}</p>')
    out.append(_selection_html(t.selection))
    return "\n".join(out)


# Model selection (candidates and their held-out scores, the decision rule): written into
# metrics.json under "selection" by the training side when it compares candidates. Rendered
# generically so the three formats follow whatever candidates' fields it records.


def _selection_rows(selection: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    candidates = [c for c in selection.get("candidates") or [] if isinstance(c, Mapping)]
    keys: list[str] = []
    for c in candidates:
        keys += [k for k in c if k not in keys]
    rows = [
        [_num(c.get(k)) if isinstance(c.get(k), float) else str(c.get(k, "")) for k in keys]
        for c in candidates
    ]
    return keys, rows


def _selection_lines(selection: Mapping[str, Any]) -> list[str]:
    lines = []
    if selection.get("chosen") is not None:
        lines.append(f"chosen: {selection['chosen']}")
    if selection.get("rule"):
        lines.append(f"decision rule: {selection['rule']}")
    return lines


def _selection_method(selection: Mapping[str, Any]) -> str:
    # "cross-fitting" (scores are out-of-fold) in models trained since it exists; older ones say.
    return str(selection.get("method") or "validation")


def _selection_text(selection: Mapping[str, Any] | None) -> list[str]:
    if not selection:
        return []
    keys, rows = _selection_rows(selection)
    widths = [max(len(k), *(len(r[i]) for r in rows)) for i, k in enumerate(keys)] if rows else []
    out = ["", f"model selection ({_selection_method(selection)}):"]
    if rows:
        out.append("  " + " ".join(f"{k:>{w}}" for k, w in zip(keys, widths)))
        out += ["  " + " ".join(f"{c:>{w}}" for c, w in zip(r, widths)) for r in rows]
    return out + [f"  {line}" for line in _selection_lines(selection)]


def _selection_markdown(selection: Mapping[str, Any] | None) -> list[str]:
    if not selection:
        return []
    keys, rows = _selection_rows(selection)
    out = ["", f"**Model selection ({_selection_method(selection)})**", ""]
    if rows:
        out += ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        out.append("")
    return out + [f"- {line}" for line in _selection_lines(selection)]


def _selection_html(selection: Mapping[str, Any] | None) -> str:
    if not selection:
        return ""
    e = html.escape
    keys, rows = _selection_rows(selection)
    out = [f"<h3>Model selection ({e(_selection_method(selection))})</h3>"]
    if rows:
        out.append("<table><tr>" + "".join(f"<th>{e(k)}</th>" for k in keys) + "</tr>")
        out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
        out.append("</table>")
    out += [f"<p>{e(line)}</p>" for line in _selection_lines(selection)]
    return "\n".join(out)


def headline(metrics: Mapping[str, Any]) -> str:
    """One line: test mAP and macro F1 with the references' mAP."""
    parts = [f"test mAP {_num(metrics.get('mAP'))}, macro F1 {_num(metrics.get('f1_macro'))}"]
    parts += [f"{r.short} mAP {_num(ref.get('mAP'))}" for r, ref in _references(metrics)]
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# What the run was: gathered from the steps' summary.json / run_info.json, never from log text.


@dataclass
class RunDescription:
    sections: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)
    dataset: str | None = None

    def add(self, title: str, items: Sequence[tuple[str, Any]]) -> None:
        kept = [(k, _value(v)) for k, v in items if v is not None and v != ""]
        if kept:
            self.sections.append((title, kept))


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-2 and v != 0 else f"{v:.4g}"
    if isinstance(v, Mapping):
        return ", ".join(f"{k} {_value(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v)
    return str(v)


def _read_json(directory: str | None, name: str) -> dict[str, Any]:
    if not directory:
        return {}
    path = fileio.join(directory, name)
    try:
        if not fileio.exists(path):
            return {}
        data = json.loads(fileio.read_text(path))
    except (OSError, ValueError) as exc:
        log.warning("report: cannot read %s (%s); its step is left out of the run parameters", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _validation_fraction(train: dict, train_info: dict, feat_info: dict, resample_info: dict):
    """The fraction that carved the validation split the model saw: the step that made the split's
    (resample, or import-features), not train's own parameter, which only acts on the release's
    features read directly (records carry their split)."""
    if train.get("feature_kind") in (None, "records"):
        info = resample_info or (feat_info if feat_info.get("step") == "import_features" else {})
        return info.get("parameters", {}).get("validation_fraction")
    return train_info.get("parameters", {}).get("validation_fraction")


def describe_run(
    model_dir: str | None, features: str | None, *, evaluate_seconds: float | None = None
) -> RunDescription:
    """Follow the chain evaluate ← train (model_dir) ← embed / import-features (features) ←
    resample, augment (the embed step's inputs), reading each step's summary.json and run_info.json."""
    d = RunDescription()
    train, train_info = (
        _read_json(model_dir, params.SUMMARY_FILE),
        _read_json(model_dir, params.RUN_INFO_FILE),
    )
    feat, feat_info = _read_json(features, params.SUMMARY_FILE), _read_json(features, params.RUN_INFO_FILE)
    upstream = {}
    for directory in feat.get("inputs") or []:
        s = _read_json(directory, params.SUMMARY_FILE)
        if s.get("step"):
            upstream[s["step"]] = (s, _read_json(directory, params.RUN_INFO_FILE))
    resample, resample_info = upstream.get("resample", ({}, {}))
    augment, _ = upstream.get("augment", ({}, {}))

    step = feat_info.get("step")
    if resample:
        d.dataset = resample.get("dataset") or resample_info.get("parameters", {}).get("data_uri")
    elif step == "import_features":
        d.dataset = feat_info.get("parameters", {}).get("data_uri")
    elif features and train.get("feature_kind") not in (None, "records"):
        d.dataset = features
    failed = resample.get("failed")
    d.add(
        "Dataset",
        [
            ("URI", d.dataset),
            ("clips", resample.get("clips")),
            ("resampled", resample.get("ok")),
            ("could not be decoded", failed if failed else None),
            ("clips per split", resample.get("splits") or feat.get("splits")),
            ("validation fraction", _validation_fraction(train, train_info, feat_info, resample_info)),
        ],
    )
    if augment:
        d.add(
            "Augmentation (train split)",
            [
                ("copies per clip", augment.get("copies")),
                ("mixup mixtures per clip", augment.get("mixup")),
                ("time/frequency masks", augment.get("masks")),
                ("chain", augment.get("chain") or None),
                ("records", augment.get("records")),
            ],
        )
    elif upstream or step == "embed":
        d.add("Augmentation (train split)", [("copies per clip", 0)])
    d.add(
        "Embeddings",
        [
            ("embedder", feat.get("embedder") or train.get("embedder")),
            ("version", (feat_info.get("embedder") or {}).get("embedder_version")),
            ("precision", feat.get("precision")),
            ("frames x dim", f"{train['frames']} x {train['dim']}" if "frames" in train else None),
            ("records", feat.get("records")),
        ],
    )
    hp = train_info.get("parameters") or {}
    d.add(
        "Model and training",
        [
            ("model", train.get("model")),
            ("learning rate", train.get("learning_rate")),
            ("batch size", train.get("batch_size")),
            ("dropout", train.get("dropout")),
            ("L2", train.get("l2")),
            ("max epochs", train.get("epochs")),
            ("patience", train.get("patience")),
            ("mixup alpha", train.get("mixup_alpha")),
            ("networks averaged", train.get("ensemble")),
            ("networks refitted on all data (auto)", train.get("refits")),
            ("hyperparameter search", hp.get("tune")),
            (
                "epochs run" if not train.get("selection") else "epochs run (fold networks, side by side)",
                train.get("epochs_run"),
            ),
            (
                "best epoch"
                if not train.get("selection")
                else "best epoch (pooled out-of-fold; any refits train this long)",
                train.get("best_epoch"),
            ),
            (
                "validation mAP" if not train.get("selection") else f"held-out mAP ({train['selection']})",
                train.get("val_mAP"),
            ),
            ("examples per split", train.get("examples")),
        ],
    )
    versions = train_info.get("versions") or {}
    d.add(
        "Provenance",
        [
            ("seed", train_info.get("seed")),
            ("disco version", versions.get("disco")),
            ("git commit", (train_info.get("git_commit") or "")[:12] or None),
            ("trained (UTC)", train_info.get("created_utc")),
            ("evaluated (UTC)", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")),
            (
                "python / tensorflow / keras",
                "/".join(str(versions.get(k)) for k in ("python", "tensorflow", "keras"))
                if versions
                else None,
            ),
        ],
    )
    for name, summary in (
        ("resample", resample),
        ("augment", augment),
        (step or "embed", feat),
        ("train", train),
    ):
        if isinstance(summary.get("seconds"), (int, float)):
            d.step_seconds[name] = float(summary["seconds"])
    if evaluate_seconds is not None:
        d.step_seconds["evaluate"] = evaluate_seconds
    if d.step_seconds:
        d.add("Time per step (s)", [(k, f"{v:.1f}") for k, v in d.step_seconds.items()])
    return d


def read_history(model_dir: str | None) -> dict[str, list[float]]:
    """history.csv's columns (epoch, loss, val_loss, val_mAP, ...) as float lists; {} when absent."""
    if not model_dir:
        return {}
    path = fileio.join(model_dir, HISTORY_FILE)
    try:
        if not fileio.exists(path):
            return {}
        rows = list(csv.DictReader(io.StringIO(fileio.read_text(path))))
    except (OSError, csv.Error) as exc:
        log.warning("report: cannot read %s (%s); no learning curves", path, exc)
        return {}
    out: dict[str, list[float]] = {}
    for row in rows:
        for k, v in row.items():
            try:
                out.setdefault(k, []).append(float(v))
            except (TypeError, ValueError):
                out.setdefault(k, []).append(float("nan"))
    return out


# ---------------------------------------------------------------------------------------------
# Error analysis: per class, the most confident mistakes at the model's decision rule.


@dataclass(frozen=True)
class Example:
    key: str
    score: float
    relevance: float


@dataclass
class ClassErrors:
    name: str
    threshold: float
    false_positives: list[Example]
    missed: list[Example]


def error_analysis(
    keys: Sequence[str], y_true, y_mask, scores, thresholds: Sequence[float], *, limit: int = ERROR_EXAMPLES
) -> list[ClassErrors]:
    """Observed negatives scored at or above the class's threshold (highest first) and observed
    positives scored below it (lowest first); unobserved entries are no evidence either way."""
    keys = [str(k) for k in keys]
    out = []
    for c, name in enumerate(params.CLASSES):
        m = np.asarray(y_mask[:, c]).astype(bool)
        pos = binarize(y_true[:, c]) & m
        neg = ~binarize(y_true[:, c]) & m
        s = np.asarray(scores[:, c], float)
        th = float(thresholds[c])
        fp = [i for i in np.argsort(-s, kind="stable") if neg[i] and s[i] >= th][:limit]
        fn = [i for i in np.argsort(s, kind="stable") if pos[i] and s[i] < th][:limit]
        fps = [Example(keys[i], float(s[i]), float(y_true[i, c])) for i in fp]
        fns = [Example(keys[i], float(s[i]), float(y_true[i, c])) for i in fn]
        out.append(ClassErrors(name, th, fps, fns))
    return out


class _AudioInliner:
    """Data URIs of a local dataset's clips, up to a byte budget (the report is one file)."""

    def __init__(self, dataset: str | None, budget: int = AUDIO_BUDGET_BYTES):
        from disco.data.openmic import audio_relpath

        self._relpath = audio_relpath
        root = dataset if dataset and not fileio.is_remote(dataset) and os.path.isdir(dataset) else None
        self.root = root
        self.budget = budget
        self.skipped = 0
        self._done: dict[str, str | None] = {}

    def uri(self, key: str) -> str | None:
        if self.root is None:
            return None
        if key not in self._done:
            path = os.path.join(self.root, self._relpath(key))
            uri = None
            if os.path.isfile(path):
                size = os.path.getsize(path)
                if size <= self.budget:
                    with open(path, "rb") as fh:
                        uri = "data:audio/ogg;base64," + base64.b64encode(fh.read()).decode("ascii")
                    self.budget -= size
                else:
                    self.skipped += 1
            self._done[key] = uri
        return self._done[key]


def _errors_html(errors: list[ClassErrors], inliner: _AudioInliner) -> str:
    e = html.escape
    shown: dict[str, bool] = {}

    def cells(examples: list[Example]) -> str:
        if not examples:
            return "<td>none</td>"
        items = []
        for x in examples:
            anchor = f"clip-{x.key}"
            if x.key in shown:
                # Inline each clip once; a clip that is a mistake for several classes links back.
                player = f' <a href="#{e(anchor)}">(player above)</a>' if shown[x.key] else ""
            else:
                uri = inliner.uri(x.key)
                shown[x.key] = uri is not None
                player = (
                    f'<br><audio id="{e(anchor)}" controls preload="none" src="{uri}"></audio>' if uri else ""
                )
            items.append(
                f"<div><code>{e(x.key)}</code> score {x.score:.3f} (label {x.relevance:.2f}){player}</div>"
            )
        return "<td>" + "".join(items) + "</td>"

    rows = [
        f"<tr><td>{e(c.name)}</td><td>{c.threshold:.3f}</td>{cells(c.false_positives)}{cells(c.missed)}</tr>"
        for c in errors
        if c.false_positives or c.missed
    ]
    if not rows:
        return "<p>No false positive and no missed positive at the decision thresholds.</p>"
    note = ""
    if inliner.root is None:
        note = "<p>No audio players: the dataset is not a local directory.</p>"
    elif inliner.skipped:
        note = f"<p>{inliner.skipped} clips without a player: the report's audio budget is spent.</p>"
    return (
        '<table class="errors"><tr><th>class</th><th>threshold</th><th>highest-scoring false positives</th>'
        "<th>lowest-scoring missed positives</th></tr>" + "".join(rows) + "</table>" + note
    )


# ---------------------------------------------------------------------------------------------
# Plots.


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _ap_bars(metrics: Mapping[str, Any]) -> str:
    plt = _pyplot()
    names = list(metrics["per_class"])
    series = [("model", metrics)] + [(r.label.split(" (")[0], ref) for r, ref in _references(metrics)]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(11, 4.2))
    x = np.arange(len(names))
    for i, (label, m) in enumerate(series):
        per_class = m.get("per_class") or {}
        ap = [(per_class.get(n) or {}).get("ap") for n in names]
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width,
            [0.0 if a is None else a for a in ap],
            width,
            label=f"{label} (mAP {_num(m.get('mAP'))})",
        )
    for j, n in enumerate(names):
        if metrics["per_class"][n].get("ap") is None:
            # Undefined, not zero: a hatched band across the class and a label.
            ax.axvspan(j - 0.45, j + 0.45, facecolor="none", hatch="//", edgecolor="0.6", linewidth=0)
            ax.text(j, 0.5, "AP undefined", rotation=90, ha="center", va="center", fontsize=8, color="0.3")
    ax.set_xticks(x, names, rotation=60, ha="right")
    ax.set_ylabel("average precision (test, observed entries)")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(series), fontsize=8, frameon=False)
    return _png(fig)


def _learning_curves(history: Mapping[str, list[float]]) -> str | None:
    epochs = history.get("epoch")
    if not epochs:
        return None
    plt = _pyplot()
    fig, (loss_ax, map_ax) = plt.subplots(1, 2, figsize=(11, 3.6))
    for key, label in (("loss", "train loss"), ("val_loss", "validation loss")):
        if key in history:
            loss_ax.plot(epochs, history[key], marker="o", markersize=3, label=label)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("masked binary cross-entropy")
    loss_ax.legend(fontsize=8)
    if "val_mAP" in history:
        vals = history["val_mAP"]
        map_ax.plot(epochs, vals, marker="o", markersize=3, color="tab:green")
        finite = [v for v in vals if not math.isnan(v)]
        if finite:
            best = vals.index(max(finite))
            map_ax.axvline(epochs[best], color="0.6", linestyle="--", linewidth=1)
            map_ax.annotate(f"best {vals[best]:.3f}", (epochs[best], vals[best]), fontsize=8)
    map_ax.set_xlabel("epoch")
    map_ax.set_ylabel("validation mAP")
    return _png(fig)


def _pr_curves(y_true, y_mask, scores) -> str:
    from sklearn.metrics import precision_recall_curve

    plt = _pyplot()
    fig, axes = plt.subplots(4, 5, figsize=(14, 10), sharex=True, sharey=True)
    for c, (name, ax) in enumerate(zip(params.CLASSES, axes.flat)):
        m = y_mask[:, c].astype(bool)
        t = binarize(y_true[m, c])
        if t.any() and not t.all():
            p, r, _ = precision_recall_curve(t, scores[m, c])
            ax.plot(r, p)
        else:
            ax.text(0.5, 0.5, "AP undefined", ha="center")
        ax.set_title(f"{name} ({int(t.sum())}/{int(m.sum())})", fontsize=9)
    fig.supxlabel("recall")
    fig.supylabel("precision")
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# The page.

_STYLE = """body{font-family:sans-serif;margin:2em;max-width:1250px;color:#222}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;
vertical-align:top}td:first-child,th:first-child{text-align:left}tr.undefined td{color:#888;font-style:italic}
.note{color:#555;font-size:0.9em}table.errors td,table.errors th{text-align:left}audio{height:28px;width:260px}
dl.params{display:grid;grid-template-columns:max-content auto;gap:2px 16px}dt{color:#555}dd{margin:0}
h3{margin-bottom:0.2em}"""


def _params_html(d: RunDescription) -> str:
    if not d.sections:
        return "<p>No step summaries were found beside the model and features.</p>"
    e = html.escape
    out = []
    for title, items in d.sections:
        out.append(f'<h3>{e(title)}</h3><dl class="params">')
        out += [f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in items]
        out.append("</dl>")
    return "\n".join(out)


def write_reports(
    out_dir: str,
    *,
    metrics: dict,
    y_true,
    y_mask,
    scores,
    keys: Sequence[str] | None = None,
    model_dir: str | None = None,
    features: str | None = None,
    evaluate_seconds: float | None = None,
    rf_scores=None,
    run_parameters: dict | None = None,
) -> tuple[str, str]:
    """Write report.html (one self-contained page) and report.md into out_dir.

    ``model_dir`` and ``features`` are the evaluate step's inputs: the run's parameters, learning
    curves and the dataset (for audio players) are read from the step outputs they lead to."""
    e = html.escape
    run = describe_run(model_dir, features, evaluate_seconds=evaluate_seconds)
    if run_parameters and not run.sections:
        run.add("Parameters", sorted(run_parameters.items()))
    history = read_history(model_dir)
    curves = _learning_curves(history)
    thresholds = [
        float((metrics["per_class"].get(n) or {}).get("threshold", params.POSITIVE_THRESHOLD))
        for n in params.CLASSES
    ]
    errors_html = "<p>No clip keys were given; no error analysis.</p>"
    if keys is not None:
        errors = error_analysis(keys, np.asarray(y_true), np.asarray(y_mask), np.asarray(scores), thresholds)
        errors_html = _errors_html(errors, _AudioInliner(run.dataset))
    curves_html = (
        f'<img alt="learning curves" src="data:image/png;base64,{curves}">'
        if curves
        else "<p>No history.csv beside the model.</p>"
    )
    doc = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>disco evaluation</title>
<link rel="icon" href="data:,"><style>{_STYLE}</style></head><body>
<h1>disco evaluation: test split</h1>
<p>Model <b>{e(str(metrics.get("model")))}</b> on <b>{e(str(metrics.get("embedder")))}</b> features.
{metrics.get("examples")} test clips, {metrics.get("observed_entries")} observed (clip, class) entries; only observed
entries count; positive means relevance &ge; {params.POSITIVE_THRESHOLD}. F1@t uses the per-class thresholds tuned
on held-out training predictions (out-of-fold under model selection, else the validation split).</p>
<h2>Metrics</h2>
{metrics_table(metrics, "html")}
<h2>Average precision per class</h2><img alt="AP per class" src="data:image/png;base64,{_ap_bars(metrics)}">
<h2>Learning curves</h2>{curves_html}
<h2>Precision-recall curves</h2><img alt="PR curves" src="data:image/png;base64,{_pr_curves(y_true, y_mask, scores)}">
<h2>Error analysis</h2>
<p>Per class, at its decision threshold: annotated negatives the model scored highest, and annotated positives it
scored lowest (at most {ERROR_EXAMPLES} each).</p>
{errors_html}
<h2>Run parameters</h2>
{_params_html(run)}
</body></html>"""
    html_path = os.path.join(out_dir, HTML_FILE)
    with open(html_path, "w", encoding="utf-8") as fh:
        fh.write(doc)
    md_path = os.path.join(out_dir, MARKDOWN_FILE)
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(f"**{headline(metrics)}**\n\n{metrics_table(metrics, 'markdown')}")
    return html_path, md_path
