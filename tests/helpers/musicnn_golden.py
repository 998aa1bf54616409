"""Golden outputs of the ORIGINAL musicnn implementation, for tests/test_musicnn.py.

Run in a subprocess, never imported by the test process: the original needs TF1 graph mode
(``tf.compat.v1.disable_eager_execution()`` at import) and Keras 2's ``tf.compat.v1.layers``, i.e.
``TF_USE_LEGACY_KERAS=1`` with ``tf_keras`` installed::

    TF_USE_LEGACY_KERAS=1 python tests/helpers/musicnn_golden.py OUT.npz CLIP.wav [CLIP.wav ...]

For every 16 kHz mono WAV it stores, under ``<i>/<name>``:

* ``batch``: the original's model input, from ``musicnn.extractor.batch_data`` (librosa mel
  spectrogram, cast to float16, ``log10(10000 * mel + 1)`` in float16, non-overlapping 187-frame
  patches), as float32;
* ``log_mel32``: the same spectrogram computed without the float16 cast (float32 librosa, log in
  float64): what a float32 port should reproduce;
* ``max_pool``, ``mean_pool``, ``penultimate``, ``taggram``: the original graph
  (``musicnn.models.define_model``, weights restored with its Saver as ``extractor`` does) on
  ``batch``, all patches in one session call.

``extractor_taggram`` / ``extractor_max_pool`` hold ``musicnn.extractor.extractor()``'s own output
for the first clip, to show this harness runs the original exactly as its public entry point does
(its per-patch ``penultimate``/``cnn*`` features are not usable: after the first patch it appends
the first patch's values again, a bug in musicnn 0.1.0's extractor loop).
"""

from __future__ import annotations

import os
import sys

import numpy as np


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write(__doc__ or "")
        return 2
    out_path, wavs = argv[0], argv[1:]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import librosa
    import tensorflow as tf
    from musicnn import configuration as config
    from musicnn import extractor as original
    from musicnn import models

    model = "MTT_musicnn"
    n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP) + 1
    results: dict[str, np.ndarray] = {"n_frames": np.array(n_frames)}

    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outputs = models.define_model(x, is_training, model, len(config.MTT_LABELS))
        logits, *_, mean_pool, max_pool, penultimate = outputs
        taggram = tf.nn.sigmoid(logits)
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    tf.compat.v1.train.Saver().restore(sess, os.path.dirname(original.__file__) + f"/{model}/")

    for index, wav in enumerate(wavs):
        batch, _ = original.batch_data(wav, n_frames, n_frames)
        audio, sr = librosa.load(wav, sr=config.SR)
        mel = librosa.feature.melspectrogram(
            y=audio, sr=sr, hop_length=config.FFT_HOP, n_fft=config.FFT_SIZE, n_mels=config.N_MELS
        ).T
        values = sess.run(
            [max_pool, mean_pool, penultimate, taggram],
            feed_dict={x: batch.astype(np.float32), is_training: False},
        )
        results[f"{index}/batch"] = batch.astype(np.float32)
        results[f"{index}/log_mel32"] = np.log10(10000.0 * mel.astype(np.float64) + 1.0)
        for name, value in zip(("max_pool", "mean_pool", "penultimate", "taggram"), values):
            results[f"{index}/{name}"] = np.asarray(value, np.float32)
    sess.close()

    extractor_taggram, _, features = original.extractor(wavs[0], model=model)
    results["extractor_taggram"] = np.asarray(extractor_taggram, np.float32)
    results["extractor_max_pool"] = np.asarray(features["max_pool"], np.float32)
    np.savez(out_path, **results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
