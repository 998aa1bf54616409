"""Resample benchmark: `disco resample` (Beam, thread-pooled libsndfile + soxr HQ) against a
serial per-clip `librosa.load(sr=16000, mono=True)` loop on the same generated clips, in the same
run; then the augmentation cost per clip against the seed project's librosa chain.

    .venv/bin/python bench/bench_resample.py [--clips 200] [--workdir runs/bench-resample]

Target (issue 3): ratio >= 1.6 on a 2-core machine.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import shutil
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--workdir", default="runs/bench-resample")
    ap.add_argument("--augment-clips", type=int, default=20)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import librosa

    from disco import params
    from disco.beam.resample import run_resample
    from disco.data.demo import generate_demo_dataset

    data = os.path.join(args.workdir, f"openmic-2018-{args.clips}")
    if not os.path.exists(os.path.join(data, params.AGGREGATED_LABELS_FILE)):
        print(f"generating {args.clips} demo clips in {data} ...", flush=True)
        generate_demo_dataset(data, clips=args.clips, seed=1)
    files = sorted(glob.glob(os.path.join(data, "audio", "*", "*.ogg")))

    # Both sides start warm: library imports and librosa's lazy set-up are process start-up, not
    # throughput, and a command pays them once however many clips it reads.
    import apache_beam  # noqa: F401

    librosa.load(files[0], sr=params.SAMPLE_RATE, mono=True)
    t = time.perf_counter()
    for f in files:
        y, _ = librosa.load(f, sr=params.SAMPLE_RATE, mono=True)
    serial = len(files) / (time.perf_counter() - t)

    out = os.path.join(args.workdir, "resampled")
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    s = run_resample(data, out, seed=1)
    disco_rate = s["clips"] / (time.perf_counter() - t)

    print(f"\n{len(files)} clips, 10 s 44.1 kHz stereo Ogg Vorbis, {os.cpu_count()} cores\n")
    print(f"{'method':<58} {'clips/s':>8}")
    print(f"{'serial librosa.load(sr=16000, mono=True) loop':<58} {serial:8.1f}")
    print(f"{'disco resample (Beam in-memory, threads, soxr HQ, write)':<58} {disco_rate:8.1f}")
    print(f"ratio {disco_rate / serial:.2f} (target >= 1.6)")

    from disco.audio.augment import augment_clip
    from disco.records import iter_resampled

    waves = [r.waveform() for _, r in zip(range(args.augment_clips), iter_resampled([out]))]
    t = time.perf_counter()
    for i, w in enumerate(waves):
        augment_clip(w, seed=1, key=str(i), copy=1)
    ours = (time.perf_counter() - t) / len(waves) * 1000
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for w in waves:
        x = librosa.effects.time_stretch(w, rate=float(rng.uniform(0.85, 1.15)))
        x = librosa.effects.pitch_shift(x, sr=params.SAMPLE_RATE, n_steps=float(rng.uniform(-2, 2)))
        x = x + rng.normal(0, 0.01, len(x)).astype(np.float32)
    seed_chain = (time.perf_counter() - t) / len(waves) * 1000
    print(f"\naugmentation per clip: disco (audiomentations chain) {ours:.1f} ms; "
          f"seed project's librosa chain (time stretch + pitch shift + noise) {seed_chain:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
