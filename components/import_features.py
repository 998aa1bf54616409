"""Import-features component: the release's precomputed VGGish features (openmic-2018.npz) as embedding
records, so the pipeline can skip resample, augment and embed (``use_release_features``).

The conversion is the library's :func:`disco.train.features.write_release_records`; this is its thin
KFP wrapper.
"""

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output


def import_release_features(
    data_uri: str,
    seed: int,
    validation_fraction: float,
    data_fingerprint: str,
    features: Output[Dataset],
    stats: Output[Metrics],
):
    """Convert the release's openmic-2018.npz into embedding records (skips resample/embed)."""
    from components import _runtime
    from disco.train.features import write_release_records

    _runtime.setup_logging()
    summary = write_release_records(
        data_uri, features.path, seed=seed, validation_fraction=validation_fraction
    )
    _runtime.describe(features, summary, keys=("records", "embedder", "frames", "dim", "splits"))
    # The dataset's content identity is an input only so that the cache key changes with the data.
    features.metadata["data_fingerprint"] = data_fingerprint
    _runtime.log_metrics(stats, {"records": summary.records})


def make_component(image: str):
    return dsl.component(import_release_features, base_image=image, install_kfp_package=False)
