"""Decode any audio file to float32, mix to mono, resample to 16 kHz, fit to the clip length.

soundfile (libsndfile) reads ogg/flac/wav directly from memory; anything it cannot read (mp3 on
older libsndfile, m4a) falls back to audioread through librosa. Resampling uses soxr's "HQ" recipe:
a linear-phase filter with ~ -120 dB stop band and 95 % pass band, which VGGish's own reference
code (resampy kaiser_best) matches in quality while being about 30x faster, and which releases the
GIL, so a thread pool scales it across cores.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile

import numpy as np

from disco import params
from disco.errors import AudioDecodeError
from disco.inputs import ogg_crc

log = logging.getLogger(__name__)

RESAMPLER_QUALITY = "HQ"  # soxr recipe; see module docstring


def decode_audio(data: bytes | str | os.PathLike[str], *, name: str | None = None) -> tuple[np.ndarray, int]:
    """Return (float32 [samples, channels], sample rate). Raises AudioDecodeError naming the file."""
    import soundfile as sf

    label = name or (str(data) if not isinstance(data, bytes) else "<bytes>")
    if not isinstance(data, bytes):
        from disco.errors import DatasetError
        from disco.inputs import require_regular_file

        try:
            # Opening a FIFO would block until something writes to it.
            require_regular_file(data)
        except DatasetError as exc:
            raise AudioDecodeError(label, exc.reason) from None
        try:
            with open(data, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise AudioDecodeError(label, f"cannot read: {exc.strerror or exc}") from exc
    if len(data) == 0:
        raise AudioDecodeError(label, "empty file (0 bytes)")
    problem = truncation(data)
    if problem:
        raise AudioDecodeError(label, problem)
    try:
        audio, sr = _read_bytes(data)
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_exc:
        audio, sr = _decode_fallback(data, label, sf_exc)
    if audio.size == 0 or audio.shape[0] == 0:
        raise AudioDecodeError(label, "no audio samples (zero-length stream)")
    if not np.all(np.isfinite(audio)):
        raise AudioDecodeError(label, "decoded audio holds NaN or infinite samples")
    check_rate_and_length(audio.shape[0], int(sr), label=label)
    return audio, int(sr)


def check_rate_and_length(samples: int, sr: int, *, label: str) -> None:
    """Raise AudioDecodeError for a sample rate outside the sane range or a clip shorter than
    ``params.MIN_CLIP_SECONDS``: either would be resampled and padded into a full-length record
    of near-silence that keeps the clip's labels."""
    if not params.MIN_SOURCE_SAMPLE_RATE <= sr <= params.MAX_SOURCE_SAMPLE_RATE:
        raise AudioDecodeError(
            label,
            f"sample rate {sr} Hz outside {params.MIN_SOURCE_SAMPLE_RATE}-{params.MAX_SOURCE_SAMPLE_RATE} Hz",
        )
    if samples < params.MIN_CLIP_SECONDS * sr:
        raise AudioDecodeError(
            label, f"too short: {samples / sr:.3f} s ({samples} samples), minimum {params.MIN_CLIP_SECONDS} s"
        )


def truncation(data: bytes) -> str | None:
    """Why an Ogg, WAV, AIFF or MP3 file is cut short or (Ogg) has a page failing its CRC, or None.
    libsndfile decodes such a file as a shorter clip without any error, so it would become a
    padded record of silence that keeps its labels; formats whose decoders notice (FLAC: lost
    sync) need no check here."""
    if data[:4] == b"OggS":
        return _ogg_truncation(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return _wav_truncation(data)
    if data[:4] == b"FORM" and data[8:12] in (b"AIFF", b"AIFC"):
        return _aiff_truncation(data)
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return _mp3_truncation(data)
    return None


def _aiff_truncation(data: bytes) -> str | None:
    # Big-endian chunks: FORM <size> AIFF, then e.g. COMM and SSND (the samples).
    n = len(data)
    form = int.from_bytes(data[4:8], "big")
    if 8 + form > n:
        return f"truncated: AIFF FORM chunk declares {form} bytes, file holds {n - 8}"
    pos = 12
    while pos + 8 <= n:
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "big")
        if pos + 8 + size > n:
            return f"truncated: AIFF {chunk.decode('latin-1')} chunk declares {size} bytes, file holds {n - pos - 8}"
        pos += 8 + size + (size & 1)
    return None


