"""Instruments in whole recordings with an exported model (``disco predict``).

The model sees 10 s at 16 kHz. A recording is cut into 10 s windows every ``hop`` seconds (the
last window zero-padded, as resample pads short clips), each window is scored, and the file's
score per class is the max (an instrument playing anywhere) or the mean (playing throughout) of
its windows' scores. Present means score >= the class's threshold from the model's
``thresholds.json`` (tuned on validation), for windows and for the file alike.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from disco import params
from disco.errors import AudioDecodeError, ConfigError

log = logging.getLogger(__name__)

AGGREGATES = ("max", "mean")
DEFAULT_HOP_SECONDS = params.CLIP_SECONDS
# What a folder is searched for (a file named explicitly is tried whatever its suffix).
AUDIO_SUFFIXES = (".ogg", ".oga", ".opus", ".wav", ".flac", ".mp3", ".m4a", ".aac", ".aif", ".aiff")
WINDOW_BATCH = 8  # windows scored per call: bounds memory on long recordings
# A tail shorter than this after the last window is not scored as a window of its own (it would be
# mostly padding, and a 10.02 s release clip would otherwise be two windows).
MIN_TAIL_SECONDS = 1.0


@dataclass
class Window:
    start_s: float
    end_s: float  # of the audio inside the window (the padding excluded)
    scores: list[float]
    present: list[str]


@dataclass
class FilePrediction:
    file: str
    duration_s: float | None = None
    aggregate: str = "max"
    hop_s: float = DEFAULT_HOP_SECONDS
    scores: list[float] = field(default_factory=list)  # the file's score per class
    present: list[str] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        out = {
            "file": self.file,
            "duration_s": self.duration_s,
            "aggregate": self.aggregate,
            "hop_s": self.hop_s,
        }
        if self.error is not None:
            return {**out, "error": self.error}
        return {
            **out,
            "present": self.present,
            "scores": dict(zip(params.CLASSES, _rounded(self.scores))),
            "windows": [
                {
                    "start_s": w.start_s,
                    "end_s": w.end_s,
                    "present": w.present,
                    "scores": dict(zip(params.CLASSES, _rounded(w.scores))),
                }
                for w in self.windows
            ],
        }


def _rounded(values: Sequence[float]) -> list[float]:
    return [round(float(v), 4) for v in values]


def expand_inputs(items: Iterable[str]) -> list[str]:
    """Files as given; folders searched recursively for audio; anything else read as a glob. A
    pattern or folder that matches nothing is an error naming it, not an empty result."""
    files: list[str] = []
    for item in items:
        if os.path.isdir(item):
            found = sorted(
                os.path.join(d, f)
                for d, _, names in os.walk(item)
                for f in names
                if f.lower().endswith(AUDIO_SUFFIXES)
            )
            if not found:
                raise ConfigError(f"{item}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in this folder")
            files += found
        elif os.path.exists(item):
            files.append(item)
        else:
            matched = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not matched:
                raise ConfigError(f"{item}: no such file, folder or matching files")
            files += matched
    seen: set[str] = set()
    return [f for f in files if not (f in seen or seen.add(f))]


def window_starts(n_samples: int, hop_samples: int) -> list[int]:
    """Start samples of the windows covering n_samples: every hop, until a window reaches the end
    (a recording of 10 s or less is one window; see MIN_TAIL_SECONDS)."""
    min_tail = int(MIN_TAIL_SECONDS * params.SAMPLE_RATE)
    starts = [0]
    while n_samples - (starts[-1] + params.CLIP_SAMPLES) >= min_tail:
        starts.append(starts[-1] + hop_samples)
    return starts


def windows_of(wave: np.ndarray, hop_s: float) -> tuple[list[int], np.ndarray]:
    """(start samples, float32 [n, CLIP_SAMPLES]) of a 16 kHz mono waveform, the last window
    zero-padded."""
    hop = int(round(hop_s * params.SAMPLE_RATE))
    starts = window_starts(len(wave), hop)
    out = np.zeros((len(starts), params.CLIP_SAMPLES), np.float32)
    for i, s in enumerate(starts):
        piece = wave[s : s + params.CLIP_SAMPLES]
        out[i, : len(piece)] = piece
    return starts, out


def load_waveform(path: str) -> tuple[np.ndarray, float]:
    """The whole file as 16 kHz mono float32, and its duration in seconds."""
    from disco.audio.decode import decode_audio, resample, to_mono

    audio, sr = decode_audio(path, name=path)
    mono = to_mono(audio)
    return resample(mono, sr), len(mono) / float(sr)


def predict_file(
    serve: Callable[[np.ndarray], np.ndarray],
    thresholds: Sequence[float],
    path: str,
    *,
    hop_s: float = DEFAULT_HOP_SECONDS,
    aggregate: str = "max",
) -> FilePrediction:
    """Score one recording window by window; a file that cannot be decoded is a prediction with
    ``error`` set (the other files still get theirs)."""
    if aggregate not in AGGREGATES:
        raise ConfigError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    # At least one sample: a hop that rounds to 0 samples would never reach the end of the file.
    if not (1 / params.SAMPLE_RATE <= hop_s <= params.CLIP_SECONDS):
        raise ConfigError(
            f"hop must be in [1/{params.SAMPLE_RATE}, {params.CLIP_SECONDS:g}] seconds, got {hop_s:g}"
        )
    result = FilePrediction(path, aggregate=aggregate, hop_s=hop_s)
    try:
        wave, duration = load_waveform(path)
    except AudioDecodeError as exc:
        result.error = exc.reason
        return result
    result.duration_s = round(duration, 2)
    starts, batch = windows_of(wave, hop_s)
    scores = np.concatenate(
        [np.asarray(serve(batch[i : i + WINDOW_BATCH])) for i in range(0, len(batch), WINDOW_BATCH)]
    )
    th = np.asarray(thresholds, float)
    for s, row in zip(starts, scores):
        start = s / params.SAMPLE_RATE
        end = min(start + params.CLIP_SECONDS, duration)
        result.windows.append(Window(round(start, 2), round(end, 2), row.tolist(), _present(row, th)))
    file_scores = scores.max(0) if aggregate == "max" else scores.mean(0)
    result.scores = file_scores.tolist()
    result.present = _present(file_scores, th)
    return result


def _present(scores: np.ndarray, thresholds: np.ndarray) -> list[str]:
    order = np.argsort(-scores, kind="stable")
    return [params.CLASSES[c] for c in order if scores[c] >= thresholds[c]]


# ---------------------------------------------------------------------------------------------
# Output: CSV (one row per window and one per file) or JSON Lines (one object per file).

CSV_COLUMNS = ("file", "start_s", "end_s", "present", *params.CLASSES)


def to_csv(predictions: Sequence[FilePrediction]) -> str:
    """One row per window (start_s, end_s) and one file-level row per file (start_s "file"),
    the classes' scores as columns; a file that failed is one row with the reason in present."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for p in predictions:
        if p.error is not None:
            w.writerow([p.file, "", "", f"error: {p.error}", *[""] * params.NUM_CLASSES])
            continue
        for win in p.windows:
            w.writerow([p.file, win.start_s, win.end_s, ";".join(win.present), *_rounded(win.scores)])
        w.writerow([p.file, p.aggregate, p.duration_s, ";".join(p.present), *_rounded(p.scores)])
    return buf.getvalue()


