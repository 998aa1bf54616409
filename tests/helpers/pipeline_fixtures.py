"""Helpers for the pipeline tests: a small demo dataset and finding a local run's step outputs."""

from __future__ import annotations

import json
from pathlib import Path

from disco import params, steps
from disco.results import StepResult

E2E_CLIPS = 20  # small, yet enough for an artist-grouped train/validation/test split
E2E_SEED = 7


def make_demo_dataset(root: Path, *, clips: int = E2E_CLIPS, corrupt: int = 1, seed: int = E2E_SEED) -> Path:
    """Generate the offline demo dataset through the real CLI (`disco demo-data`), with corrupt clips."""
    from disco.cli import main

    out = root / params.RELEASE_ROOT_NAME
    rc = main(
        [
            "demo-data",
            "--out",
            str(out),
            "--clips",
            str(clips),
            "--seed",
            str(seed),
            "--corrupt",
            str(corrupt),
        ]
    )
    if rc != 0:
        raise RuntimeError(f"disco demo-data exited {rc}")
    return out


def step_output(run_dir: Path, task: str, output: str) -> Path:
    """The artifact directory/file a task wrote under a run's pipeline_root (one run per root)."""
    hits = sorted((run_dir / "pipeline_root").glob(f"*/{task}/{output}"))
    if len(hits) != 1:
        raise AssertionError(f"expected one {task}/{output} under {run_dir}/pipeline_root, found {hits}")
    return hits[0]


def read_result(step_dir: Path, task: str) -> StepResult:
    """A task's summary.json, parsed into the result type its step's spec names (an OutputError if
    it is another step's)."""
    step = steps.step_of_task(task)
    if step is None:
        raise AssertionError(f"{task} is no step of disco.steps")
    return step.result.read(step_dir)


def read_failures(step_dir: Path) -> list[dict]:
    path = step_dir / params.FAILURES_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def add_release_npz(root: Path, *, seed: int = E2E_SEED) -> Path:
    """Write an ``openmic-2018.npz`` like the release's (X uint8 [N, 10, 128], Y_true, Y_mask,
    sample_key) for the dataset's labelled keys. The features carry a little label signal (class
    positives shift a band of dimensions) so a classifier can learn from them."""
    import numpy as np

    from disco.data.openmic import open_dataset

    labels = open_dataset(str(root)).labels()
    rng = np.random.default_rng(seed)
    n = len(labels.keys)
    x = rng.normal(0.0, 0.3, size=(n, params.RELEASE_VGGISH_FRAMES, params.VGGISH_EMBEDDING_SIZE))
    positive = (labels.y_true >= params.POSITIVE_THRESHOLD) & labels.y_mask
    band = params.VGGISH_EMBEDDING_SIZE // params.NUM_CLASSES
    for c in range(params.NUM_CLASSES):
        x[positive[:, c], :, c * band : (c + 1) * band] += 1.0
    span = params.QUANTIZE_MAX_VAL - params.QUANTIZE_MIN_VAL
    q = np.clip(np.round((x - params.QUANTIZE_MIN_VAL) * 255.0 / span), 0, 255).astype(np.uint8)
    path = root / params.NPZ_FILE
    np.savez(path, X=q, Y_true=labels.y_true, Y_mask=labels.y_mask, sample_key=labels.keys)
    return path


def make_release_tarball(root: Path, out: Path) -> Path:
    """Pack a dataset directory like the release tarball (root directory ``openmic-2018/``)."""
    import tarfile

    with tarfile.open(out, "w:gz") as tar:
        tar.add(root, arcname=params.RELEASE_ROOT_NAME)
    return out


def emulator():
    """A real fake-gcs-server (:mod:`helpers.gcs_emulator`), as ``(endpoint_url, storage.Client)``."""
    import contextlib

    from helpers.gcs_emulator import start_gcs_emulator

    @contextlib.contextmanager
    def _endpoint_and_client():
        with start_gcs_emulator() as emu:
            yield emu.endpoint, emu.client

    return _endpoint_and_client()
