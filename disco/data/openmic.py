"""OpenMIC-2018 as the release ships it: labels, partitions, metadata, audio and VGGish features.

``open_dataset(uri)`` accepts an extracted ``openmic-2018/`` directory, the release tarball (read
in place) or a ``gs://`` prefix. Labels are built from ``openmic-2018-aggregated-labels.csv``
as the release's ``openmic-2018.npz`` holds them: ``Y_true[key, class]`` is the aggregated
relevance of each observed (key, class) pair and ``Y_mask`` marks which pairs were observed; all
other entries are unknown, not negative (0 here; the npz holds 0.5 there, which no mask lets count).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import pickle
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

from disco import params
from disco.data.storage import Source, TarSource, open_source
from disco.errors import DatasetError
from disco.inputs import check_features

log = logging.getLogger(__name__)

_LABEL_COLUMNS = ("sample_key", "instrument", "relevance")


class Labels(NamedTuple):
    keys: np.ndarray  # str [N], sorted
    y_true: np.ndarray  # float32 [N, NUM_CLASSES]
    y_mask: np.ndarray  # bool [N, NUM_CLASSES]

    def index(self) -> dict[str, int]:
        return {str(k): i for i, k in enumerate(self.keys)}


class NpzFeatures(NamedTuple):
    X: np.ndarray  # uint8 [N, 10, 128] (the release's 8-bit levels), or float32 already dequantised
    y_true: np.ndarray
    y_mask: np.ndarray
    sample_key: np.ndarray


@dataclass(frozen=True)
class Clip:
    key: str
    split: str
    y_true: np.ndarray
    y_mask: np.ndarray
    artist_id: str | None = None


@dataclass(frozen=True)
class AudioBlob:
    key: str
    location: str
    data: bytes | None
    error: str | None = None


def audio_relpath(key: str) -> str:
    return f"{params.AUDIO_DIR}/{key[: params.KEY_PREFIX_LENGTH]}/{key}{params.AUDIO_EXTENSION}"


def vggish_relpath(key: str) -> str:
    return f"{params.VGGISH_DIR}/{key[: params.KEY_PREFIX_LENGTH]}/{key}.json"


def _check_key(key: str, *, path: str, line: int) -> str:
    """A sample key becomes part of a file path (audio/<key[:3]>/<key>.ogg), so it must be a plain
    name: anything with a separator or a leading dot could reach outside the dataset root."""
    key = key.strip()
    if not key:
        raise DatasetError(path, "empty sample key", line=line)
    if key.startswith(("/", "\\", ".")) or ".." in key:
        raise DatasetError(path, f"sample key {key!r} would escape the dataset root", line=line)
    if "/" in key or "\\" in key or ":" in key:
        raise DatasetError(path, f"sample key {key!r} is not a plain name", line=line)
    return key


_NPZ_MEMBERS = ("X", "Y_true", "Y_mask", "sample_key")


class _KeysUnpickler(pickle.Unpickler):
    """Unpickles a NumPy object array of strings and nothing else: the release's builder saved
    ``sample_key`` as ``np.unique`` of a pandas column (an object array, which NumPy stores
    pickled), and a pickle may otherwise name any callable."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        # numpy.str_ elements (a column of NumPy strings made into an object array)
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"sample_key holds a pickled {module}.{name}, not strings")
        return super().find_class(module, name)


def _pickled_keys(file) -> np.ndarray:
    """``sample_key`` saved as an object array of str (as the release's builder did), as str."""
    if hasattr(file, "seek"):
        file.seek(0)
    with zipfile.ZipFile(file) as zf, zf.open("sample_key.npy") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, _fortran, dtype = read_header(fh)
        if not dtype.hasobject:
            raise ValueError(f"sample_key ({dtype}) cannot be read")
        keys = _KeysUnpickler(fh).load()
    if (
        not isinstance(keys, np.ndarray)
        or keys.shape != shape
        or not all(isinstance(k, str) for k in keys.flat)
    ):
        raise ValueError("sample_key is an object array that does not hold only strings")
    return keys.astype(str)