# MPEG audio frame sizes: kbit/s by (version is MPEG-1, layer) and sample rates by version.
_MP3_KBPS = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame_size(h: bytes) -> int | None:
    """Bytes of the MPEG audio frame whose 4-byte header is ``h``; None if it is no such header
    (or a free-format one, whose size no header states)."""
    if h[0] != 0xFF or h[1] & 0xE0 != 0xE0:
        return None
    version, layer = (h[1] >> 3) & 3, 4 - ((h[1] >> 1) & 3)
    rate_index, bitrate_index = (h[2] >> 2) & 3, h[2] >> 4
    if version == 1 or layer == 4 or rate_index == 3 or bitrate_index in (0, 15):
        return None
    mpeg1 = version == 3
    bitrate = _MP3_KBPS[(mpeg1, layer)][bitrate_index] * 1000
    rate, padding = _MP3_RATES[version][rate_index], (h[2] >> 1) & 1
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    return (144 if mpeg1 or layer == 2 else 72) * bitrate // rate + padding


def _mp3_truncation(data: bytes) -> str | None:
    # Walk the frames from the first: mpg123 drops a last frame cut short without a word. What
    # follows the last whole frame may be a tag (ID3v1, APE, Lyrics): only a frame header whose
    # frame runs past the end of the file counts as truncation.
    n, pos = len(data), 0
    if data[:3] == b"ID3" and n >= 10:  # ID3v2: a 10-byte header and a syncsafe size
        size = int.from_bytes(bytes(b & 0x7F for b in data[6:10]), "big")
        pos = 10 + size + (10 if data[5] & 0x10 else 0)
    frames = 0
    while pos + 4 <= n:
        size = _mp3_frame_size(data[pos : pos + 4])
        if size is None:
            break
        if pos + size > n:
            return f"truncated: MP3 frame {frames} at byte {pos} needs {size} bytes, file has {n - pos}"
        pos += size
        frames += 1
    return None


def _ogg_truncation(data: bytes) -> str | None:
    # Walk the pages: each is a 27-byte header, a lacing table and the segments it sizes.
    pos, last_flags, n, pages = 0, 0, len(data), []
    while pos < n:
        if data[pos : pos + 4] != b"OggS":
            return f"Ogg page expected at byte {pos} of {n}: file is damaged or truncated"
        if pos + 27 > n:
            return f"truncated: Ogg page header cut off at byte {n}"
        segments = data[pos + 26]
        if pos + 27 + segments > n:
            return f"truncated: Ogg page header cut off at byte {n}"
        size = 27 + segments + sum(data[pos + 27 : pos + 27 + segments])
        if pos + size > n:
            return f"truncated: last Ogg page needs {pos + size} bytes, file has {n}"
        last_flags = data[pos + 5]
        pages.append((pos, size))
        pos += size
    if not last_flags & 0x04:
        return "truncated: Ogg stream ends without its end-of-stream page"
    # libvorbis drops a page whose CRC does not match without a word, so a corrupt clip would
    # decode as a shorter one and be padded into a record that keeps its labels.
    for pos, size in pages:
        stored = int.from_bytes(data[pos + 22 : pos + 26], "little")
        if ogg_crc(data[pos : pos + 22] + bytes(4) + data[pos + 26 : pos + size]) != stored:
            return f"Ogg page at byte {pos}: CRC mismatch (corrupt file)"
    return None


