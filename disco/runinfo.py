"""Reproducibility records: the parameters, seed and library versions beside every output."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import logging
import os
import platform
import random
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from disco import __version__, params

log = logging.getLogger(__name__)

# Distributions whose versions change results; recorded in every run_info.json.
TRACKED_DISTRIBUTIONS = (
    "numpy",
    "tensorflow",
    "keras",
    "tensorflow-hub",
    "librosa",
    "soxr",
    "soundfile",
    "audiomentations",
    "apache-beam",
    "scikit-learn",
    "pandas",
    "kfp",
)


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"disco": __version__, "python": platform.python_version()}
    for dist in TRACKED_DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The source commit, when running from a checkout (images carry DISCO_GIT_COMMIT instead)."""
    env_commit = os.environ.get("DISCO_GIT_COMMIT")
    if env_commit:
        return env_commit
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd or Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if imported) TensorFlow, so a run with the same seed repeats, and ask
    TensorFlow for deterministic kernels: on a GPU, several (cuDNN's fastest algorithms, atomic
    reductions in gradients) sum in another order on every run. On CPU it changes no result (the
    same seed trains the same weights with it and without: tests/test_train_repro.py)."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        pass
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        tf.keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()


def write_run_info(
    out_dir: str | os.PathLike[str],
    *,
    step: str,
    parameters: Mapping[str, Any],
    seed: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path | str:
    """Write ``run_info.json`` (step, parameters, seed, versions, commit, time) into out_dir."""
    from disco import fileio

    fileio.makedirs(out_dir)
    info = {
        "step": step,
        "parameters": dict(parameters),
        "seed": seed,
        "versions": library_versions(),
        "git_commit": git_commit(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "schema_versions": {
            "resampled": params.RESAMPLED_SCHEMA_VERSION,
            "embedding": params.EMBEDDING_SCHEMA_VERSION,
        },
    }
    if extra:
        info.update(extra)
    path = fileio.join(out_dir, params.RUN_INFO_FILE)
    fileio.write_text(path, json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    log.debug("wrote %s", path)
    return path if fileio.is_remote(path) else Path(path)
