"""The cost curve of the whole pipeline: resample -> embed (musicnn) -> train -> evaluate on the
local runner at N and FACTOR x N demo clips. Per step: wall time of its process, the step's own time
(summary.json ``seconds`` where the step reports it, else the wall time), clips/s, and the peak
resident memory of the step's processes; then the per-clip cost ratio FACTOR*N / N and the
projection for the full OpenMIC-2018 (20,000 clips) on this machine.

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
    from disco import params
    from disco.data.demo import generate_demo_dataset

    data = workdir / f"openmic-2018-{clips}"
    if not (data / params.AGGREGATED_LABELS_FILE).exists():
        print(f"generating {clips} demo clips in {data} ...", flush=True)
        generate_demo_dataset(data, clips=clips, seed=seed)
    return data


def _gpu_note() -> str:
    try:
        found = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        found = None
    if found is not None and found.returncode == 0 and found.stdout.strip():
        return f"GPU present ({found.stdout.strip().splitlines()[0]}): run make bench-embed for its model-only rate"
    return "no GPU on this machine: no GPU projection (make bench-embed on a GPU machine gives its rate)"


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

    total = 0.0
    print(
        f"\nprojection for the full OpenMIC-2018 ({FULL_OPENMIC_CLIPS} clips) on this machine, from the {large}-clip run:"
    )
    for r in results[large]:
        seconds = r.ms_per_clip * FULL_OPENMIC_CLIPS / 1000.0
        total += seconds
        note = "" if r.step in BEAM_STEPS else " (linear in clips assumed; epochs to converge vary)"
        print(f"  {r.step:<9} {seconds / 3600:6.2f} h{note}")
    print(f"  {'total':<9} {total / 3600:6.2f} h")
    print(f"\n{_gpu_note()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
