"""The cost curve of the whole pipeline: resample -> embed (musicnn) -> train -> evaluate on the
local runner at N and FACTOR x N demo clips. Per step: wall time of its process, the step's own time
(summary.json ``seconds`` where the step reports it, else the wall time), clips/s, and the peak
resident memory of the step's processes; then the per-clip cost ratio FACTOR*N / N, the
projection for the full OpenMIC-2018 (20,000 clips) on this machine, and the same projection with
embed at musicnn's measured model-only rate on each device TensorFlow sees (float32 and bfloat16
where native): on a GPU machine, the one-GPU projection.

    .venv/bin/python bench/bench_scale.py [--clips 200] [--factor 4] [--workdir runs/bench-scale] [--beam-only]

Targets (issue 14): per-clip cost ratio <= 1.1 for resample and embed (no super-linear step), and
flat peak memory for the Beam steps (resample, embed). Each step runs as its own `disco` process,
so a step's memory is its own (os.wait4's rusage of that process and the children it waited for).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

FULL_OPENMIC_CLIPS = 20_000
BEAM_STEPS = ("resample", "embed")


@dataclass(frozen=True)
class StepRun:
    step: str
    clips: int
    wall_s: float
    step_s: float
    peak_mb: float

    @property
    def clips_per_s(self) -> float:
        return self.clips / self.step_s

    @property
    def ms_per_clip(self) -> float:
        return 1000.0 * self.step_s / self.clips


def _run(step: str, argv: list[str], clips: int, out: Path) -> StepRun:
    disco = Path(sys.executable).with_name("disco")
    log = out.with_suffix(".log")
    t = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(disco), *argv], stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"disco {step} failed (exit {proc.returncode}); its log: {log}")
    summary = out / "summary.json"
    step_s = wall
    if summary.exists():
        step_s = float(json.loads(summary.read_text()).get("seconds") or wall)
    # ru_maxrss is in KiB on Linux.
    return StepRun(step, clips, wall, step_s, usage.ru_maxrss / 1024.0)


def pipeline(data: Path, work: Path, clips: int, seed: int, beam_only: bool = False) -> list[StepRun]:
    work.mkdir(parents=True, exist_ok=True)
    for d in ("resampled", "embedded", "model", "evaluation"):
        subprocess.run(["rm", "-rf", str(work / d)], check=True)
    runs = [
        _run(
            "resample", ["resample", str(data), "--out", str(work / "resampled")], clips, work / "resampled"
        ),
        _run(
            "embed",
            ["embed", str(work / "resampled"), "--out", str(work / "embedded"), "--embedder", "musicnn"],
            clips,
            work / "embedded",
        ),
    ]
    if beam_only:
        return runs
    runs += [
        _run(
            "train",
            [
                "train",
                str(work / "embedded"),
                "--out",
                str(work / "model"),
                # One network (what `make demo` trains): the step's cost, not model selection's.
                "--preset",
                "demo",
                "--seed",
                str(seed),
            ],
            clips,
            work / "model",
        ),
        _run(
            "evaluate",
            ["evaluate", str(work / "model"), str(work / "embedded"), "--out", str(work / "evaluation")],
            clips,
            work / "evaluation",
        ),
    ]
    return runs


def _dataset(workdir: Path, clips: int, seed: int) -> Path:
    from disco.data.demo import ensure_demo_dataset

    data = workdir / f"openmic-2018-{clips}"
    print(f"demo clips in {data} (generated unless there) ...", flush=True)
    ensure_demo_dataset(data, clips=clips, seed=seed)
    return data


def _model_only_projection(resampled: Path, step_hours: dict[str, float], clips: int = 256) -> None:
    """The embed step's model-only rate (musicnn's forward pass on decoded, batched waveforms: the
    compute limit) on each device TensorFlow sees, float32 and bfloat16 where native, and the full
    OpenMIC-2018 projection with embed at that rate and the other steps as measured here. On a GPU
    machine this is the one-GPU projection; here (CPU only) it shows what embed pays beyond its
    model."""
    import numpy as np
    import tensorflow as tf

    from disco import params
    from disco.embedders import embedder_options, get_embedder
    from disco.embedders.precision import native_bfloat16
    from disco.records import iter_resampled

    waves = np.stack([r.waveform() for _, r in zip(range(clips), iter_resampled([str(resampled)]))])
    batch = params.EMBED_BATCH_SIZE
    gpus = tf.config.list_physical_devices("GPU")
    devices = [("GPU", "/GPU:0", gpus[0].name)] if gpus else []
    devices.append(("CPU", "/CPU:0", f"{os.cpu_count()} cores"))
    other = sum(h for step, h in step_hours.items() if step != "embed")
    print(
        f"\nmodel-only embed rate (musicnn, {len(waves)} clips, batch {batch}) and the {FULL_OPENMIC_CLIPS}-clip "
        f"projection with the other steps as measured here ({other:.2f} h):"
    )
    for kind, device, what in devices:
        for precision in ("float32", "bfloat16"):
            # On the CPU row the CPU's flags decide, whatever GPUs the machine has.
            native, why = (
                native_bfloat16(gpus=[] if kind == "CPU" else None) if precision == "bfloat16" else (True, "")
            )
            if not native:
                print(f"  {kind} ({what}), {precision}: not native here ({why})")
                continue
            with tf.device(device):
                emb = get_embedder("musicnn", **embedder_options("musicnn", precision=precision))
                emb.embed(waves[:batch], batch_size=batch)  # warm-up: tracing
                t = time.perf_counter()
                emb.embed(waves, batch_size=batch)
                rate = len(waves) / (time.perf_counter() - t)
            hours = FULL_OPENMIC_CLIPS / rate / 3600
            print(
                f"  {kind} ({what}), {precision}: {rate:7.1f} clips/s -> embed {hours:5.2f} h, "
                f"total {other + hours:5.2f} h"
            )
    if not gpus:
        print(
            "  no GPU visible to TensorFlow here: the one-GPU projection needs a GPU machine (same command)"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=200, help="N: the small size")
    ap.add_argument("--factor", type=int, default=4, help="the large size is FACTOR x N")
    ap.add_argument("--workdir", default="runs/bench-scale")
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument(
        "--beam-only",
        action="store_true",
        help="only the Beam steps (resample, embed): their cost and memory",
    )
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = (args.clips, args.clips * args.factor)
    results: dict[int, list[StepRun]] = {}
    for n in sizes:
        data = _dataset(workdir, n, seed=1)
        print(f"pipeline on {n} clips ...", flush=True)
        results[n] = pipeline(data, workdir / f"run-{n}", n, args.seed, args.beam_only)

    small, large = sizes
    print(
        f"\n{'Beam steps' if args.beam_only else 'whole pipeline'}, local runner, musicnn, {os.cpu_count()} cores; "
        "step time = the step's own "
        f"summary.json seconds (process start-up excluded), wall = its process\n"
    )
    print(
        f"{'step':<9} {'clips':>6} {'wall s':>7} {'step s':>7} {'clips/s':>8} {'ms/clip':>8} {'peak MB':>8}"
    )
    for n in sizes:
        for r in results[n]:
            print(
                f"{r.step:<9} {n:>6} {r.wall_s:7.1f} {r.step_s:7.1f} {r.clips_per_s:8.1f} "
                f"{r.ms_per_clip:8.1f} {r.peak_mb:8.0f}"
            )
    print(
        f"\nper-clip cost ratio {large}/{small} clips (target <= 1.1 for resample and embed), peak memory ratio"
    )
    for a, b in zip(results[small], results[large]):
        ratio = b.ms_per_clip / a.ms_per_clip
        mem = b.peak_mb / a.peak_mb
        target = ""
        if a.step in BEAM_STEPS:
            met = ratio <= 1.1 and mem <= 1.1
            target = "  target met" if met else "  TARGET MISSED"
        print(f"  {a.step:<9} cost {ratio:5.2f}  memory {mem:5.2f}{target}")

    hours = {}
    print(
        f"\nprojection for the full OpenMIC-2018 ({FULL_OPENMIC_CLIPS} clips) on this machine, from the {large}-clip run:"
    )
    for r in results[large]:
        hours[r.step] = r.ms_per_clip * FULL_OPENMIC_CLIPS / 1000.0 / 3600
        note = "" if r.step in BEAM_STEPS else " (linear in clips assumed; epochs to converge vary)"
        print(f"  {r.step:<9} {hours[r.step]:6.2f} h{note}")
    print(f"  {'total':<9} {sum(hours.values()):6.2f} h")
    if "embed" in hours:
        _model_only_projection(workdir / f"run-{large}" / "resampled", hours)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
