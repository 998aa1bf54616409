"""Resample component: decode every clip of the dataset, resample to 16 kHz mono, 10 s, sharded TFRecords.

No ``from __future__ import annotations`` in component modules: KFP reads the artifact types from
the real annotation objects of the function signature.
"""

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Metrics, Output


def resample_audio(
    data_uri: str,
    seed: int,
    validation_fraction: float,
    beam_options: str,
    data_fingerprint: str,
    resampled: Output[Dataset],
    stats: Output[Metrics],
    failures: Output[Markdown],
):
    """Decode, resample and split the dataset's clips; corrupt clips go to failures.jsonl."""
    # The first statement, so locals() holds exactly the component's arguments.
    arguments = dict(locals())
    from disco.beam.resample import run_resample
    from disco_components import _runtime

    _runtime.setup_logging()
    summary = run_resample(data_uri, resampled.path, **_runtime.step_keywords(run_resample, arguments))
    _runtime.describe(resampled, summary, keys=("ok", "failed", "splits", "shards"))
    resampled.metadata["data_uri"] = data_uri
    # The dataset's content identity is an input only so that the cache key changes with the data.
    resampled.metadata["data_fingerprint"] = data_fingerprint
    _runtime.log_metrics(stats, {"clips_ok": summary.ok, "clips_failed": summary.failed})
    with open(failures.path, "w", encoding="utf-8") as fh:
        fh.write(_runtime.failures_markdown(summary))


def make_component(image: str):
    return dsl.component(resample_audio, base_image=image, install_kfp_package=False)
