"""Load training features into arrays per split, from any of the three sources train accepts:

1. an embed output directory (embedding TFRecords; parsed in the TF graph),
2. a dataset root holding the release's ``openmic-2018.npz`` (+ ``partitions/``), dequantised,
3. a dataset root with the release's per-clip ``vggish/XXX/<key>.json`` features.

For 2 and 3 the validation split is carved from train by artist (data layer), as for audio.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from disco import params
from disco.errors import ConfigError, DatasetError, SchemaError
from disco.publish import publishes
from disco.records import clip_group
from disco.results import ImportFeaturesResult
from disco.train.linear import recording_groups

log = logging.getLogger(__name__)


@dataclass
class SplitData:
    x: np.ndarray  # float32 [N, frames, dim]
    y_true: np.ndarray  # float32 [N, 20]
    y_mask: np.ndarray  # float32 [N, 20]
    keys: np.ndarray  # str [N]
    augmentation_id: np.ndarray  # int [N]
    # str [N]: what may never sit on both sides of a cross-validation fold (records.clip_group):
    # the artist where the source knows it, else the recording (the key's <track> part).
    groups: np.ndarray | None = None
    # str [N]: a mixup mixture's second clip's group ("" for every other example): a mixture may
    # train a fold only when neither of its clips is held out there.
    partner_groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.groups is None:
            self.groups = recording_groups(self.keys)
        if self.partner_groups is None:
            self.partner_groups = np.full(len(self.keys), "")

    def __len__(self) -> int:
        return len(self.keys)

    def originals(self) -> SplitData:
        return self.subset(self.augmentation_id == 0)

    def subset(self, m: np.ndarray) -> SplitData:
        return SplitData(
            self.x[m],
            self.y_true[m],
            self.y_mask[m],
            self.keys[m],
            self.augmentation_id[m],
            self.groups[m],
            self.partner_groups[m],
        )


def concat_splits(parts: list[SplitData]) -> SplitData:
    return SplitData(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in SplitData.__dataclass_fields__)
    )


@dataclass
class FeatureSet:
    splits: dict[str, SplitData]
    source: str
    kind: str  # "records" | "npz" | "vggish_json"
    embedder: str
    frames: int
    dim: int
    # The weights and post-processing behind the features (the records' embedder_version): export
    # must rebuild this very frontend. Empty where the source does not say (the release's features).
    embedder_version: str = ""


def frontend_of(version: str) -> tuple:
    """What in an embedder version changes the embeddings' space: VGGish's post-processing (+pca:
    PCA and 8-bit quantisation) and ReLU on fc2, musicnn's layer and hop. The weights' path may
    differ between machines (a copied checkpoint), so it is not part of it."""
    import re

    flags = tuple(sorted(re.findall(r"\+(pca|fc2relu)\b", version)))
    tail = version.split("/", 1)[1] if version.startswith(params.MUSICNN_MODEL + "@") else ""
    return flags, tail


def check_trained_on(info: dict, fs: FeatureSet, model_dir: str) -> None:
    """ConfigError when ``fs`` are not the kind of features the model in ``model_dir`` was trained on
    (its features.json, ``info``): another embedder, shape or frontend gives scores that mean
    nothing, and 10x128 VGGish+PCA bytes fit a model trained on the release's dequantised values."""
    trained = (info.get("embedder"), info.get("frames"), info.get("dim"))
    if trained != (fs.embedder, fs.frames, fs.dim) or (
        fs.embedder != params.RELEASE_EMBEDDER
        and info.get("embedder_version")  # older train outputs did not record it
        and frontend_of(info["embedder_version"]) != frontend_of(fs.embedder_version)
    ):
        raise ConfigError(
            f"{model_dir}: trained on {trained[0]} features ({info.get('embedder_version') or '?'}, "
            f"{trained[1]}x{trained[2]}), but {fs.source} holds {fs.embedder} features "
            f"({fs.embedder_version or '?'}, {fs.frames}x{fs.dim})"
        )


def _empty(frames: int, dim: int) -> SplitData:
    return SplitData(
        np.zeros((0, frames, dim), np.float32),
        np.zeros((0, params.NUM_CLASSES), np.float32),
        np.zeros((0, params.NUM_CLASSES), np.float32),
        np.array([], str),
        np.zeros(0, int),
    )


