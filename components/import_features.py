"""Import-features component: the release's precomputed VGGish features (openmic-2018.npz) as embedding
records, so the pipeline can skip resample, augment and embed (``use_release_features``).

The conversion lives here as a plain function (:func:`write_release_features`) so that it is tested
without KFP and the component body stays a thin wrapper.
"""

import json
import logging
import math
import os

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

log = logging.getLogger(__name__)

RELEASE_EMBEDDER = "vggish-release"  # TODO(lead): move to params (name of the release's features)
RECORDS_PER_SHARD = 2000  # TODO(lead): move to params


def write_release_features(
    data_uri: str,
    out_dir: str,
    *,
    seed: int,
    validation_fraction: float,
) -> dict:
    """Write every clip of the official split as an embedding record: dequantised release VGGish
    features [10, 128] (from openmic-2018.npz, else the per-clip vggish/*.json), labels and mask,
    split from ``ds.clips`` (validation carved from train by artist, seeded). A clip of the split
    without features is a DatasetError, never a silently smaller set."""
    import numpy as np

    from disco import params, records
    from disco.data.openmic import dequantize, open_dataset
    from disco.errors import DatasetError
    from disco.runinfo import seed_everything, write_run_info

    seed_everything(seed)
    ds = open_dataset(data_uri)
    clips = ds.clips(validation_fraction=validation_fraction, seed=seed)
    if ds.has_npz():
        npz = ds.load_npz()
        row_of = {str(k): i for i, k in enumerate(npz.sample_key)}
        missing = [c.key for c in clips if c.key not in row_of]
        if missing:
            raise DatasetError(
                f"{data_uri}/{params.NPZ_FILE}",
                f"{len(missing)} keys of the official split have no features, e.g. {missing[:3]}",
            )
        source = params.NPZ_FILE

        def features_of(key: str) -> np.ndarray:
            return np.asarray(npz.X[row_of[key]])

    else:
        # No npz: the release's per-clip vggish/<key[:3]>/<key>.json (ds.vggish_json raises a
        # DatasetError naming the file when one is missing).
        source = params.VGGISH_DIR

        def features_of(key: str) -> np.ndarray:
            return np.asarray(ds.vggish_json(key))

    def embedding(key: str) -> np.ndarray:
        raw = features_of(key)
        emb = dequantize(raw) if raw.dtype == np.uint8 else raw
        emb = np.asarray(emb, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != params.VGGISH_EMBEDDING_SIZE:
            raise DatasetError(
                f"{data_uri}/{source}", f"features of {key} have shape {emb.shape}, expected [frames, 128]"
            )
        return emb

    os.makedirs(out_dir, exist_ok=True)
    total = max(1, math.ceil(len(clips) / RECORDS_PER_SHARD))
    splits: dict[str, int] = {}
    version = f"{params.RELEASE_TARBALL_NAME}:{source}"
    frames = None
    for shard in range(total):
        chunk = clips[shard * RECORDS_PER_SHARD : (shard + 1) * RECORDS_PER_SHARD]
        path = os.path.join(out_dir, records.shard_name(params.EMBEDDING_PREFIX, shard, total))
        with records.AtomicShardWriter(path) as writer:
            for clip in chunk:
                emb = embedding(clip.key)
                writer.write(
                    records.encode_embedding(
                        records.EmbeddingRecord(
                            key=clip.key,
                            split=clip.split,
                            embedding=emb,
                            y_true=np.asarray(clip.y_true, np.float32),
                            y_mask=np.asarray(clip.y_mask, np.int64),
                            embedder=RELEASE_EMBEDDER,
                            embedder_version=version,
                        )
                    )
                )
                splits[clip.split] = splits.get(clip.split, 0) + 1
                frames = emb.shape[0]
        log.info("import-features: shard %d/%d written (%d records so far)", shard + 1, total, sum(splits.values()))
    summary = {
        "records": sum(splits.values()),
        "splits": splits,
        "shards": total,
        "embedder": RELEASE_EMBEDDER,
        "frames": frames or params.RELEASE_VGGISH_FRAMES,
        "source": source,
        "dim": params.VGGISH_EMBEDDING_SIZE,
        "precision": "uint8-dequantized",
    }
    write_run_info(
        out_dir,
        step="import_features",
        parameters={"data_uri": data_uri, "validation_fraction": validation_fraction},
        seed=seed,
    )
    with open(os.path.join(out_dir, params.SUMMARY_FILE), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return summary


def import_release_features(
    data_uri: str,
    seed: int,
    validation_fraction: float,
    features: Output[Dataset],
    stats: Output[Metrics],
):
    """Convert the release's openmic-2018.npz into embedding records (skips resample/embed)."""
    from components import _runtime
    from components.import_features import write_release_features

    _runtime.setup_logging()
    summary = write_release_features(data_uri, features.path, seed=seed, validation_fraction=validation_fraction)
    _runtime.describe(features, summary, keys=("records", "embedder", "frames", "dim", "splits"))
    _runtime.log_metrics(stats, {"records": summary["records"]})


def make_component(image: str):
    return dsl.component(import_release_features, base_image=image, install_kfp_package=False)
