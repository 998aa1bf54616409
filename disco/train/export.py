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
) -> dict:
    import keras

    from disco.embedders import embedder_options, get_embedder
    from disco.evaluate.evaluate import load_classifier
    from disco.train.train import FEATURES_INFO_FILE, THRESHOLDS_FILE

    info_path = os.path.join(model_dir, FEATURES_INFO_FILE)
    if not os.path.isfile(info_path):
        raise ConfigError(f"{model_dir}: no {FEATURES_INFO_FILE}; is this a train step output?")
    with open(info_path) as fh:
        info = json.load(fh)
    embedder = embedder or info["embedder"]
    if embedder not in ("musicnn", "vggish"):
        raise ConfigError(
            f"model trained on {info['embedder']!r} features: pass --embedder musicnn|vggish "
            "(release features are VGGish after PCA: export needs --embedder vggish with PCA params)"
        )
    classifier, _ = load_classifier(model_dir)
    emb = get_embedder(
        embedder,
        **embedder_options(
            embedder, vggish_handle=vggish_handle, vggish_checkpoint=vggish_checkpoint, precision="float32"
        ),
    )
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