def _quantised(x: np.ndarray, path: str) -> np.ndarray:
    """The release's X as uint8: its builder saved the 0..255 levels as int64, others as uint8.
    Floats are refused unless already dequantised: 0..255 passed on as floats would train on a
    scale no other source (the vggish JSON files, VGGish+PCA) has, with no error."""
    if np.issubdtype(x.dtype, np.integer):
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DatasetError(
                path, f"X holds integers outside 0..255 ({x.min()}..{x.max()}): not VGGish's 8-bit levels"
            )
        return x.astype(np.uint8)
    if np.issubdtype(x.dtype, np.floating):
        lo, hi = params.QUANTIZE_MIN_VAL, params.QUANTIZE_MAX_VAL
        if x.size and np.isfinite(x).all() and (x.min() < lo or x.max() > hi):
            raise DatasetError(
                path,
                f"X holds floats in {x.min():g}..{x.max():g}, outside the dequantised range [{lo:g}, {hi:g}]: "
                "save VGGish's 8-bit levels as integers (0..255), or dequantised values",
            )
        return x
    raise DatasetError(path, f"X is {x.dtype}, not numbers")


def dequantize(X: np.ndarray) -> np.ndarray:
    """Undo VGGish's 8-bit post-processing quantisation back to float32 in [min, max]."""
    lo, hi = params.QUANTIZE_MIN_VAL, params.QUANTIZE_MAX_VAL
    return (np.asarray(X, dtype=np.float32) * ((hi - lo) / 255.0) + lo).astype(np.float32)


