"""Shared fixtures: seeded RNGs and paths to the real material in ../shared/."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DISCO_SHARED_DIR", REPO_ROOT.parent / "shared"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _require(path: Path) -> Path:
    # The shared material is part of the test contract (CI has it beside the clone): a missing
    # directory is a failure, never a silent skip.
    if not path.exists():
        pytest.fail(f"shared test material missing: {path} (see ../shared/README.md)")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20180)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED)


@pytest.fixture(scope="session")
def openmic_sample(shared_dir: Path) -> Path:
    """Byte-exact excerpt of the OpenMIC-2018 release (the extracted openmic-2018/ layout)."""
    return _require(shared_dir / "data" / "openmic-2018-sample")


@pytest.fixture(scope="session")
def official_lists(shared_dir: Path) -> Path:
    """Full official split01 lists, class map and md5 lists from the dataset authors."""
    return _require(shared_dir / "data" / "openmic-2018-official-lists")


@pytest.fixture(scope="session")
def real_clips(shared_dir: Path) -> Path:
    """Tiny real instrument recordings (various formats, rates and channel counts)."""
    return _require(shared_dir / "data" / "real-instrument-clips")
