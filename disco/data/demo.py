"""An offline demo dataset in OpenMIC-2018's exact layout, rendered from real sampled instruments.

The General MIDI SoundFont that ships inside ``pretty_midi`` (``TimGM6mb.sf2``) is played with
``tinysoundfont``: each clip has 1 to 3 instruments playing generated phrases, is written as a 10 s,
44.1 kHz stereo Ogg Vorbis file under ``audio/<key[:3]>/<key>.ogg``, and is labelled *partially*
like OpenMIC (its instruments as positives, a few absent classes as negatives, the rest unobserved).
Everything is derived from (seed, clip index), so the same seed gives the same dataset.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from disco import params
from disco.data.openmic import audio_relpath
from disco.errors import ConfigError
from disco.inputs import ogg_crc
from disco.runinfo import write_run_info

log = logging.getLogger(__name__)

DEMO_TEST_FRACTION = 0.25
DEMO_SUMMARY_FILE = "demo-summary.json"  # marks a folder as a demo dataset (--overwrite may remove it)


@dataclass(frozen=True)
class Voice:
    program: int  # General MIDI program, 0-based
    low: int  # MIDI note range
    high: int
    style: str  # "melody" | "chords" | "tremolo" | "bass" | "drums" | "cymbals"
    drums: bool = False
    note: str = ""


# One General MIDI voice per OpenMIC class. GM has no mandolin or ukulele: they are played on
# nylon-string guitar in their own registers and styles (tremolo, high strummed chords), which a
# classifier can still tell apart from "guitar" (steel-string, lower chords), but the sound is an
# approximation. Drums and cymbals come from the percussion channel's kit, on disjoint notes.
VOICES: dict[str, Voice] = {
    "accordion": Voice(21, 53, 77, "chords"),
    "banjo": Voice(105, 55, 79, "melody"),
    "bass": Voice(33, 28, 50, "bass"),
    "cello": Voice(42, 36, 64, "melody"),
    "clarinet": Voice(71, 50, 82, "melody"),
    "cymbals": Voice(0, 0, 0, "cymbals", drums=True, note="crash, ride, splash, china (GM kit)"),
    "drums": Voice(0, 0, 0, "drums", drums=True, note="kick, snare, toms, hi-hat (GM kit)"),
    "flute": Voice(73, 60, 93, "melody"),
    "guitar": Voice(25, 40, 64, "chords", note="steel-string guitar"),
    "mallet_percussion": Voice(12, 60, 88, "melody", note="marimba"),
    "mandolin": Voice(24, 67, 88, "tremolo", note="approximation: nylon guitar, high tremolo"),
    "organ": Voice(19, 48, 76, "chords", note="church organ"),
    "piano": Voice(0, 36, 96, "chords"),
    "saxophone": Voice(65, 49, 77, "melody", note="alto sax"),
    "synthesizer": Voice(81, 48, 84, "melody", note="sawtooth lead"),
    "trombone": Voice(57, 40, 70, "melody"),
    "trumpet": Voice(56, 55, 82, "melody"),
    "ukulele": Voice(24, 60, 79, "chords", note="approximation: nylon guitar, high strummed chords"),
    "violin": Voice(40, 55, 96, "melody"),
    "voice": Voice(52, 48, 79, "melody", note="choir aahs"),
}
# The release's metadata header, in its order; the demo fills what it can and leaves the rest empty.
METADATA_COLUMNS = (
    "track_id,album_id,album_title,album_url,artist_id,artist_name,artist_url,artist_website,"
    "license_image_file,license_image_file_large,license_parent_id,license_title,license_url,tags,"
    "track_bit_rate,track_comments,track_composer,track_copyright_c,track_copyright_p,track_date_created,"
    "track_date_recorded,track_disc_number,track_duration,track_explicit,track_explicit_notes,"
    "track_favorites,track_file,track_genres,track_image_file,track_information,track_instrumental,"
    "track_interest,track_language_code,track_listens,track_lyricist,track_number,track_publisher,"
    "track_title,track_url,sample_key,start_time"
).split(",")
CYMBAL_NOTES = (49, 51, 52, 55, 57, 59)
DRUM_NOTES = (36, 38, 41, 42, 43, 45, 46, 48)
DRUM_CHANNEL = 9


def soundfont_path() -> str:
    from disco.extras import require

    pretty_midi = require("pretty_midi", feature="disco demo-data (its SoundFont)")

    return str(Path(pretty_midi.__file__).parent / "TimGM6mb.sf2")


@dataclass(frozen=True)
class ClipSpec:
    index: int
    key: str
    artist_id: str
    instruments: tuple[str, ...]
    negatives: tuple[str, ...]
    seed: int


def _events(voice: Voice, rng: np.random.Generator, tempo: float) -> list[tuple[float, float, int, int]]:
    """(onset s, duration s, MIDI note, velocity) for one instrument's phrase over the clip."""
    beat = 60.0 / tempo
    out = []
    t = float(rng.uniform(0, 0.5))
    if voice.style in ("drums", "cymbals"):
        pool = DRUM_NOTES if voice.style == "drums" else CYMBAL_NOTES
        step = beat / (2 if voice.style == "drums" else 1)
        while t < params.CLIP_SECONDS:
            for note in rng.choice(pool, size=int(rng.integers(1, 3)), replace=False):
                out.append((t, step, int(note), int(rng.integers(70, 120))))
            t += step * float(rng.choice([1, 1, 2]))
        return out
    pitch = int(rng.integers(voice.low, voice.high + 1))
    while t < params.CLIP_SECONDS:
        if voice.style == "chords":
            dur = beat * float(rng.choice([1, 2, 2, 4]))
            root = int(rng.integers(voice.low, max(voice.low + 1, voice.high - 7)))
            chord = (0, 4, 7) if rng.random() < 0.6 else (0, 3, 7)
            for i, interval in enumerate(chord):
                out.append((t + 0.015 * i, dur * 0.95, root + interval, int(rng.integers(60, 105))))
        elif voice.style == "tremolo":
            dur = beat * float(rng.choice([1, 2]))
            pitch = int(np.clip(pitch + rng.integers(-4, 5), voice.low, voice.high))
            for k in range(int(dur / 0.08)):
                out.append((t + 0.08 * k, 0.075, pitch, int(rng.integers(55, 95))))
        else:
            dur = beat * float(rng.choice([0.5, 1, 1, 2]))
            step = (
                int(rng.integers(-5, 6))
                if voice.style == "melody"
                else int(rng.choice([-12, -5, 0, 5, 7, 12]))
            )
            pitch = int(np.clip(pitch + step, voice.low, voice.high))
            out.append((t, dur * 0.9, pitch, int(rng.integers(60, 115))))
        t += dur
    return out


