"""Export: one SavedModel from a raw 16 kHz mono waveform [B, 160000] to 20 probabilities
(embedder frontend + network + classifier), with the per-class thresholds beside it."""

from __future__ import annotations

import json
import logging
import os
import shutil

from disco import params
from disco.errors import ConfigError
from disco.inputs import read_thresholds
from disco.runinfo import write_run_info

log = logging.getLogger(__name__)

SAVED_MODEL_DIR = "saved_model"


def run_export(
    model_dir: str,
    out_dir: str,
    *,
    embedder: str | None = None,
    vggish_handle: str | None = None,
    vggish_checkpoint: str | None = None,
    pca_params: str | None = None,
) -> dict:
    import keras

    from disco.embedders import embedder_options, get_embedder
    from disco.train.train import FEATURES_INFO_FILE, THRESHOLDS_FILE, load_classifier

    info_path = os.path.join(model_dir, FEATURES_INFO_FILE)
    if not os.path.isfile(info_path):
        raise ConfigError(f"{model_dir}: no {FEATURES_INFO_FILE}; is this a train step output?")
    with open(info_path) as fh:
        info = json.load(fh)
    if info["embedder"] == params.RELEASE_EMBEDDER or not info.get("embedder_version"):
        # The release's features are its VGGish (fc2 with ReLU) after PCA and 8-bit quantisation,
        # dequantised for training; no frontend export builds gives that space (+pca gives the
        # quantised 0..255 values), and a features.json that names no version cannot be checked.
        raise ConfigError(
            f"{model_dir}: trained on {info['embedder']!r} features "
            f"({info.get('embedder_version') or 'embedder version not recorded'}), which export cannot "
            "rebuild from audio; export a model trained on `disco embed` features"
        )
    embedder = embedder or info["embedder"]
    if embedder not in ("musicnn", "vggish"):
        raise ConfigError(f"model trained on {info['embedder']!r} features: pass --embedder musicnn|vggish")
    classifier, _ = load_classifier(model_dir)
    emb = get_embedder(
        embedder,
        **embedder_options(
            embedder,
            vggish_handle=vggish_handle,
            vggish_checkpoint=vggish_checkpoint,
            pca_params=pca_params,
            precision="float32",
        ),
    )
    _check_frontend(model_dir, info.get("embedder_version", ""), emb.version)
    if (emb.frames_per_clip, emb.dim) != (info["frames"], info["dim"]):
        raise ConfigError(
            f"embedder gives {emb.frames_per_clip}x{emb.dim}, classifier expects "
            f"{info['frames']}x{info['dim']}"
        )
    wave = keras.Input((params.CLIP_SAMPLES,), name="waveform")
    full = keras.Model(wave, classifier(emb.keras_model()(wave)), name="disco_waveform_classifier")
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, SAVED_MODEL_DIR)
    if os.path.exists(target):
        shutil.rmtree(target)
    full.export(target, format="tf_saved_model", verbose=False)
    shutil.copy(os.path.join(model_dir, THRESHOLDS_FILE), os.path.join(out_dir, THRESHOLDS_FILE))
    summary = {
        "step": "export",
        "saved_model": target,
        "embedder": emb.describe(),
        "classes": list(params.CLASSES),
        "input": f"float32 [batch, {params.CLIP_SAMPLES}] mono {params.SAMPLE_RATE} Hz in [-1, 1]",
    }
    with open(os.path.join(out_dir, params.SUMMARY_FILE), "w") as fh:
        json.dump(summary, fh, indent=2)
    write_run_info(out_dir, step="export", parameters={"model_dir": str(model_dir), "embedder": embedder})
    log.info("exported %s", target)
    return summary


def _check_frontend(model_dir: str, trained: str, built: str) -> None:
    from disco.train.features import frontend_of

    """Refuse to put the classifier behind another frontend than its features came from: the
    shapes agree (10x128 either way), so nothing else would notice, and every probability would be
    meaningless."""
    if frontend_of(trained) != frontend_of(built):
        raise ConfigError(
            f"{model_dir}: trained on {trained!r} features, but this export builds {built!r}; "
            "pass the embed step's --pca-params and weights (--vggish-checkpoint / --vggish-handle)"
        )
    if trained != built:
        log.warning(
            "%s: trained on %s features, exporting with %s (same frontend)", model_dir, trained, built
        )


def load_exported(model_dir: str):
    """(serving function waveform→probabilities, thresholds) from an export directory."""
    import tensorflow as tf

    from disco.train.train import THRESHOLDS_FILE

    path = os.path.join(model_dir, SAVED_MODEL_DIR)
    if not os.path.isdir(path):
        raise ConfigError(f"{model_dir}: no {SAVED_MODEL_DIR}/; run `disco export` first")
    thresholds = read_thresholds(os.path.join(model_dir, THRESHOLDS_FILE))
    loaded = tf.saved_model.load(path)
    # The closure keeps the loaded object (which owns the variables) alive as long as the function.
    return (lambda waveforms: loaded.serve(waveforms)), thresholds
