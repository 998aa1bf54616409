"""`disco analyse`: real runs on a small release-features dataset, made by `disco train` +
`disco evaluate --out` and by `disco run` (kfp.local), aggregated into one table."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.train_fixtures import make_release_features

from disco import params
from disco.errors import ConfigError

pytestmark = pytest.mark.slow

SEED = 5
PLAIN = {  # run name -> (model, learning rate, random forest scored)
    "plain/baseline-lr1e-3": ("baseline", 1e-3, True),
    "plain/baseline-lr1e-4": ("baseline", 1e-4, False),
}
KFP_RUN = "demo-1"
KFP_MODEL, KFP_LR = "attention", 1e-3


def _metrics(path: Path) -> dict:
    return json.loads((path / params.METRICS_FILE).read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory, openmic_sample) -> dict:
    from disco.evaluate import run_evaluate
    from disco.runner import run_local
    from disco.train import run_train

    base = tmp_path_factory.mktemp("analyse")
    data = str(make_release_features(base / "openmic-2018", openmic_sample, seed=3))
    hp = dict(epochs=3, batch_size=16, dropout=0.3, l2=1e-4, seed=SEED)
    runs_dir = base / "runs"
    metrics = {}
    for name, (model, lr, rf) in PLAIN.items():
        model_dir = base / "models" / name  # outside RUNS_DIR: found through evaluate's run_info
        run_train(data, str(model_dir), model=model, learning_rate=lr, **hp)
        run_evaluate(str(model_dir), data, str(runs_dir / name), seed=SEED, rf_baseline=rf)
        metrics[name] = _metrics(runs_dir / name)

    # A real `disco run` (kfp.local, the release-features branch): step outputs under
    # pipeline_root/<pipeline run>/<task>/<output>, metrics.json copied to the top beside
    # run_summary.json. It runs elsewhere and is moved in, so every path the steps recorded is
    # stale, as for runs fetched from another machine or a bucket.
    staged = base / "staging" / KFP_RUN
    run_local(
        data, staged, use_release_features=True, model=KFP_MODEL, learning_rate=KFP_LR, cache=False, **hp
    )
    shutil.rmtree(base / "staging" / ".kfp-cache", ignore_errors=True)
    shutil.move(str(staged), str(runs_dir / KFP_RUN))
    metrics[KFP_RUN] = _metrics(runs_dir / KFP_RUN)
    # And the original location was run again since, at another learning rate: the copy's row must
    # still show the copy's own train step, not what now sits at the recorded paths.
    shutil.copytree(runs_dir / KFP_RUN, staged)
    for train_file in staged.glob(f"pipeline_root/*/train-classifier*/*/{params.SUMMARY_FILE}"):
        for name in (params.SUMMARY_FILE, params.RUN_INFO_FILE):
            recorded = json.loads((train_file.parent / name).read_text())
            recorded.setdefault("parameters", {})["learning_rate"] = 0.1
            if "learning_rate" in recorded:
                recorded["learning_rate"] = 0.1
            (train_file.parent / name).write_text(json.dumps(recorded))
    # A directory with train outputs only is not a run.
    shutil.copytree(base / "models" / "plain" / "baseline-lr1e-4", runs_dir / "plain" / "a-model-only")
    return {"dir": runs_dir, "metrics": metrics, "base": base}


@pytest.fixture(scope="module")
def analysed(runs) -> tuple[pd.DataFrame, Path]:
    from disco.evaluate.analyse import analyse_runs

    out = runs["base"] / "analysis"
    return analyse_runs(runs["dir"], out), out


def _nan_or(value) -> float:
    return math.nan if value is None else value


def test_one_row_per_run_with_the_metrics_each_run_wrote(runs, analysed):
    from disco.evaluate.analyse import RESULTS_CSV

    df, out = analysed
    csv = pd.read_csv(out / RESULTS_CSV)
    assert sorted(csv["run"]) == sorted(runs["metrics"]) == sorted(df["run"])
    for _, row in csv.iterrows():
        m = runs["metrics"][row["run"]]
        assert row["mAP"] == pytest.approx(m["mAP"], abs=1e-12)
        assert row["f1_macro"] == pytest.approx(m["f1_macro"], abs=1e-12)
        assert row["rf_mAP"] == pytest.approx(_nan_or((m.get("random_forest") or {}).get("mAP")), nan_ok=True)
        for cls in params.CLASSES:
            assert row[f"AP_{cls}"] == pytest.approx(
                _nan_or(m["per_class"][cls]["ap"]), abs=1e-12, nan_ok=True
            )
    assert not math.isnan(csv.set_index("run").loc["plain/baseline-lr1e-3", "rf_mAP"])
    assert math.isnan(csv.set_index("run").loc["plain/baseline-lr1e-4", "rf_mAP"])


def test_rows_are_sorted_by_map_descending(runs, analysed):
    from disco.evaluate.analyse import RESULTS_CSV

    df, out = analysed
    maps = pd.read_csv(out / RESULTS_CSV)["mAP"].to_numpy()
    assert np.all(np.diff(maps) <= 0)
    assert maps[0] == max(m["mAP"] for m in runs["metrics"].values())
    assert len(set(maps)) == len(maps), "the runs should differ for the order to mean something"


def test_hyperparameters_come_from_the_train_step(runs, analysed):
    df, _ = analysed
    rows = df.set_index("run")
    for name, (model, lr, _) in PLAIN.items():
        assert rows.loc[name, "model"] == model
        assert rows.loc[name, "learning_rate"] == lr
    kfp = rows.loc[KFP_RUN]
    assert kfp["model"] == KFP_MODEL and kfp["learning_rate"] == KFP_LR
    # What the steps saw (release VGGish features), not the run's embedder parameter ("musicnn", unused
    # in this branch), and the train summary read from the moved pipeline_root, not the stale path.
    assert kfp["embedder"] == params.RELEASE_EMBEDDER
    (moved,) = (runs["dir"] / KFP_RUN / "pipeline_root").glob("*/train-classifier/model")
    assert kfp["val_mAP"] == json.loads((moved / params.SUMMARY_FILE).read_text())["val_mAP"]
    assert rows["epochs"].tolist() == [3, 3, 3] and rows["dropout"].tolist() == [0.3, 0.3, 0.3]
    assert rows["seed"].tolist() == [SEED] * 3
    assert (rows["epochs_run"] >= 1).all() and (rows["epochs_run"] <= 3).all()


def test_plots_and_markdown_are_written(analysed):
    import matplotlib.image

    from disco.evaluate.analyse import AP_PLOT, MAP_PLOT, RESULTS_MD

    df, out = analysed
    for name in (MAP_PLOT, AP_PLOT):
        path = out / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 300
        assert pixels[..., :3].std() > 0.05, f"{name} is blank"
    md = (out / RESULTS_MD).read_text()
    for run in df["run"]:
        assert f"| {run} |" in md
    assert MAP_PLOT in md and AP_PLOT in md


def test_cli_prints_the_table_and_writes_the_results(runs, tmp_path, capsys):
    from disco.cli import main
    from disco.evaluate.analyse import RESULTS_CSV

    assert main(["analyse", str(runs["dir"]), "--out", str(tmp_path / "cli")]) == 0
    printed = capsys.readouterr().out.splitlines()
    header = printed[0].split()
    assert header[:2] == ["run", "model"] and "mAP" in header
    best = max(runs["metrics"], key=lambda r: runs["metrics"][r]["mAP"])
    assert printed[1].split()[0] == best
    assert f"{runs['metrics'][best]['mAP']:.4f}" in printed[1]
    assert str(tmp_path / "cli" / RESULTS_CSV) in printed
    assert len(pd.read_csv(tmp_path / "cli" / RESULTS_CSV)) == len(runs["metrics"])


def test_no_runs_is_a_clear_error_naming_the_directory(runs, tmp_path, capsys):
    from disco.cli import main
    from disco.evaluate.analyse import analyse_runs

    with pytest.raises(ConfigError, match=f"{tmp_path}: no runs found"):
        analyse_runs(tmp_path, tmp_path / "out")
    models = runs["base"] / "models"  # train outputs, no evaluate output
    assert main(["analyse", str(models)]) == 2
    assert f"{models}: no runs found" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not a directory"):
        analyse_runs(tmp_path / "missing", tmp_path / "out")


def test_an_unreadable_metrics_file_is_reported_and_skipped(runs, tmp_path, caplog):
    from disco.evaluate.analyse import analyse_runs

    copy = tmp_path / "runs"
    shutil.copytree(runs["dir"], copy)
    broken = copy / "crashed"
    broken.mkdir()
    (broken / params.METRICS_FILE).write_text('{"mAP": 0.9, "per_cl')
    with caplog.at_level(logging.WARNING, logger="disco.evaluate.analyse"):
        df = analyse_runs(copy, tmp_path / "out")
    assert sorted(df["run"]) == sorted(runs["metrics"])
    assert any(str(broken / params.METRICS_FILE) in r.getMessage() for r in caplog.records)
