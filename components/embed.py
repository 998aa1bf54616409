"""Embed component: Beam-parallel embedding (musicnn or VGGish) of the original and augmented audio."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output


def embed_audio(
    embedder: str,
    vggish_handle: str,
    beam_options: str,
    resampled: Input[Dataset],
    augmented: Input[Dataset],
    embeddings: Output[Dataset],
    stats: Output[Metrics],
):
    """Embed every resampled clip (and every augmented copy, when there are any)."""
    # The first statement, so locals() holds exactly the component's arguments.
    arguments = dict(locals())
    from disco import params
    from disco.beam.embed import run_embed
    from disco_components import _runtime

    _runtime.setup_logging()
    audio_dirs = [resampled.path]
    if _runtime.has_shards(augmented.path, params.RESAMPLED_PREFIX):
        audio_dirs.append(augmented.path)
    summary = run_embed(audio_dirs, embeddings.path, **_runtime.step_keywords(run_embed, arguments))
    _runtime.describe(
        embeddings, summary, keys=("records", "failed", "embedder", "frames", "dim", "precision", "shards")
    )
    _runtime.log_metrics(
        stats,
        {
            "records": summary.records,
            "failed": summary.failed,
            "frames": summary.frames,
            "dim": summary.dim,
        },
    )


def make_component(image: str):
    return dsl.component(embed_audio, base_image=image, install_kfp_package=False)