def _from_records(path: str) -> FeatureSet:
    import tensorflow as tf

    from disco.records import decode_embedding, embedding_dataset, list_shards, read_tfrecord_checked

    files = list_shards(path, params.EMBEDDING_PREFIX)
    # The first record fixes [frames, dim]; a sink may leave empty shards, so look past them.
    shard, framed = next(((f, r) for f in files for r in read_tfrecord_checked(f)), (path, None))
    if framed is None:
        raise DatasetError(path, "the embedding shards hold no records")
    if framed.error is not None:
        raise DatasetError(shard, f"record 0: {framed.error}")
    try:
        first = decode_embedding(framed.data)
    except (SchemaError, ValueError) as exc:
        raise DatasetError(shard, f"record 0: {exc}") from None
    frames, dim = first.embedding.shape

    # One pass over the shards, parsed in the graph; splits are taken from the records' own split
    # field afterwards (producers may shard by split or mix splits). The graph's errors name no
    # file, so on any failure the shards are read again record by record to name the bad one.
    ds = embedding_dataset(files, frames=frames, dim=dim, with_split=True)
    try:
        x, yt, ym, k, sp, aug, grp, partner = (
            np.concatenate(p) for p in zip(*ds.batch(4096).as_numpy_iterator())
        )
    except tf.errors.OpError as exc:
        raise _locate_bad_record(files, frames, dim) or DatasetError(path, _reason(exc)) from None
    if not np.isfinite(x).all():
        raise _locate_bad_record(files, frames, dim) or DatasetError(path, "non-finite embedding values")
    sp, k = sp.astype(str), k.astype(str)
    # Records written before the group feature carry none: their recording's (as on decode).
    grp = np.where(grp.astype(str) == "", recording_groups(k), grp.astype(str))
    partner = partner.astype(str)
    # In (augmentation, key) order, not the files': a Beam sink deals records to its shards from a
    # random start, so with several shards per split each run of a step orders them differently,
    # and the same seed would shuffle other batches (a one-shard output is in this order already).
    order = np.lexsort((k, aug))
    x, yt, ym, k, sp, aug, grp, partner = (a[order] for a in (x, yt, ym, k, sp, aug, grp, partner))
    splits = {}
    for split in params.SPLITS:
        m = sp == split
        splits[split] = (
            SplitData(
                x[m].astype(np.float32),
                yt[m].astype(np.float32),
                ym[m].astype(np.float32),
                k[m],
                aug[m].astype(np.int64),
                grp[m],
                partner[m],
            )
            if m.any()
            else _empty(frames, dim)
        )
    return FeatureSet(
        splits,
        path,
        "records",
        first.embedder,
        int(frames),
        int(dim),
        embedder_version=first.embedder_version,
    )


def _reason(exc: Exception) -> str:
    # TensorFlow's messages wrap the cause in the op's context ({{function_node ...}} ... [Op:...]).
    import re

    text = (getattr(exc, "message", None) or str(exc)).strip()
    text = re.sub(r"\{\{[^}]*\}\}\s*|\s*\[Op:[^\]]*\].*$", "", text.splitlines()[0] if text else "")
    return text or type(exc).__name__


def _locate_bad_record(files: list[str], frames: int, dim: int) -> DatasetError | None:
    """The first record of ``files`` that cannot be read (corrupt bytes, a truncated shard), that
    does not decode, has another shape than [frames, dim], or holds non-finite values, as a
    DatasetError naming the shard and the record's index in it."""
    from disco.records import decode_embedding, read_tfrecord_checked

    for shard in files:
        for framed in read_tfrecord_checked(shard):
            where = f"record {framed.index}"
            if framed.error is not None:
                return DatasetError(shard, f"{where}: {framed.error}")
            try:
                rec = decode_embedding(framed.data)
            except (SchemaError, ValueError) as exc:
                return DatasetError(shard, f"{where}: {exc}")
            if rec.embedding.shape != (frames, dim):
                return DatasetError(
                    shard,
                    f"{where} ({rec.key}): embedding shape {rec.embedding.shape}, expected {(frames, dim)}",
                )
            if not np.isfinite(rec.embedding).all():
                return DatasetError(shard, f"{where} ({rec.key}): non-finite embedding values (NaN or Inf)")
    return None


def _as_float(x: np.ndarray, dequantize) -> np.ndarray:
    return dequantize(x) if x.dtype == np.uint8 else x.astype(np.float32)


def _from_release(path: str, *, seed: int, validation_fraction: float, kind: str) -> FeatureSet:
    from disco.data.openmic import dequantize, open_dataset

    ds = open_dataset(path)
    clips = ds.clips(validation_fraction=validation_fraction, seed=seed)
    if kind == "npz":
        feats = ds.load_npz()
        index = {str(k): i for i, k in enumerate(feats.sample_key)}
        missing = [c.key for c in clips if c.key not in index]
        if missing:
            raise DatasetError(
                ds.source.location(params.NPZ_FILE),
                f"{len(missing)} partition keys have no features, e.g. {missing[:3]}",
            )
        get = lambda key: feats.X[index[key]]  # noqa: E731
    else:
        get = ds.vggish_json
    splits = {}
    for split in params.SPLITS:
        chosen = [c for c in clips if c.split == split]
        if not chosen:
            splits[split] = _empty(params.RELEASE_VGGISH_FRAMES, params.VGGISH_EMBEDDING_SIZE)
            continue
        # Per clip: stacking quantised (uint8) with float clips would promote them all to float and
        # leave the quantised ones at 0..255 among [-2, 2] values.
        x = np.stack([_as_float(get(c.key), dequantize) for c in chosen])
        splits[split] = SplitData(
            x,
            np.stack([c.y_true for c in chosen]).astype(np.float32),
            np.stack([c.y_mask for c in chosen]).astype(np.float32),
            np.array([c.key for c in chosen]),
            np.zeros(len(chosen), int),
            # Folds group by artist, as the validation split and the official test split do.
            np.array([clip_group(c.key, c.artist_id) for c in chosen]),
        )
    frames, dim = next(s.x.shape[1:] for s in splits.values() if len(s))
    return FeatureSet(
        splits, path, kind, params.RELEASE_EMBEDDER, int(frames), int(dim), release_version(kind)
    )