_SYNTH_CACHE: dict[str, object] = {}


def render_clip(spec: ClipSpec, sample_rate: int = params.RELEASE_SAMPLE_RATE) -> np.ndarray:
    """Render a clip to float32 stereo [samples, 2]."""
    from disco.extras import require

    tinysoundfont = require("tinysoundfont", feature="disco demo-data (its synthesizer)")

    rng = np.random.default_rng(spec.seed)
    synth = tinysoundfont.Synth(samplerate=sample_rate, gain=-3.0)
    # The SoundFont is loaded per synth; the bytes are read once per process.
    sf_bytes = _SYNTH_CACHE.get("bytes")
    if sf_bytes is None:
        sf_bytes = Path(soundfont_path()).read_bytes()
        _SYNTH_CACHE["bytes"] = sf_bytes
    sfid = synth.sfload(sf_bytes)
    tempo = float(rng.uniform(80, 150))
    timeline: list[tuple[float, int, int, int, int]] = []  # (time, on=1/off=0, chan, note, vel)
    for chan, name in enumerate(spec.instruments):
        voice = VOICES[name]
        ch = DRUM_CHANNEL if voice.drums else chan
        if voice.drums:
            synth.program_select(ch, sfid, 128, 0, True)
        else:
            synth.program_select(ch, sfid, 0, voice.program)
        for onset, dur, note, vel in _events(voice, rng, tempo):
            timeline.append((onset, 1, ch, note, vel))
            timeline.append((onset + dur, 0, ch, note, 0))
    timeline.sort(key=lambda e: (e[0], e[1]))
    total = int(params.CLIP_SECONDS * sample_rate)
    out = np.zeros((total, 2), np.float32)
    pos = 0
    for when, on, ch, note, vel in timeline:
        target = min(total, int(round(when * sample_rate)))
        if target > pos:
            out[pos:target] = np.frombuffer(synth.generate(target - pos), np.float32).reshape(-1, 2)
            pos = target
        if pos >= total:
            break
        if on:
            synth.noteon(ch, note, vel)
        else:
            synth.noteoff(ch, note)
    if pos < total:
        out[pos:] = np.frombuffer(synth.generate(total - pos), np.float32).reshape(-1, 2)
    peak = float(np.max(np.abs(out))) or 1.0
    # A fixed peak per clip keeps the loudness clue out of the labels.
    return (out * (0.8 / peak)).astype(np.float32)