class OpenMICDataset:
    """One OpenMIC-2018 release. ``partial=True`` opens an excerpt (such as a few rows cut from
    the release): partition keys without labels are then left out, counted in
    ``unlabelled_partition_keys`` and warned about, instead of being an error."""

    def __init__(self, source: Source, *, partial: bool = False):
        self.source = source
        self.uri = source.uri
        self.partial = partial
        self.unlabelled_partition_keys: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        return f"OpenMICDataset({self.uri!r})"

    # --- small files -------------------------------------------------------------------------
    def _require(self, rel: str) -> str:
        if not self.source.exists(rel):
            raise DatasetError(self.source.location(rel), "required file is missing")
        return self.source.read_text(rel)

    def class_map(self) -> dict[str, int]:
        rel = params.CLASS_MAP_FILE
        if not self.source.exists(rel):
            return dict(params.CLASS_INDEX)
        try:
            mapping = json.loads(self.source.read_text(rel))
        except json.JSONDecodeError as exc:
            raise DatasetError(self.source.location(rel), f"invalid JSON: {exc}") from exc
        if not isinstance(mapping, dict):
            raise DatasetError(
                self.source.location(rel), f"expected an object of class: index, got {type(mapping).__name__}"
            )
        if mapping != params.CLASS_INDEX:
            # Name the first difference: a reassigned index would pair every label with the
            # wrong instrument, silently.
            wrong = next(
                (
                    f"{name!r} has index {mapping.get(name)!r}, expected {i}"
                    for name, i in params.CLASS_INDEX.items()
                    if mapping.get(name) != i
                ),
                f"unknown classes {sorted(set(mapping) - set(params.CLASS_INDEX))}",
            )
            raise DatasetError(
                self.source.location(rel),
                f"class map differs from OpenMIC-2018's {params.NUM_CLASSES} classes: {wrong}",
            )
        return mapping

    @cached_property
    def _labels(self) -> Labels:
        rel = params.AGGREGATED_LABELS_FILE
        path = self.source.location(rel)
        # Labels are indexed by class position: a class map that disagrees must stop here.
        self.class_map()
        text = self._require(rel)
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None or any(c not in header for c in _LABEL_COLUMNS):
            raise DatasetError(path, f"header must include {', '.join(_LABEL_COLUMNS)}", line=1)
        col = {name: header.index(name) for name in _LABEL_COLUMNS}
        seen: dict[tuple[str, int], int] = {}
        rows: list[tuple[str, int, float]] = []
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise DatasetError(path, f"expected {len(header)} columns, got {len(row)}", line=lineno)
            key = _check_key(row[col["sample_key"]], path=path, line=lineno)
            name = row[col["instrument"]].strip()
            if name not in params.CLASS_INDEX:
                raise DatasetError(path, f"unknown instrument class {name!r}", line=lineno)
            try:
                relevance = float(row[col["relevance"]])
            except ValueError:
                raise DatasetError(
                    path, f"relevance {row[col['relevance']]!r} is not a number", line=lineno
                ) from None
            if not (0.0 <= relevance <= 1.0):
                raise DatasetError(path, f"relevance {relevance} outside [0, 1]", line=lineno)
            cls = params.CLASS_INDEX[name]
            if (key, cls) in seen:
                raise DatasetError(
                    path, f"duplicate row for ({key}, {name}); first at line {seen[key, cls]}", line=lineno
                )
            seen[key, cls] = lineno
            rows.append((key, cls, relevance))
        keys = np.array(sorted({k for k, _, _ in rows}))
        index = {k: i for i, k in enumerate(keys)}
        y_true = np.zeros((len(keys), params.NUM_CLASSES), np.float32)
        y_mask = np.zeros((len(keys), params.NUM_CLASSES), bool)
        for key, cls, relevance in rows:
            y_true[index[key], cls] = relevance
            y_mask[index[key], cls] = True
        log.debug("labels: %d clips, %d observed pairs", len(keys), len(rows))
        return Labels(keys, y_true, y_mask)

    def labels(self) -> Labels:
        return self._labels

    @cached_property
    def _partitions(self) -> dict[str, list[str]]:
        known = self.labels().index()
        out: dict[str, list[str]] = {}
        where: dict[str, str] = {}
        for split, fname in (
            (params.SPLIT_TRAIN, params.PARTITION_TRAIN_FILE),
            (params.SPLIT_TEST, params.PARTITION_TEST_FILE),
        ):
            rel = f"{params.PARTITIONS_DIR}/{fname}"
            path = self.source.location(rel)
            keys: list[str] = []
            for lineno, line in enumerate(self._require(rel).splitlines(), start=1):
                if not line.strip():
                    continue
                key = _check_key(line.split(",")[0], path=path, line=lineno)
                if key not in known:
                    if not self.partial:
                        raise DatasetError(
                            path,
                            f"partition key {key} has no labels (an excerpt opens with --partial / partial=True)",
                            line=lineno,
                        )
                    self.unlabelled_partition_keys.setdefault(split, []).append(key)
                    continue
                if key in where:
                    raise DatasetError(path, f"key {key} is also in the {where[key]} partition", line=lineno)
                where[key] = split
                keys.append(key)
            out[split] = keys
        for split, missing in self.unlabelled_partition_keys.items():
            log.warning(
                "%s: %d %s partition keys have no labels; left out (partial dataset)",
                self.uri,
                len(missing),
                split,
            )
        return out

    def partitions(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self._partitions.items()}

    @cached_property
    def _metadata(self):
        import pandas as pd

        rel = params.METADATA_FILE
        if not self.source.exists(rel):
            return None
        try:
            frame = pd.read_csv(
                io.BytesIO(self.source.read_bytes(rel)), dtype={"sample_key": str, "artist_id": str}
            )
        except Exception as exc:  # pandas raises several parser error types
            raise DatasetError(self.source.location(rel), f"cannot parse metadata CSV: {exc}") from exc
        for column in ("sample_key", "artist_id"):
            if column not in frame.columns:
                raise DatasetError(self.source.location(rel), f"metadata has no {column!r} column", line=1)
        return frame.set_index("sample_key")

    def metadata(self):
        return self._metadata

    # --- splits ------------------------------------------------------------------------------
    def clips(
        self,
        *,
        validation_fraction: float = params.DEFAULT_VALIDATION_FRACTION,
        seed: int = params.DEFAULT_SEED,
    ) -> list[Clip]:
        """Every partitioned clip with its split; validation is carved out of train by artist."""
        if not 0.0 <= validation_fraction < 1.0:
            raise DatasetError(self.uri, f"validation fraction {validation_fraction} not in [0, 1)")
        labels = self.labels()
        index = labels.index()
        parts = self.partitions()
        meta = self.metadata()
        artists: dict[str, str | None] = {}
        if meta is not None:
            artist_col = meta["artist_id"]
            artists = {k: (_artist_id(artist_col[k]) if k in artist_col.index else None) for k in index}
        validation = split_validation(
            parts[params.SPLIT_TRAIN],
            artists if meta is not None else None,
            fraction=validation_fraction,
            seed=seed,
        )
        clips = []
        for split, keys in parts.items():
            for key in keys:
                name = params.SPLIT_VALIDATION if key in validation else split
                i = index[key]
                clips.append(Clip(key, name, labels.y_true[i], labels.y_mask[i], artists.get(key)))
        return clips

    # --- audio -------------------------------------------------------------------------------
    def audio_path(self, key: str) -> str:
        return self.source.location(audio_relpath(key))

    def read_audio(self, key: str) -> bytes:
        return self.source.read_bytes(audio_relpath(key))

    def audio_files(self) -> list[str]:
        """Keys of the audio files present."""
        suffix = params.AUDIO_EXTENSION
        return [
            os.path.basename(rel)[: -len(suffix)]
            for rel in self.source.list_files(params.AUDIO_DIR)
            if rel.endswith(suffix)
        ]

    def iter_audio(self, keys: Iterable[str] | None = None) -> Iterator[AudioBlob]:
        """Audio bytes per key. A missing or unreadable file becomes a blob with ``error`` set,
        so one bad clip is recorded by the caller rather than ending the run."""
        keys = [str(k) for k in (self.labels().keys if keys is None else keys)]
        if isinstance(self.source, TarSource):
            rels = {audio_relpath(k): k for k in keys}
            for rel, data, error in self.source.iter_members(set(rels)):
                yield AudioBlob(rels[rel], self.source.location(rel), data, error)
            return
        for key in keys:
            rel = audio_relpath(key)
            try:
                yield AudioBlob(key, self.source.location(rel), self.source.read_bytes(rel))
            except DatasetError as exc:
                yield AudioBlob(key, self.source.location(rel), None, exc.reason)

    # --- precomputed features ----------------------------------------------------------------
    def has_npz(self) -> bool:
        return self.source.exists(params.NPZ_FILE)

    def load_npz(self) -> NpzFeatures:
        rel = params.NPZ_FILE
        path = self.source.location(rel)
        if not self.source.exists(rel):
            raise DatasetError(path, "the release's precomputed features file is missing")
        local = self.source.local_path(rel)
        file = local if local else io.BytesIO(self.source.read_bytes(rel))
        try:
            with np.load(file, allow_pickle=False) as z:
                missing = [name for name in _NPZ_MEMBERS if name not in z.files]
                if missing:
                    raise DatasetError(
                        path, f"missing array(s) {', '.join(missing)} (need {', '.join(_NPZ_MEMBERS)})"
                    )
                x, y_true, y_mask = z["X"], z["Y_true"].astype(np.float32), z["Y_mask"].astype(bool)
                try:
                    keys = z["sample_key"].astype(str)
                except ValueError:  # "Object arrays cannot be loaded when allow_pickle=False"
                    keys = None
            if keys is None:
                keys = _pickled_keys(file)
        except (ValueError, OSError, KeyError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError) as exc:
            raise DatasetError(path, f"cannot read npz: {exc}") from exc
        feats = NpzFeatures(_quantised(x, path), y_true, y_mask, keys)
        n = len(feats.sample_key)
        if (
            feats.X.ndim != 3
            or feats.X.shape[0] != n
            or feats.y_true.shape != (n, params.NUM_CLASSES)
            or feats.y_mask.shape != (n, params.NUM_CLASSES)
        ):
            raise DatasetError(
                path,
                f"inconsistent shapes X{feats.X.shape} Y_true{feats.y_true.shape} Y_mask{feats.y_mask.shape} keys({n})",
            )
        check_features(
            feats.X,
            path=f"{path}: X",
            frames=params.RELEASE_VGGISH_FRAMES,
            dim=params.VGGISH_EMBEDDING_SIZE,
            keys=feats.sample_key,
        )
        if not np.isfinite(feats.y_true).all():
            raise DatasetError(path, "Y_true holds non-finite values")
        return feats

    def vggish_json(self, key: str) -> np.ndarray:
        rel = vggish_relpath(key)
        try:
            doc = json.loads(self.source.read_text(rel))
            features = np.asarray(doc["features"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DatasetError(self.source.location(rel), f"malformed VGGish JSON: {exc}") from None
        if features.ndim != 2 or features.shape[1] != params.VGGISH_EMBEDDING_SIZE:
            raise DatasetError(
                self.source.location(rel), f"features shape {features.shape}, expected [frames, 128]"
            )
        if not (np.issubdtype(features.dtype, np.integer) or np.issubdtype(features.dtype, np.floating)):
            raise DatasetError(self.source.location(rel), f"features are not numbers ({features.dtype})")
        if np.issubdtype(features.dtype, np.integer) and (features.min() < 0 or features.max() > 255):
            # Quantised features are bytes; anything else would wrap around when cast to uint8.
            raise DatasetError(
                self.source.location(rel),
                f"quantised features outside 0-255 ({features.min()}..{features.max()})",
            )
        check_features(
            features[None],
            path=self.source.location(rel),
            frames=params.RELEASE_VGGISH_FRAMES,
            dim=params.VGGISH_EMBEDDING_SIZE,
            keys=[key],
        )
        return (
            features.astype(np.uint8)
            if np.issubdtype(features.dtype, np.integer)
            else features.astype(np.float32)
        )


def _artist_id(value) -> str | None:
    """The metadata's artist id, or None where the cell is empty: pandas reads an empty cell as
    NaN, and str(NaN) == "nan" would put every artist-less clip into one validation group."""
    import pandas as pd

    if pd.isna(value) or not str(value).strip():
        return None
    return str(value)


def split_validation(
    train_keys: list[str], artists: dict[str, str | None] | None, *, fraction: float, seed: int
) -> set[str]:
    """Keys moved from train to validation: whole artists, chosen by a seeded shuffle, until the
    fraction is reached, so no artist is on both sides (as the official split keeps train and test)."""
    if fraction <= 0 or not train_keys:
        return set()
    rng = np.random.default_rng(seed)
    if artists is None:
        log.warning("no metadata file: validation split is seeded by key, not grouped by artist")
        groups = {k: [k] for k in train_keys}
    else:
        groups: dict[str, list[str]] = {}
        for key in train_keys:
            # A clip without an artist id forms its own group.
            groups.setdefault(artists.get(key) or f"key:{key}", []).append(key)
    names = sorted(groups)
    order = rng.permutation(len(names))
    # Rounded, so a tiny train set (an excerpt) is not emptied into validation by one group.
    target = int(round(fraction * len(train_keys)))
    chosen: set[str] = set()
    for i in order:
        if len(chosen) >= target:
            break
        chosen.update(groups[names[i]])
    return chosen


def open_dataset(uri: str | os.PathLike[str], *, partial: bool = False) -> OpenMICDataset:
    """Open a dataset: an extracted ``openmic-2018/`` dir, the release ``.tgz``, or ``gs://...``.
    ``partial`` accepts an excerpt whose partition lists name clips it has no labels for."""
    return OpenMICDataset(open_source(uri), partial=partial)
