"""`disco predict MODEL_DIR FILE... [--json]`: instruments found in any audio file."""

from __future__ import annotations

import argparse
import json

# `disco predict --help` ends with these.
EXAMPLES = (
    "disco predict work/export song.ogg",
    "disco predict work/export a.wav b.ogg --all --json",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict", help="instruments in audio files, with probabilities (exported model)"
    )
    p.add_argument("model_dir", help="export output directory")
    p.add_argument("files", nargs="+", help="audio files")
    p.add_argument("--all", action="store_true", help="list every class, not only those above threshold")
    p.add_argument("--json", action="store_true", help="print JSON lines, one per file")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import numpy as np

    from disco import params
    from disco.audio.decode import load_clip
    from disco.errors import AudioDecodeError
    from disco.train.export import load_exported

    serve, thresholds = load_exported(args.model_dir)
    results, rc = [], 0
    for path in args.files:
        try:
            clip, duration = load_clip(path, name=path)
        except AudioDecodeError as exc:
            results.append({"file": path, "error": exc.reason})
            rc = 1
            continue
        probs = np.asarray(serve(clip[None].astype(np.float32)))[0]
        found = [
            {"instrument": c, "probability": round(float(p), 4), "threshold": round(float(t), 4)}
            for c, p, t in zip(params.CLASSES, probs, thresholds)
            if args.all or p >= t
        ]
        found.sort(key=lambda r: -r["probability"])
        results.append({"file": path, "duration_s": round(duration, 2), "instruments": found})
    if args.json:
        print(json.dumps(results, indent=2))
        return rc
    for r in results:
        print(f"\n{r['file']}" + (f": error: {r['error']}" if "error" in r else f" ({r['duration_s']} s)"))
        for f in r.get("instruments", []):
            print(f"  {f['instrument']:<18} {f['probability']:.3f}  (threshold {f['threshold']:.2f})")
        if "instruments" in r and not r["instruments"]:
            print("  no instrument above its threshold")
    return rc
