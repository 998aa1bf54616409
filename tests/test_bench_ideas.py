"""The ideas benchmark's networks (bench/bench_ideas.py): each is a valid classifier over
[frames, dim] embeddings, and the training-only augmentations leave inference alone."""

from __future__ import annotations

import importlib.util
import sys
from functools import partial

import numpy as np
import pytest

from disco import params
from disco.train.features import SplitData
from disco.train.select import average_model


@pytest.fixture(scope="module")
def ideas(repo_root):
    spec = importlib.util.spec_from_file_location("bench_ideas", repo_root / "bench" / "bench_ideas.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["default", "pooled_head", "multihead", "transformer"])
def test_each_idea_network_maps_embeddings_to_20_probabilities(ideas, rng, name):
    idea = next(i for i in ideas.IDEAS if i.build == name)
    x = rng.normal(size=(6, 10, 16)).astype("float32")
    build = partial(ideas.BUILDERS[name], **idea.build_args)
    nets = [
        build(
            "attention",
            frames=10,
            dim=16,
            dropout=0.1,
            l2=1e-4,
            mean=np.zeros(16),
            variance=np.ones(16),
            model_name=f"fold{i}",
        )
        for i in range(2)
    ]
    net = nets[0]
    p = net.predict(x, verbose=0)
    assert p.shape == (6, params.NUM_CLASSES)
    assert ((p > 0) & (p < 1)).all()
    # no randomness at inference: noise and resampling are for training only
    np.testing.assert_allclose(p, net.predict(x, verbose=0), rtol=1e-6)
    # fold networks are averaged into one model: their layer names must not clash
    assert average_model(nets, frames=10, dim=16).predict(x, verbose=0).shape == p.shape


def test_augmentation_rows_add_exactly_the_augmentation_they_name(ideas):
    from disco.train.models import FrameResample

    def augmentation(idea):
        net = ideas.BUILDERS[idea.build](
            "attention", frames=10, dim=16, mean=np.zeros(16), variance=np.ones(16), seed=1, **idea.build_args
        )
        return {type(layer).__name__ for layer in net.layers} & {FrameResample.__name__, "GaussianNoise"}

    rows = {i.label: i for i in ideas.IDEAS if i.build == "default"}
    assert len(rows) == 3
    for label, idea in rows.items():
        expected = set()
        if "noise" in label.lower():
            expected.add("GaussianNoise")
        if "resampling" in label:
            expected.add(FrameResample.__name__)
        assert augmentation(idea) == expected, label


def test_balanced_sampling_repeats_exactly_the_clips_with_an_observed_positive(ideas):
    y_true = np.zeros((4, params.NUM_CLASSES), np.float32)
    y_mask = np.zeros_like(y_true)
    y_true[0, 3], y_mask[0, 3] = 1.0, 1.0  # observed positive: repeated
    y_true[1, 5] = 1.0  # positive but unobserved: not
    y_mask[2, 7] = 1.0  # observed negative: not
    keys = np.array(["a", "b", "c", "d"])
    train = SplitData(np.zeros((4, 10, 2), np.float32), y_true, y_mask, keys, np.zeros(4, int))
    assert sorted(ideas._balanced(train).keys) == ["a", "a", "b", "c", "d"]


def test_a_cached_row_is_reused_only_for_the_same_idea_and_code(ideas, tmp_path, monkeypatch):
    """Cached rows were keyed by label and seed alone: a rerun after the training code (or the
    idea's settings) changed printed the old figures as new."""
    from dataclasses import replace

    runs = []

    def run_row(idea, dev, seed, workdir):
        runs.append((idea.label, seed))
        return ideas.RowResult(idea.label, seed, 0.5, "attention", 0.5, 1.0)

    monkeypatch.setattr(ideas, "run_row", run_row)
    noise = next(i for i in ideas.IDEAS if i.build_args == {"noise_sd": 0.2})
    dev, work = str(tmp_path / "dev"), str(tmp_path / "work")
    ideas._cached(noise, dev, 1, work)
    ideas._cached(noise, dev, 1, work)
    assert len(runs) == 1  # the same idea and code: from the cache
    ideas._cached(replace(noise, build_args={"noise_sd": 0.5}), dev, 1, work)
    assert len(runs) == 2  # same label, other settings: computed again
    monkeypatch.setattr(ideas, "_row_key", lambda idea: "other-code")
    ideas._cached(noise, dev, 1, work)
    assert len(runs) == 3
