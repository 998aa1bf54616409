"""Small, consistent OpenMIC-format datasets for data-layer tests, built from the real sample's
files (class map, metadata header, the real clip's bytes) plus generated rows."""

from __future__ import annotations

import csv
import shutil
import tarfile
from pathlib import Path

import numpy as np

from disco import params


def make_dataset(
    root: Path,
    sample: Path,
    *,
    n_train: int = 48,
    n_test: int = 12,
    n_artists: int = 15,
    seed: int = 0,
    with_metadata: bool = True,
) -> Path:
    """Write a release-layout dataset: every key labelled for 2-4 classes, partitioned,
    with artist ids (test artists disjoint from train, like the official split)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(sample / params.CLASS_MAP_FILE, root / params.CLASS_MAP_FILE)
    keys = [f"{100000 + i:06d}_{3840 * (i + 1)}" for i in range(n_train + n_test)]
    train, test = keys[:n_train], keys[n_train:]
    with open(root / params.AGGREGATED_LABELS_FILE, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample_key", "instrument", "relevance", "num_responses"])
        for key in keys:
            for cls in sorted(rng.choice(params.NUM_CLASSES, size=rng.integers(2, 5), replace=False)):
                w.writerow(
                    [key, params.CLASSES[cls], float(np.round(rng.random(), 5)), int(rng.integers(1, 6))]
                )
    (root / params.PARTITIONS_DIR).mkdir(exist_ok=True)
    (root / params.PARTITIONS_DIR / params.PARTITION_TRAIN_FILE).write_text("".join(k + "\n" for k in train))
    (root / params.PARTITIONS_DIR / params.PARTITION_TEST_FILE).write_text("".join(k + "\n" for k in test))
    if with_metadata:
        header = (sample / params.METADATA_FILE).read_text().splitlines()[0].split(",")
        with open(root / params.METADATA_FILE, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for i, key in enumerate(keys):
                # Train artists 0..n_artists-1 (uneven group sizes); test artists disjoint.
                artist = int(rng.integers(0, n_artists)) if i < n_train else 1000 + i % 3
                row = {name: "" for name in header}
                row.update(sample_key=key, artist_id=str(artist), track_id=str(i))
                w.writerow([row[name] for name in header])
    ogg = (sample / "audio" / "000" / "000046_3840.ogg").read_bytes()
    for key in keys:
        path = root / "audio" / key[:3] / f"{key}.ogg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(ogg)
    return root


def make_tgz(src: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(src, arcname=params.RELEASE_ROOT_NAME)
    return out
