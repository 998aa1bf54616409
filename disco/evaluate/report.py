"""A self-contained HTML report (plots inlined as PNG) and a Markdown summary of one evaluation."""

from __future__ import annotations

import base64
import html
import io
import json
import os

import numpy as np

from disco import params
from disco.evaluate.metrics import binarize

HTML_FILE = params.REPORT_FILE
MARKDOWN_FILE = "report.md"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _ap_bars(metrics: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(metrics["per_class"])
    ap = [metrics["per_class"][n]["ap"] or 0.0 for n in names]
    rf = [metrics.get("random_forest", {}).get("per_class", {}).get(n, {}).get("ap") or 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(10, 4))
    x = np.arange(len(names))
    ax.bar(x - 0.2, ap, 0.4, label=f"model (mAP {metrics['mAP']:.3f})")
    if "random_forest" in metrics:
        ax.bar(x + 0.2, rf, 0.4, label=f"random forest (mAP {metrics['random_forest']['mAP']:.3f})")
    ax.set_xticks(x, names, rotation=60, ha="right")
    ax.set_ylabel("average precision (test, observed entries)")
    ax.set_ylim(0, 1)
    ax.legend()
    out = _png(fig)
    plt.close(fig)
    return out


def _pr_curves(y_true, y_mask, scores) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    fig, axes = plt.subplots(4, 5, figsize=(14, 10), sharex=True, sharey=True)
    for c, (name, ax) in enumerate(zip(params.CLASSES, axes.flat)):
        m = y_mask[:, c].astype(bool)
        t = binarize(y_true[m, c])
        if t.any() and not t.all():
            p, r, _ = precision_recall_curve(t, scores[m, c])
            ax.plot(r, p)
        else:
            ax.text(0.5, 0.5, "n/a", ha="center")
        ax.set_title(f"{name} ({int(t.sum())}/{int(m.sum())})", fontsize=9)
    fig.supxlabel("recall")
    fig.supylabel("precision")
    out = _png(fig)
    plt.close(fig)
    return out


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def selection_section(selection: dict | None) -> str:
    """What ``--model auto`` tried and chose (the model directory's selection.json), as HTML."""
    if not selection:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(c['name'])}{' (chosen)' if c['name'] == selection['chosen'] else ''}</td>"
        f"<td>{_fmt(c['val_mAP'])}</td><td>{html.escape(c['setting'])}</td></tr>"
        for c in selection["candidates"]
    )
    return (
        f"<h2>Model selection</h2><p>Candidates scored by {html.escape(selection['method'])} on "
        f"{selection['held_out_examples']} held-out training clips; the decision thresholds are tuned "
        f"on the same held-out predictions.</p><table><tr><th>candidate</th><th>held-out mAP</th>"
        f"<th>setting</th></tr>{rows}</table>"
    )


def write_reports(
    out_dir: str, *, metrics: dict, y_true, y_mask, scores, rf_scores=None, run_parameters: dict | None = None
) -> tuple[str, str]:
    rows = []
    rf = metrics.get("random_forest", {}).get("per_class", {})
    for name, r in metrics["per_class"].items():
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{_fmt(r['ap'])}</td><td>{_fmt(rf.get(name, {}).get('ap'))}</td>"
            f"<td>{_fmt(r['precision'])}</td><td>{_fmt(r['recall'])}</td><td>{_fmt(r['f1'])}</td>"
            f"<td>{_fmt(r.get('threshold'))}</td><td>{_fmt(r.get('f1_tuned'))}</td>"
            f"<td>{r['support']}</td><td>{r['observed']}</td></tr>"
        )
    params_json = html.escape(json.dumps(run_parameters or {}, indent=2, default=str))
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>disco evaluation</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}</style></head><body>
<h1>disco evaluation: test split</h1>
<p>Model <b>{html.escape(str(metrics.get("model")))}</b> on <b>{html.escape(str(metrics.get("embedder")))}</b> features.
{metrics["examples"]} test clips, {metrics["observed_entries"]} observed (clip, class) entries; only observed entries
count; positive means relevance &ge; 0.5.</p>
<table><tr><th></th><th>mAP</th><th>macro F1 (decision rule)</th><th>macro F1 @0.5</th></tr>
<tr><td>model</td><td>{_fmt(metrics["mAP"])}</td><td>{_fmt(metrics["f1_macro"])}</td><td>{_fmt(metrics.get("f1_macro_at_0.5"))}</td></tr>
{f"<tr><td>random forest (100 trees, depth 8)</td><td>{_fmt(metrics['random_forest']['mAP'])}</td><td>{_fmt(metrics['random_forest']['f1_macro'])}</td><td></td></tr>" if "random_forest" in metrics else ""}
{f"<tr><td>logistic regression per class</td><td>{_fmt(metrics['logistic_regression']['mAP'])}</td><td>{_fmt(metrics['logistic_regression']['f1_macro'])}</td><td></td></tr>" if "logistic_regression" in metrics else ""}
</table>
{selection_section(metrics.get("selection"))}
<h2>Average precision per class</h2><img alt="AP per class" src="data:image/png;base64,{_ap_bars(metrics)}">
<h2>Per class (thresholds tuned on validation)</h2>
<table><tr><th>class</th><th>AP</th><th>RF AP</th><th>P</th><th>R</th><th>F1</th><th>threshold</th>
<th>F1@threshold</th><th>positives</th><th>observed</th></tr>{"".join(rows)}</table>
<h2>Precision-recall curves</h2><img alt="PR curves" src="data:image/png;base64,{_pr_curves(y_true, y_mask, scores)}">
<h2>Run parameters</h2><pre>{params_json}</pre></body></html>"""
    html_path = os.path.join(out_dir, HTML_FILE)
    with open(html_path, "w") as fh:
        fh.write(doc)
    md = ["| class | AP | RF AP | F1 | F1@tuned | positives/observed |", "|---|---|---|---|---|---|"]
    for name, r in metrics["per_class"].items():
        md.append(
            f"| {name} | {_fmt(r['ap'])} | {_fmt(rf.get(name, {}).get('ap'))} | {_fmt(r['f1'])} | "
            f"{_fmt(r.get('f1_tuned'))} | {r['support']}/{r['observed']} |"
        )
    rf_map = metrics.get("random_forest", {}).get("mAP")
    md.insert(
        0,
        f"**test mAP {_fmt(metrics['mAP'])}**, macro F1 {_fmt(metrics['f1_macro'])} "
        f"(random forest mAP {_fmt(rf_map)})\n",
    )
    md_path = os.path.join(out_dir, MARKDOWN_FILE)
    with open(md_path, "w") as fh:
        fh.write("\n".join(md) + "\n")
    return html_path, md_path
