"""The one metrics renderer (terminal, Markdown, HTML) and report.html: run parameters from the step
outputs, learning curves, undefined AP marked, error analysis with audio, checked in headless Chromium."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from helpers.train_fixtures import make_release_features

from disco import params
from disco.evaluate.report import error_analysis, metrics_table

METRICS = {
    "mAP": 0.8123,
    "f1_macro": 0.7,
    "f1_macro_tuned": 0.75,
    "per_class": {
        "piano": {
            "ap": 0.9,
            "f1": 0.8,
            "f1_tuned": 0.85,
            "precision": 0.7,
            "recall": 0.95,
            "support": 12,
            "observed": 20,
        },
        "voice": {"ap": None, "f1": None, "precision": 0.0, "recall": None, "support": 0, "observed": 3},
    },
    "random_forest": {
        "mAP": 0.6,
        "f1_macro": 0.5,
        "per_class": {"piano": {"ap": 0.61}, "voice": {"ap": None}},
    },
    "logistic_regression": {"mAP": 0.65, "f1_macro": 0.55, "per_class": {"piano": {"ap": 0.66}}},
}


def test_text_table_has_every_class_the_means_and_both_references():
    lines = metrics_table(METRICS).splitlines()
    header = lines[0].split()
    # Each column says its decision rule: F1 at 0.5, F1/precision/recall at the tuned thresholds.
    assert header[:6] == ["class", "AP", "F1@0.5", "F1@t", "P@t", "R@t"] and "RF" in header and "LR" in header
    piano = lines[1].split()
    assert piano[:4] == ["piano", "0.900", "0.800", "0.850"] and "0.610" in piano and "0.660" in piano
    assert piano[-2:] == ["12", "20"]
    model = next(line for line in lines if line.startswith("model"))
    assert model.split()[1:] == ["0.812", "0.700", "0.750"]
    assert any(line.startswith("random forest") and "0.600" in line and "0.500" in line for line in lines)
    assert any(
        line.startswith("logistic regression") and "0.650" in line and "0.550" in line for line in lines
    )
    assert "\x1b[" not in "\n".join(lines)


def test_undefined_ap_is_marked_not_shown_as_zero_in_every_format():
    text = metrics_table(METRICS)
    voice = next(line for line in text.splitlines() if line.startswith("voice"))
    assert voice.split()[:3] == ["voice", "*", "n/a"] and "0.000" not in voice.split()[1:3]
    assert "AP undefined" in text
    md = metrics_table(METRICS, "markdown")
    assert "| voice * | n/a |" in md and "AP undefined" in md
    html = metrics_table(METRICS, "html")
    assert re.search(r'<tr class="undefined"><td>voice \*</td><td>n/a</td>', html)
    assert html.count('class="undefined"') == 1


def test_markdown_is_a_table_per_block_with_consistent_columns():
    md = metrics_table(METRICS, "markdown").strip().splitlines()
    table = md[: md.index("")]
    assert len({line.count("|") for line in table}) == 1 and len(table) == 2 + len(METRICS["per_class"])


def test_model_selection_block_renders_when_metrics_carry_one():
    assert "model selection" not in metrics_table(METRICS).lower()
    selected = {
        **METRICS,
        "selection": {
            "rule": "highest validation mAP",
            "chosen": "attention",
            "candidates": [{"model": "baseline", "val_mAP": 0.81}, {"model": "attention", "val_mAP": 0.84}],
        },
    }
    for fmt in ("text", "markdown", "html"):
        out = metrics_table(selected, fmt)
        assert "0.840" in out and "attention" in out and "highest validation mAP" in out, fmt
    with pytest.raises(ValueError, match="format"):
        metrics_table(METRICS, "latex")


def test_component_markdown_uses_the_same_renderer():
    from disco_components import _runtime

    md = _runtime.metrics_markdown(METRICS)
    assert metrics_table(METRICS, "markdown") in md and "test mAP 0.812" in md


def test_error_analysis_lists_confident_mistakes_over_observed_entries_only():
    keys = [f"{i:06d}_0" for i in range(6)]
    y_true = np.zeros((6, params.NUM_CLASSES))
    y_mask = np.zeros((6, params.NUM_CLASSES))
    scores = np.zeros((6, params.NUM_CLASSES))
    c = 0
    y_true[:, c] = [1.0, 0.9, 0.0, 0.2, 0.0, 1.0]
    y_mask[:, c] = [1, 1, 1, 1, 0, 1]
    scores[:, c] = [0.9, 0.1, 0.8, 0.6, 0.99, 0.3]
    errors = error_analysis(keys, y_true, y_mask, scores, [0.5] * params.NUM_CLASSES, limit=3)
    first = errors[0]
    assert first.name == params.CLASSES[0]
    # 000004 scores highest but is unobserved: no evidence, not a false positive.
    assert [(x.key, x.score) for x in first.false_positives] == [("000002_0", 0.8), ("000003_0", 0.6)]
    assert [x.key for x in first.missed] == ["000001_0", "000005_0"]
    assert not errors[1].false_positives and not errors[1].missed


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, openmic_sample) -> dict:
    """A real train + evaluate on release-layout features (each clip a copy of the real release
    clip), with one class made all-negative in the test split so its AP is undefined."""
    from disco.data.openmic import open_dataset
    from disco.evaluate import run_evaluate
    from disco.train import run_train

    base = tmp_path_factory.mktemp("report")
    data = make_release_features(base / "openmic-2018", openmic_sample, seed=4)
    test_keys = set(open_dataset(str(data)).partitions()[params.SPLIT_TEST])
    undefined = "bass"
    c = params.CLASSES.index(undefined)
    with np.load(data / params.NPZ_FILE) as z:
        arrays = {k: z[k] for k in z.files}
    rows = np.array([str(k) in test_keys for k in arrays["sample_key"]])
    arrays["Y_true"][rows, c] = 0.0
    arrays["Y_mask"][rows, c] = False
    np.savez(data / params.NPZ_FILE, **arrays)
    labels = data / params.AGGREGATED_LABELS_FILE
    kept = [
        line
        for line in labels.read_text().splitlines(keepends=True)
        if not (line.split(",")[0] in test_keys and line.split(",")[1] == undefined)
    ]
    labels.write_text("".join(kept))
    run_train(
        str(data), str(base / "model"), model="baseline", epochs=3, batch_size=16, learning_rate=1e-3, seed=7
    )
    run_evaluate(str(base / "model"), str(data), str(base / "eval"), seed=7)
    return {
        "base": base,
        "html": (base / "eval" / params.REPORT_FILE).read_text(),
        "metrics": json.loads((base / "eval" / params.METRICS_FILE).read_text()),
        "undefined": undefined,
    }


@pytest.mark.slow
def test_report_shows_run_parameters_from_the_step_outputs(evaluated):
    html = evaluated["html"]
    section = html[html.index("<h2>Run parameters</h2>") :]
    info = json.loads((evaluated["base"] / "model" / params.RUN_INFO_FILE).read_text())

    def item(label: str) -> str:
        m = re.search(rf"<dt>{re.escape(label)}</dt><dd>([^<]*)</dd>", section)
        assert m, f"run parameters have no {label!r}"
        return m.group(1)

    assert item("seed") == "7"
    assert item("disco version") == info["versions"]["disco"]
    assert item("git commit") == (info["git_commit"] or "")[:12]
    assert item("model") == "baseline" and item("learning rate") == "0.001" and item("batch size") == "16"
    assert item("URI") == str(evaluated["base"] / "openmic-2018")
    assert item("embedder") == params.RELEASE_EMBEDDER
    assert float(item("train")) > 0 and float(item("evaluate")) > 0  # seconds per step
    assert "val_loss" not in section  # parameters, not the log


@pytest.mark.slow
def test_report_has_curves_reference_undefined_ap_and_errors_with_audio(evaluated):
    html, metrics = evaluated["html"], evaluated["metrics"]
    assert metrics["per_class"][evaluated["undefined"]]["ap"] is None
    assert f'<tr class="undefined"><td>{evaluated["undefined"]} *</td>' in html
    assert 'alt="learning curves" src="data:image/png;base64,' in html
    assert "logistic regression" in html[html.index("<h2>Metrics</h2>") :]
    errors = html[html.index("<h2>Error analysis</h2>") : html.index("<h2>Run parameters</h2>")]
    keys = re.findall(r"<code>(\d{6}_\d+)</code> score", errors)
    assert keys and all(k in metrics_keys(evaluated) for k in keys)
    players = re.findall(
        r'<audio id="clip-([\d_]+)" controls preload="none" src="data:audio/ogg;base64,', errors
    )
    assert players and len(players) == len(set(players))  # each clip inlined once
    assert "file://" not in html and "http" not in html.replace("http-equiv", "")  # one self-contained page


def metrics_keys(evaluated) -> set[str]:
    with np.load(evaluated["base"] / "eval" / "test_scores.npz") as z:
        return {str(k) for k in z["keys"]}


def _require_chromium(browser) -> None:
    """Skip where Chromium is absent, but fail in CI, where docker/ci-prepare.sh installs it: a skip
    there would hide a missing install step."""
    if browser.chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium not installed in CI (docker/ci-prepare.sh installs it)")
        pytest.skip("chromium not installed (docker/ci-prepare.sh installs it)")


@pytest.mark.slow
def test_report_renders_in_headless_chromium_without_console_errors(evaluated, tmp_path):
    from helpers import browser

    _require_chromium(browser)
    from PIL import Image

    page = browser.render(evaluated["base"] / "eval" / params.REPORT_FILE, tmp_path / "report.png")
    assert page.console_errors == []
    assert page.page["images"] == 3 and page.page["broken_images"] == 0
    assert page.page["audio"] > 0 and page.page["text"] > 1000
    shot = np.asarray(Image.open(page.screenshot).convert("L"))
    assert shot.shape[0] >= page.page["height"] * 0.9 and shot.shape[0] > 2000  # the whole page
    assert (shot < 200).mean() > 0.03 and len(np.unique(shot)) > 50  # not blank: text, tables, plots


@pytest.mark.slow
def test_browser_check_catches_errors(tmp_path):
    from helpers import browser

    _require_chromium(browser)
    page = tmp_path / "bad.html"
    page.write_text(
        '<html><body><img src="missing.png"><script>console.error("boom"); nope();</script></body></html>'
    )
    out = browser.render(page, tmp_path / "bad.png")
    assert any("boom" in e for e in out.console_errors)
    assert any("nope" in e for e in out.console_errors)
    assert out.page["broken_images"] == 1


def test_audio_is_inlined_up_to_the_budget_and_only_for_local_datasets(tmp_path):
    from disco.data.openmic import audio_relpath
    from disco.evaluate.report import _AudioInliner

    for key in ("000001_0", "000002_0"):
        path = tmp_path / audio_relpath(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"OggS" + bytes(996))
    inliner = _AudioInliner(str(tmp_path), budget=1500)
    assert inliner.uri("000001_0").startswith("data:audio/ogg;base64,T2dnUw")
    assert inliner.uri("000002_0") is None and inliner.skipped == 1  # over the budget
    assert inliner.uri("999999_0") is None  # no such clip
    assert _AudioInliner("gs://bucket/openmic-2018").uri("000001_0") is None