def release_source(kind: str) -> str:
    """Where in the release its features of ``kind`` come from."""
    return params.NPZ_FILE if kind == "npz" else params.VGGISH_DIR


def release_version(kind: str) -> str:
    """The embedder version of the release's own features (what import-features writes in its
    records): the release's VGGish, its post-processing, dequantised here."""
    return f"{params.RELEASE_TARBALL_NAME}:{release_source(kind)}"


def load_features(
    path: str,
    *,
    seed: int = params.DEFAULT_SEED,
    validation_fraction: float = params.DEFAULT_VALIDATION_FRACTION,
) -> FeatureSet:
    """Training features from any of the three sources, as one :class:`FeatureSet` of
    ``[examples, frames, dim]`` arrays with ``y_true`` / ``y_mask`` per split.

    Args:
        path: an embed step output (embedding records), or a dataset root with the release's
            ``openmic-2018.npz`` (+ ``partitions/``) or its ``vggish/*.json`` files.
        seed: seed of the artist-grouped validation split (release features; records carry theirs).
        validation_fraction: validation share carved from train (release features).

    Returns:
        The feature set: ``splits`` (train / validation / test), ``kind`` of source, ``embedder``,
        ``frames`` and ``dim``.
    """
    from disco.records import list_shards

    path = str(path)
    if os.path.isdir(path) and list_shards(path, params.EMBEDDING_PREFIX):
        fs = _from_records(path)
    elif os.path.isdir(path) and os.path.isfile(os.path.join(path, params.NPZ_FILE)):
        fs = _from_release(path, seed=seed, validation_fraction=validation_fraction, kind="npz")
    elif os.path.isdir(os.path.join(path, params.VGGISH_DIR)):
        fs = _from_release(path, seed=seed, validation_fraction=validation_fraction, kind="vggish_json")
    else:
        raise ConfigError(
            f"{path}: no features found: expected embedding shards ({params.EMBEDDING_PREFIX}-*"
            f"{params.TFRECORD_SUFFIX}), {params.NPZ_FILE}, or a {params.VGGISH_DIR}/ folder"
        )
    log.info(
        "features from %s (%s, %s): %s; %d frames x %d dims",
        path,
        fs.kind,
        fs.embedder,
        ", ".join(f"{k} {len(v)}" for k, v in fs.splits.items()),
        fs.frames,
        fs.dim,
    )
    return fs


@publishes("import_features")
def write_release_records(
    data_uri: str, out_dir: str, *, seed: int, validation_fraction: float
) -> ImportFeaturesResult:
    """The release's precomputed VGGish features (``openmic-2018.npz``, else ``vggish/*.json``) as
    embedding records for every clip of the official split, with labels, mask and the artist-grouped
    validation split, so the pipeline can skip resample, augment and embed. A clip of the split
    without features is a DatasetError, never a silently smaller set."""
    import math
    import time

    from disco import records
    from disco.data.openmic import open_dataset

    start = time.perf_counter()
    ds = open_dataset(data_uri)
    kind = "npz" if ds.has_npz() else "vggish_json"
    fs = _from_release(data_uri, seed=seed, validation_fraction=validation_fraction, kind=kind)
    source = release_source(kind)
    version = fs.embedder_version
    rows = [(split, i) for split, data in fs.splits.items() for i in range(len(data))]
    os.makedirs(out_dir, exist_ok=True)
    total = max(1, math.ceil(len(rows) / params.RELEASE_RECORDS_PER_SHARD))
    for shard in range(total):
        path = os.path.join(out_dir, records.shard_name(params.EMBEDDING_PREFIX, shard, total))
        with records.AtomicShardWriter(path) as writer:
            for split, i in rows[
                shard * params.RELEASE_RECORDS_PER_SHARD : (shard + 1) * params.RELEASE_RECORDS_PER_SHARD
            ]:
                d = fs.splits[split]
                writer.write(
                    records.encode_embedding(
                        records.EmbeddingRecord(
                            key=str(d.keys[i]),
                            split=split,
                            embedding=d.x[i],
                            y_true=d.y_true[i],
                            y_mask=d.y_mask[i].astype(np.int64),
                            group=str(d.groups[i]),
                            embedder=params.RELEASE_EMBEDDER,
                            embedder_version=version,
                        )
                    )
                )
        log.info("release features: shard %d/%d written", shard + 1, total)
    splits = {s: len(d) for s, d in fs.splits.items() if len(d)}
    return ImportFeaturesResult(
        records=len(rows),
        splits=splits,
        shards=total,
        frames=fs.frames,
        dim=fs.dim,
        source=source,
        seconds=round(time.perf_counter() - start, 2),
    )
