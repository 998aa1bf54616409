"""`disco predict MODEL_DIR AUDIO...`: instruments in whole recordings, window by window."""

from __future__ import annotations

import argparse

# `disco predict --help` ends with these.
EXAMPLES = (
    "disco predict work/export song.ogg",
    "disco predict work/export a.wav b.ogg --all --json",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    from disco import params
    from disco.cli import argtypes
    from disco.predict import AGGREGATES, DEFAULT_HOP_SECONDS

    p = subparsers.add_parser(
        "predict",
        help="instruments in audio files of any length, per 10 s window and per file (exported model)",
        description="Score each recording in 10 s windows every --hop seconds (the last window "
        "zero-padded); a file's score per class is the max or mean over its windows, and an "
        "instrument is present where its score reaches the model's threshold (thresholds.json).",
        epilog="examples:\n  disco predict export/ song.mp3\n"
        "  disco predict export/ recordings/ 'live/*.wav' --hop 5 --format csv --out predictions.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model_dir", help="export output directory (disco export)")
    p.add_argument("audio", nargs="+", help="audio files, folders (searched recursively) or glob patterns")
    p.add_argument(
        "--hop",
        type=argtypes.positive_float,
        default=DEFAULT_HOP_SECONDS,
        help=f"seconds between window starts, at most {params.CLIP_SECONDS:g} (default %(default)s)",
    )
    p.add_argument(
        "--aggregate",
        choices=AGGREGATES,
        default="max",
        help="file score per class from its windows: max (anywhere) or mean (throughout) (default max)",
    )
    p.add_argument(
        "--format",
        choices=("text", "csv", "jsonl"),
        default="text",
        help="text (readable), csv (a row per window and per file) or jsonl (an object per file)",
    )
    p.add_argument("--json", action="store_true", help="same as --format jsonl")
    p.add_argument("--out", default=None, help="write the csv/jsonl here (default: stdout)")
    p.add_argument("--all", action="store_true", help="text: list every class, not only those present")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import logging

    from disco import fileio
    from disco.predict import expand_inputs, format_text, predict_file, to_csv, to_jsonl
    from disco.train.export import load_exported

    log = logging.getLogger("disco.predict")
    fmt = "jsonl" if args.json else args.format
    files = expand_inputs(args.audio)
    serve, thresholds = load_exported(args.model_dir)
    predictions = []
    for i, path in enumerate(files, 1):
        p = predict_file(serve, thresholds, path, hop_s=args.hop, aggregate=args.aggregate)
        if p.error is not None:
            log.error("%s: %s", path, p.error)
        elif len(files) > 1:
            log.info("%d/%d %s: %s", i, len(files), path, ", ".join(p.present) or "nothing")
        predictions.append(p)
        if fmt == "text" and args.out is None:
            print(format_text(p, thresholds, show_all=args.all) + "\n")
    if fmt != "text" or args.out is not None:
        text = (
            to_csv(predictions)
            if fmt == "csv"
            else to_jsonl(predictions)
            if fmt == "jsonl"
            else "\n\n".join(format_text(p, thresholds, show_all=args.all) for p in predictions) + "\n"
        )
        if args.out is None:
            print(text, end="")
        else:
            fileio.write_text(args.out, text)
            log.info("wrote %d files' predictions to %s", len(predictions), args.out)
    # A file that could not be decoded fails the command, after every other file was scored.
    return 1 if any(p.error is not None for p in predictions) else 0
