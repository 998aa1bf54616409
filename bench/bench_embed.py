"""Embedding benchmark on the same generated clips, in one run:

1. model-only throughput: the embedder's forward pass on pre-decoded, pre-batched waveforms, in
   float32 and bfloat16 (the compute limit);
2. `disco embed` end to end (read resampled records, frontend, model, write shards);
3. a serial per-clip baseline in the earlier project's style (librosa load + resample, one float32
   model call, one TFRecord file per clip);
4. peak resident memory of `disco embed` at N and 4N clips (one subprocess each).

    .venv/bin/python bench/bench_embed.py [--clips 256] [--embedder vggish|musicnn]
        [--vggish-checkpoint vggish_model.ckpt | --vggish-handle H]

VGGish with neither a checkpoint nor a handle runs on seeded random weights written to a local
checkpoint with the published variable names (speed does not depend on the values).

Targets (issue 4): end to end >= 85 % of model-only at the chosen precision, >= 2x the serial
baseline, peak memory not growing with N.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import subprocess
import sys
import time

import numpy as np

_CHILD = """
import json, resource, sys, time
from disco.beam.embed import run_embed
opts = json.loads(sys.argv[1])
t = time.perf_counter()
run_embed([opts['audio']], opts['out'], **opts['kw'])
print(json.dumps({"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "seconds": time.perf_counter() - t}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=256)
    ap.add_argument("--embedder", default="vggish", choices=("musicnn", "vggish"))
    ap.add_argument("--vggish-checkpoint", default=None)
    ap.add_argument("--vggish-handle", default=None)
    ap.add_argument("--workdir", default="runs/bench-embed")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import librosa
    import tensorflow as tf

    from disco import params
    from disco.beam.embed import run_embed
    from disco.beam.resample import run_resample
    from disco.data.demo import ensure_demo_dataset
    from disco.embedders import embedder_options, get_embedder
    from disco.records import iter_resampled

    kw = {"embedder": args.embedder, "batch_size": args.batch_size}
    if args.embedder == "vggish" and not (args.vggish_checkpoint or args.vggish_handle):
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from tests.helpers.vggish_fixtures import random_weights, write_v1_checkpoint

        os.makedirs(args.workdir, exist_ok=True)
        args.vggish_checkpoint = os.path.join(args.workdir, "vggish-random.ckpt")
        if not os.path.exists(args.vggish_checkpoint):
            write_v1_checkpoint(args.vggish_checkpoint, random_weights(0))
    if args.embedder == "vggish":
        kw.update(vggish_checkpoint=args.vggish_checkpoint, vggish_handle=args.vggish_handle)
    w = args.workdir
    sizes = {"n": args.clips, "4n": 4 * args.clips}
    for n in sizes.values():
        data = os.path.join(w, f"data-{n}", "openmic-2018")
        if not os.path.exists(os.path.join(w, f"resampled-{n}", params.SUMMARY_FILE)):
            print(f"generating and resampling {n} demo clips ...", flush=True)
            ensure_demo_dataset(data, clips=n, seed=3)
            run_resample(data, os.path.join(w, f"resampled-{n}"), seed=3)
    audio = os.path.join(w, f"resampled-{args.clips}")
    waves = np.stack([r.waveform() for r in iter_resampled([audio])])
    n = len(waves)

    rows = []
    for precision in ("float32", "bfloat16"):
        emb = get_embedder(
            args.embedder,
            **embedder_options(
                args.embedder, precision=precision, **{k: v for k, v in kw.items() if k.startswith("vggish")}
            ),
        )
        emb.embed(waves[: args.batch_size], batch_size=args.batch_size)  # warm-up / trace
        t = time.perf_counter()
        emb.embed(waves, batch_size=args.batch_size)
        rows.append((f"model only, {precision}", n / (time.perf_counter() - t)))

    t = time.perf_counter()
    s = run_embed([audio], os.path.join(w, "embeddings"), **kw)
    e2e = n / (time.perf_counter() - t)
    rows.append((f"disco embed end to end ({s['precision']}, incl. Beam start-up)", e2e))
    rows.append(("disco embed, pipeline-internal rate (summary.json)", s.clips_per_s))

    files = sorted(glob.glob(os.path.join(w, f"data-{args.clips}", "openmic-2018", "audio", "*", "*.ogg")))
    serial_model = get_embedder(
        args.embedder,
        **embedder_options(
            args.embedder, precision="float32", **{k: v for k, v in kw.items() if k.startswith("vggish")}
        ),
    )
    out_dir = os.path.join(w, "serial")
    os.makedirs(out_dir, exist_ok=True)
    serial_model.embed(waves[:1], batch_size=1)
    t = time.perf_counter()
    for i, f in enumerate(files):
        y, _ = librosa.load(f, sr=params.SAMPLE_RATE, mono=True)
        y = np.pad(y, (0, max(0, params.CLIP_SAMPLES - len(y))))[: params.CLIP_SAMPLES]
        e = serial_model.embed(y[None], batch_size=1)
        with tf.io.TFRecordWriter(os.path.join(out_dir, f"{i}.tfrecord")) as wr:
            wr.write(e.tobytes())
    serial = len(files) / (time.perf_counter() - t)
    rows.append(("serial per-clip baseline (librosa, float32, file per clip)", serial))

    # Fresh processes at N and 4N clips: peak memory of each, and the marginal rate between them,
    # (4N - N) / (t_4N - t_N), in which start-up (imports, weight loading, graph tracing) cancels:
    # the rate at which a long run such as OpenMIC's 20,000 clips proceeds.
    mem, secs = {}, {}
    for tag in sizes:
        opts = {
            "audio": os.path.join(w, f"resampled-{sizes[tag]}"),
            "out": os.path.join(w, f"mem-{tag}"),
            "kw": kw,
        }
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(opts)], capture_output=True, text=True, check=True
        )
        child = json.loads(out.stdout.strip().splitlines()[-1])
        mem[tag], secs[tag] = child["maxrss_kb"] / 1024, child["seconds"]
    steady = (sizes["4n"] - sizes["n"]) / (secs["4n"] - secs["n"])
    rows.append(
        (f"disco embed steady state ({sizes['n']} -> {sizes['4n']} clips, start-up cancelled)", steady)
    )

    model_rate = dict(rows)[f"model only, {s['precision']}"]
    print(f"\n{args.embedder}: {n} clips of 10 s, {os.cpu_count()} cores, batch {args.batch_size}\n")
    print(f"{'measurement':<62} {'clips/s':>8}")
    for name, rate in rows:
        print(f"{name:<62} {rate:8.1f}")
    print(
        f"\nend to end / model only ({s['precision']}): {steady / model_rate:.0%} steady state, "
        f"{e2e / model_rate:.0%} on {n} clips with start-up (target >= 85 %)"
    )
    print(f"end to end / serial baseline: {e2e / serial:.1f}x with start-up (target >= 2x)")
    print(f"peak RSS: {mem['n']:.0f} MB at {sizes['n']} clips, {mem['4n']:.0f} MB at {sizes['4n']} clips")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