def to_jsonl(predictions: Sequence[FilePrediction]) -> str:
    return "".join(json.dumps(p.to_dict()) + "\n" for p in predictions)


def format_text(p: FilePrediction, thresholds: Sequence[float], *, show_all: bool = False) -> str:
    """What the terminal shows for one file: the file-level result, then one line per window."""
    if p.error is not None:
        return f"{p.file}: error: {p.error}"
    n = len(p.windows)
    lines = [
        f"{p.file} ({p.duration_s:g} s, {n} window{'s' if n != 1 else ''} of {params.CLIP_SECONDS:g} s "
        f"every {p.hop_s:g} s; file score = {p.aggregate} over windows)"
    ]
    shown = params.CLASSES if show_all else p.present
    if not shown:
        lines.append("  no instrument above its threshold")
    for name in shown:
        c = params.CLASSES.index(name)
        mark = "*" if name in p.present else " "
        lines.append(f"  {mark} {name:<18} {p.scores[c]:.3f}  (threshold {thresholds[c]:.2f})")
    if n > 1:
        lines.append("  windows:")
        for w in p.windows:
            found = ", ".join(f"{x} {w.scores[params.CLASSES.index(x)]:.2f}" for x in w.present)
            lines.append(f"    {_clock(w.start_s)}-{_clock(w.end_s)}  {found or '-'}")
    return "\n".join(lines)


def _clock(seconds: float) -> str:
    m, s = divmod(int(math.floor(seconds)), 60)
    return f"{m}:{s:02d}"
