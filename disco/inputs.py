"""Checks of what a user hands a step, done before the work: a file that is not a regular file (a
FIFO would block a reader forever), an output path that is an existing file, features with the
wrong shape or non-finite values, a thresholds file for another class list. Each failure is a
typed error naming the path and the reason, which the CLI prints as one line (exit 2)."""

from __future__ import annotations

import json
import math
import os
import stat
import zlib

import numpy as np

from disco import params
from disco.errors import ConfigError, DatasetError


def require_regular_file(path: str | os.PathLike[str]) -> str:
    """``path`` if it is a readable regular file (or a link to one). Opening a FIFO for reading
    blocks until a writer appears, so predict on one would hang; a directory or device is no clip."""
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DatasetError(path, "no such file") from None
    except OSError as exc:
        raise DatasetError(path, f"cannot stat: {exc.strerror or exc}") from None
    if stat.S_ISFIFO(mode):
        raise DatasetError(path, "is a FIFO (named pipe), not a regular file")
    if stat.S_ISDIR(mode):
        raise DatasetError(path, "is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise DatasetError(path, "is not a regular file")
    return path


def require_output_dir(path: str | os.PathLike[str]) -> str:
    """``path`` unless it names something that cannot become the output directory: an existing
    file, or a folder below a file. Remote (gs://) outputs are checked by disco.remote."""
    path = os.fspath(path)
    if "://" in path:
        return path
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{path}: output path exists and is not a directory")
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise ConfigError(f"{path}: cannot create the output directory: {parent} is a file")
    return path


def check_features(
    x: np.ndarray,
    *,
    path: str,
    frames: int | None = None,
    dim: int | None = None,
    keys=None,
) -> None:
    """Raise DatasetError unless ``x`` is [N, frames, dim] (frames/dim when given, else any
    non-zero) and finite. ``keys`` name the offending example; without them its index does."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise DatasetError(path, f"features must be [clips, frames, dim], got shape {x.shape}")
    _, got_frames, got_dim = x.shape
    if got_frames == 0 or got_dim == 0:
        raise DatasetError(
            path, f"features have {got_frames} frames x {got_dim} dims; need at least one of each"
        )
    if frames is not None and got_frames != frames:
        raise DatasetError(path, f"features have {got_frames} frames per clip, expected {frames}")
    if dim is not None and got_dim != dim:
        raise DatasetError(path, f"features have {got_dim} dims per frame, expected {dim}")
    if np.issubdtype(x.dtype, np.floating):
        finite = np.isfinite(x).all(axis=(1, 2))
        if not finite.all():
            i = int(np.flatnonzero(~finite)[0])
            which = f"clip {str(keys[i])!r}" if keys is not None else f"clip index {i}"
            raise DatasetError(
                path,
                f"{which} holds non-finite feature values (NaN or Inf); {int((~finite).sum())} clips affected",
            )


def read_thresholds(path: str | os.PathLike[str]) -> list[float]:
    """The per-class decision thresholds of a train or export output: one finite number in [0, 1]
    per class of ``params.CLASSES``, in that order (a file for another class list would pair
    thresholds with the wrong instruments)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise DatasetError(path, "thresholds file is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(path, f"invalid JSON: {exc}") from None
    values = doc.get("thresholds") if isinstance(doc, dict) else None
    if not isinstance(values, list):
        raise DatasetError(path, 'no "thresholds" list')
    if len(values) != params.NUM_CLASSES:
        raise DatasetError(path, f"{len(values)} thresholds, expected one per class ({params.NUM_CLASSES})")
    classes = doc.get("classes")
    if classes is not None and list(classes) != list(params.CLASSES):
        raise DatasetError(path, "classes differ from OpenMIC-2018's class list (order or names)")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 1:
            raise DatasetError(path, f"threshold {i} ({params.CLASSES[i]}) is {v!r}, not a number in [0, 1]")
        out.append(float(v))
    return out


_BIT_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, MSB first, init 0, no final xor), via zlib for speed.

    zlib's CRC-32 is the bit-reflected form of the same polynomial with init and final xor 0xFFFFFFFF;
    reflecting each input byte, cancelling the affine init/xor term with the CRC of as many zero bytes,
    and reflecting the 32-bit result gives Ogg's value at C speed (a Python loop doubled the run time).
    """
    reflected = zlib.crc32(data.translate(_BIT_REVERSE)) ^ zlib.crc32(bytes(len(data)))
    return int(f"{reflected:032b}"[::-1], 2)