def _wav_truncation(data: bytes) -> str | None:
    pos, n = 12, len(data)
    while pos + 8 <= n:
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if chunk == b"data":
            # 0 and 0xFFFFFFFF mark a stream written before its length was known.
            if size not in (0, 0xFFFFFFFF) and pos + 8 + size > n:
                return f"truncated: WAV data chunk declares {size} bytes, file holds {n - pos - 8}"
            return None
        pos += 8 + size + (size & 1)
    return None


def _read_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """libsndfile on in-memory bytes. A file-like object makes libsndfile call back into Python,
    taking the GIL, for every read, so decode threads contend for it; an anonymous in-memory file
    (memfd) lets libsndfile read by descriptor with the GIL released. `make bench-resample` prints
    both side by side."""
    import soundfile as sf

    if not hasattr(os, "memfd_create"):  # not Linux: correct, only slower
        return sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    fd = os.memfd_create("disco-clip", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
        return sf.read(fd, dtype="float32", always_2d=True, closefd=False)
    finally:
        os.close(fd)


def _decode_fallback(data, label: str, first_error: Exception) -> tuple[np.ndarray, int]:
    import librosa

    tmp = None
    try:
        if isinstance(data, bytes):
            suffix = os.path.splitext(label)[1] or ".bin"
            fd, tmp = tempfile.mkstemp(suffix=suffix)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            path = tmp
        else:
            path = str(data)
        audio, sr = librosa.load(path, sr=None, mono=False)
    except Exception as exc:  # audioread raises several unrelated types
        first = getattr(first_error, "error_string", None) or str(first_error)
        detail = f"{type(exc).__name__}{': ' + str(exc) if str(exc) else ''}"
        raise AudioDecodeError(label, f"cannot decode: {first} (fallback decoder: {detail})") from exc
    finally:
        if tmp:
            os.unlink(tmp)
    audio = np.atleast_2d(audio).T.astype(np.float32)
    return audio, int(sr)


def to_mono(audio: np.ndarray) -> np.ndarray:
    if audio.ndim == 1:
        return audio.astype(np.float32)
    # Column adds rather than mean(axis=1): a reduction over a 2-wide row axis costs ~7 ms per
    # 10 s stereo clip, more than resampling it; this is ~0.2 ms.
    mono = audio[:, 0].astype(np.float32)
    for c in range(1, audio.shape[1]):
        mono += audio[:, c]
    if audio.shape[1] > 1:
        mono *= np.float32(1.0 / audio.shape[1])
    return mono


def resample(waveform: np.ndarray, orig_sr: int, target_sr: int = params.SAMPLE_RATE) -> np.ndarray:
    """Mono float32 resampling with soxr HQ; identity when the rates match."""
    import soxr

    if orig_sr <= 0:
        raise AudioDecodeError("<waveform>", f"invalid sample rate {orig_sr}")
    waveform = np.ascontiguousarray(waveform, dtype=np.float32)
    if orig_sr == target_sr:
        return waveform
    return soxr.resample(waveform, orig_sr, target_sr, quality=RESAMPLER_QUALITY).astype(np.float32)


def fit_length(waveform: np.ndarray, length: int = params.CLIP_SAMPLES) -> np.ndarray:
    """Zero-pad or trim to exactly ``length`` samples."""
    if len(waveform) >= length:
        return waveform[:length]
    return np.pad(waveform, (0, length - len(waveform)))


def to_clip(audio: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """(float32 [CLIP_SAMPLES] mono at SAMPLE_RATE, original duration in seconds)."""
    mono = to_mono(audio)
    duration = len(mono) / float(sr)
    return fit_length(resample(mono, sr)), duration


def load_clip(data: bytes | str | os.PathLike[str], *, name: str | None = None) -> tuple[np.ndarray, float]:
    """decode_audio + to_clip: what resample and predict do per file."""
    audio, sr = decode_audio(data, name=name)
    return to_clip(audio, sr)