def fix_ogg_serial(data: bytes, serial: int) -> bytes:
    """Give every Ogg page a fixed stream serial number and recompute its CRC.

    libsndfile picks a random serial number per file, the only thing that made two renders of the
    same clip differ byte-wise; fixing it makes the files (and checksums-audio.csv) reproducible.
    """
    buf = bytearray(data)
    pos = 0
    while pos + 27 <= len(buf):
        if buf[pos : pos + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {pos}")
        nseg = buf[pos + 26]
        size = 27 + nseg + sum(buf[pos + 27 : pos + 27 + nseg])
        buf[pos + 14 : pos + 18] = serial.to_bytes(4, "little")
        buf[pos + 22 : pos + 26] = b"\0\0\0\0"
        buf[pos + 22 : pos + 26] = ogg_crc(bytes(buf[pos : pos + size])).to_bytes(4, "little")
        pos += size
    return bytes(buf)


def _write_clip(args: tuple[ClipSpec, str]) -> tuple[str, str]:
    import soundfile as sf

    spec, root = args
    path = Path(root) / audio_relpath(spec.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = render_clip(spec)
    sf.write(str(path), audio, params.RELEASE_SAMPLE_RATE, format="OGG", subtype="VORBIS")
    data = fix_ogg_serial(path.read_bytes(), spec.seed & 0x7FFFFFFF)
    path.write_bytes(data)
    return spec.key, hashlib.md5(data).hexdigest()


def plan_clips(n: int, *, seed: int) -> list[ClipSpec]:
    """Which instruments each clip holds, balanced over classes, plus its observed negatives."""
    if n < 4:
        raise ConfigError(f"--clips must be at least 4 (got {n})")
    rng = np.random.default_rng(seed)
    classes = list(params.CLASSES)
    bag: list[str] = []
    n_artists = max(4, n // 6)
    specs = []
    used_keys = set()
    for i in range(n):
        k = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
        chosen: list[str] = []
        while len(chosen) < k:
            if not bag:
                bag = list(rng.permutation(classes))
            c = bag.pop()
            if c not in chosen and not (VOICES[c].drums and any(VOICES[x].drums for x in chosen)):
                chosen.append(c)
        absent = [c for c in classes if c not in chosen]
        negatives = tuple(sorted(rng.choice(absent, size=int(rng.integers(1, 4)), replace=False)))
        while True:
            key = f"{int(rng.integers(0, 160000)):06d}_{int(rng.integers(0, 100)) * 3840}"
            if key not in used_keys:
                used_keys.add(key)
                break
        specs.append(
            ClipSpec(
                i,
                key,
                str(int(rng.integers(0, n_artists)) + 1),
                tuple(sorted(chosen)),
                negatives,
                int(rng.integers(0, 2**31 - 1)),
            )
        )
    return specs


def _corrupt(path: Path, kind: str, rng: np.random.Generator) -> None:
    data = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[: max(64, len(data) // 50)])
    elif kind == "garbage":
        path.write_bytes(rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes())
    else:
        path.write_bytes(b"")


CORRUPTION_KINDS = ("truncated", "garbage", "empty")


def _prepare_root(root: Path, *, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root}: output path exists and is not a directory")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"{root}: output directory is not empty; choose a new one, or --overwrite an earlier demo dataset"
            )
        if not (root / DEMO_SUMMARY_FILE).is_file():
            raise ConfigError(
                f"{root}: not removed by --overwrite: it holds no {DEMO_SUMMARY_FILE} (not a demo dataset)"
            )
        log.info("removing the earlier demo dataset in %s", root)
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)


def generate_demo_dataset(
    out_dir: str | os.PathLike[str],
    *,
    clips: int = params.DEMO_CLIPS,
    seed: int = params.DEFAULT_SEED,
    corrupt: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Write the dataset; returns a summary (clips, splits, corrupt keys, seconds). An existing
    non-empty ``out_dir`` is refused (old clips would mix into the new dataset) unless
    ``overwrite`` and it holds an earlier demo dataset, which is then removed first."""
    start = time.perf_counter()
    root = Path(out_dir)
    specs = plan_clips(clips, seed=seed)
    if corrupt < 0 or corrupt > clips // 2:
        raise ConfigError(f"--corrupt must be between 0 and {clips // 2}")
    _prepare_root(root, overwrite=overwrite)
    workers = workers or os.cpu_count() or 1
    md5: dict[str, str] = {}
    jobs = [(s, str(root)) for s in specs]
    log.info("rendering %d clips with %d workers", len(specs), workers)
    if workers == 1:
        results = map(_write_clip, jobs)
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        results = pool.map(_write_clip, jobs, chunksize=4)
    for done, (key, digest) in enumerate(results, start=1):
        md5[key] = digest
        if done % 50 == 0 or done == len(specs):
            log.info("rendered %d/%d clips", done, len(specs))
    if workers != 1:
        pool.shutdown()

    # Split by artist, as the release's split01 does.
    rng = np.random.default_rng(seed + 1)
    artists = sorted({s.artist_id for s in specs}, key=int)
    test_artists = set(rng.permutation(artists)[: max(1, round(len(artists) * DEMO_TEST_FRACTION))])
    test = sorted(s.key for s in specs if s.artist_id in test_artists)
    train = sorted(s.key for s in specs if s.artist_id not in test_artists)

    corrupted = []
    train_specs = [s for s in specs if s.key in set(train)]
    for j, spec in enumerate(train_specs[:corrupt]):
        kind = CORRUPTION_KINDS[j % len(CORRUPTION_KINDS)]
        path = root / audio_relpath(spec.key)
        # md5[key] keeps the intact file's checksum: the lists describe the release as it should
        # be, so `disco verify` names the damaged files.
        _corrupt(path, kind, rng)
        corrupted.append({"key": spec.key, "kind": kind})

    with open(root / params.AGGREGATED_LABELS_FILE, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample_key", "instrument", "relevance", "num_responses"])
        for spec in sorted(specs, key=lambda s: s.key):
            r = np.random.default_rng(spec.seed + 7)
            rows = [(c, float(r.uniform(0.6, 1.0))) for c in spec.instruments]
            rows += [(c, float(r.uniform(0.0, 0.3))) for c in spec.negatives]
            for name, relevance in sorted(rows):
                w.writerow([spec.key, name, repr(round(relevance, 5)), int(r.integers(1, 6))])
    (root / params.CLASS_MAP_FILE).write_text(json.dumps(params.CLASS_INDEX))
    (root / params.PARTITIONS_DIR).mkdir(exist_ok=True)
    for fname, keys in ((params.PARTITION_TRAIN_FILE, train), (params.PARTITION_TEST_FILE, test)):
        (root / params.PARTITIONS_DIR / fname).write_text("".join(k + "\n" for k in keys))
    with open(root / params.METADATA_FILE, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=METADATA_COLUMNS, restval="")
        w.writeheader()
        for spec in sorted(specs, key=lambda s: s.key):
            track, start_ms = spec.key.split("_")
            w.writerow(
                {
                    "track_id": int(track),
                    "artist_id": spec.artist_id,
                    "artist_name": f"Demo Artist {spec.artist_id}",
                    "tags": "[]",
                    "track_genres": "[]",
                    "track_title": "+".join(spec.instruments),
                    "track_duration": "00:10",
                    "sample_key": spec.key,
                    "start_time": int(start_ms) / 1000,
                }
            )
    with open(root / params.AUDIO_MD5_FILE, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["", "md5"])
        for key in sorted(md5):
            w.writerow([key, md5[key]])
    summary = {
        "clips": len(specs),
        "splits": {params.SPLIT_TRAIN: len(train), params.SPLIT_TEST: len(test)},
        "artists": len(artists),
        "corrupt": corrupted,
        "seed": seed,
        "soundfont": os.path.basename(soundfont_path()),
        "seconds": round(time.perf_counter() - start, 2),
    }
    (root / DEMO_SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    (root / params.SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    write_run_info(
        root,
        step="demo-data",
        seed=seed,
        parameters={"clips": clips, "seed": seed, "corrupt": corrupt, "workers": workers},
    )
    log.info("demo dataset: %d clips in %.1f s → %s", len(specs), summary["seconds"], root)
    return summary


def ensure_demo_dataset(out_dir: str | os.PathLike[str], *, clips: int, seed: int, corrupt: int = 0) -> Path:
    """A demo dataset of ``clips`` clips made with ``seed`` at ``out_dir``: the one there when its
    summary says so (a benchmark's rerun), else a new one in its place (an earlier demo dataset of
    other settings is replaced). A folder holding anything else, an interrupted generation
    included, is a ConfigError now, not after the work before it."""
    root = Path(out_dir)
    summary_path = root / DEMO_SUMMARY_FILE
    if summary_path.is_file():
        made = json.loads(summary_path.read_text())
        if (made.get("clips"), made.get("seed"), len(made.get("corrupt") or [])) == (clips, seed, corrupt):
            return root
        generate_demo_dataset(root, clips=clips, seed=seed, corrupt=corrupt, overwrite=True)
        return root
    if root.exists() and any(root.iterdir()):
        raise ConfigError(
            f"{root}: not empty and holds no {DEMO_SUMMARY_FILE} (an interrupted generation?); remove it"
        )
    generate_demo_dataset(root, clips=clips, seed=seed, corrupt=corrupt)
    return root
