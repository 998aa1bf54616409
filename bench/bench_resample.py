"""Benchmark: `disco resample` (Beam, in-memory DirectRunner + thread pool) vs a serial
librosa.load(sr=16000, mono=True) loop over the same clips, in the same run; plus augmentation
cost per clip against the seed project's librosa chain (time stretch + pitch shift + noise).

Usage: python bench/bench_resample.py [--clips N] [--data DIR]
Prints figures; asserts nothing (speed is shown, never a timed test).
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from disco import params  # noqa: E402


def _audio_files(root: str) -> list[str]:
    files = []
    for ext in ("ogg", "flac", "wav", "mp3"):
        files += glob.glob(os.path.join(root, "audio", "**", f"*.{ext}"), recursive=True)
    return sorted(files)


def bench_librosa(files: list[str]) -> float:
    import librosa

    start = time.perf_counter()
    for f in files:
        try:
            librosa.load(f, sr=params.SAMPLE_RATE, mono=True)
        except Exception:  # the baseline just skips what it cannot read
            pass
    return time.perf_counter() - start


def bench_augment(n: int) -> tuple[float, float]:
    import librosa

    from disco.audio.augment import augment_clip

    rng = np.random.default_rng(0)
    t = np.arange(params.CLIP_SAMPLES) / params.SAMPLE_RATE
    wave = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    augment_clip(wave, seed=0, key="warmup", copy=1)
    start = time.perf_counter()
    for i in range(n):
        augment_clip(wave, seed=0, key=f"k{i}", copy=1)
    ours = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for _ in range(n):
        y = librosa.effects.time_stretch(wave, rate=float(rng.uniform(0.8, 1.2)))
        y = librosa.effects.pitch_shift(y, sr=params.SAMPLE_RATE, n_steps=float(rng.uniform(-2, 2)))
        y = y + 0.005 * rng.standard_normal(y.size).astype(np.float32)
    seed_chain = (time.perf_counter() - start) / n
    return ours, seed_chain


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--data", help="existing dataset root (default: generate a demo dataset)")
    parser.add_argument("--augment-clips", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from disco.beam.resample import run_resample

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from disco.data.demo import generate_demo_dataset

            data = os.path.join(tmp, "data")
            t0 = time.perf_counter()
            generate_demo_dataset(data, clips=args.clips)
            print(f"generated {args.clips} demo clips (44.1 kHz ogg) in {time.perf_counter() - t0:.1f} s")
        files = _audio_files(data)
        n = len(files)
        # Warm the OS page cache and imports equally for both sides.
        for f in files:
            with open(f, "rb") as fh:
                fh.read()
        # Imports are paid once per process on both sides (librosa is imported above in
        # bench_librosa's first call too), so load Beam/TF before the clock starts.
        import apache_beam  # noqa: F401

        import disco.records  # noqa: F401

        t_lib = bench_librosa(files)
        start = time.perf_counter()
        summary = run_resample(data, os.path.join(tmp, "out"), seed=params.DEFAULT_SEED,
                               validation_fraction=params.DEFAULT_VALIDATION_FRACTION)
        t_disco = time.perf_counter() - start
    print(f"cores: {os.cpu_count()}  clips: {n}  (ok {summary['ok']}, failed {summary['failed']})")
    print(f"librosa.load loop : {n / t_lib:8.1f} clips/s  ({t_lib:.1f} s)")
    print(f"disco resample    : {n / t_disco:8.1f} clips/s  ({t_disco:.1f} s, incl. pipeline start-up)")
    print(f"  of which in-pipeline (summary.seconds): {summary['seconds']:.1f} s")
    print(f"ratio             : {t_lib / t_disco:8.2f}  (target >= 1.6 on 2 cores)")
    ours, seed_chain = bench_augment(args.augment_clips)
    print(f"augment (audiomentations chain): {ours * 1e3:7.1f} ms/clip")
    print(f"seed librosa chain             : {seed_chain * 1e3:7.1f} ms/clip")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
