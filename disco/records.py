"""Encoding, decoding and reading of the record schemas defined in :mod:`disco.params`.

Writers in Beam pipelines call :func:`encode_resampled` / :func:`encode_embedding` and hand the
bytes to ``beam.io.WriteToTFRecord`` (which finalises shards by renaming temporary files, so a
killed run leaves no partial shard). Readers that need Python objects use
:func:`iter_resampled` / :func:`iter_embeddings`; training reads embeddings with
:func:`embedding_dataset`, which parses in the TensorFlow graph with no per-record Python.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from disco import params
from disco.errors import DatasetError, DiscoError, SchemaError
from disco.tfexample import BYTES, FLOAT, INT64, decode_example, encode_example

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf


def _tf():
    # TensorFlow costs seconds to import; only the record functions pay for it.
    import tensorflow as tf

    return tf


@dataclass
class ResampledRecord:
    key: str
    split: str
    pcm: np.ndarray  # int16 [CLIP_SAMPLES]
    original_duration: float
    y_true: np.ndarray = field(default_factory=lambda: np.zeros(params.NUM_CLASSES, np.float32))
    y_mask: np.ndarray = field(default_factory=lambda: np.zeros(params.NUM_CLASSES, np.int64))
    augmentation_id: int = 0
    sample_rate: int = params.SAMPLE_RATE
    # Cross-validation groups (clip_group); "" in a record: taken from the key when read.
    group: str = ""
    partner_group: str = ""

    def waveform(self) -> np.ndarray:
        """The clip as float32 in [-1, 1)."""
        return self.pcm.astype(np.float32) / params.PCM_SCALE


@dataclass
class EmbeddingRecord:
    key: str
    split: str
    embedding: np.ndarray  # float32 [frames, dim]
    y_true: np.ndarray
    y_mask: np.ndarray
    embedder: str
    embedder_version: str
    augmentation_id: int = 0
    group: str = ""
    partner_group: str = ""


def clip_group(key: str, artist_id: str | None = None) -> str:
    """What may never sit on both sides of a cross-validation fold: the clip's artist where the
    dataset's metadata knows it (the official split keeps artists apart), else its recording (the
    key's ``<track>`` part: the segments of one recording are one performance)."""
    return f"artist:{artist_id}" if artist_id else f"track:{str(key).split('_')[0]}"


def float_to_pcm(waveform: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] -> int16 PCM, clipping (rather than wrapping) any overshoot."""
    scaled = np.clip(np.asarray(waveform, dtype=np.float64) * params.PCM_SCALE, -32768, 32767)
    return np.round(scaled).astype(np.int16)


def _encode_labelled(
    rec: ResampledRecord | EmbeddingRecord,
    payload: Mapping[str, tuple[str, Any]],
    *,
    extra: Mapping[str, tuple[str, Any]],
    schema_version: int,
) -> bytes:
    """A record's Example: what every record carries (key, split, labels, augmentation id, schema
    version, checked here) around its own ``payload`` and ``extra`` features."""
    if rec.split not in params.SPLITS:
        raise SchemaError(f"record {rec.key!r}: unknown split {rec.split!r}")
    y_true = np.asarray(rec.y_true, np.float32)
    y_mask = np.asarray(rec.y_mask, np.int64)
    if y_true.shape != (params.NUM_CLASSES,) or y_mask.shape != (params.NUM_CLASSES,):
        raise SchemaError(
            f"record {rec.key!r}: y_true/y_mask must have shape ({params.NUM_CLASSES},), "
            f"got {y_true.shape} and {y_mask.shape}"
        )
    return encode_example(
        {
            params.FEATURE_KEY: (BYTES, [rec.key.encode()]),
            params.FEATURE_SPLIT: (BYTES, [rec.split.encode()]),
            **payload,
            params.FEATURE_Y_TRUE: (FLOAT, y_true),
            params.FEATURE_Y_MASK: (INT64, y_mask.tolist()),
            params.FEATURE_AUGMENTATION_ID: (INT64, [int(rec.augmentation_id)]),
            params.FEATURE_GROUP: (BYTES, [(rec.group or clip_group(rec.key)).encode()]),
            params.FEATURE_PARTNER_GROUP: (BYTES, [rec.partner_group.encode()]),
            **extra,
            params.FEATURE_SCHEMA_VERSION: (INT64, [schema_version]),
        }
    )


def encode_resampled(rec: ResampledRecord) -> bytes:
    pcm = np.asarray(rec.pcm)
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise SchemaError(f"record {rec.key!r}: pcm must be 1-D int16, got {pcm.dtype} {pcm.shape}")
    payload = {
        params.FEATURE_PCM: (BYTES, [pcm.astype(params.PCM_DTYPE).tobytes()]),
        params.FEATURE_SAMPLE_RATE: (INT64, [int(rec.sample_rate)]),
        params.FEATURE_NUM_SAMPLES: (INT64, [int(pcm.shape[0])]),
        params.FEATURE_ORIGINAL_DURATION: (FLOAT, [float(rec.original_duration)]),
    }
    return _encode_labelled(rec, payload, extra={}, schema_version=params.RESAMPLED_SCHEMA_VERSION)


def _parse_example(data: bytes) -> dict:
    # Our own wire-format reader (disco.tfexample): no TensorFlow import, and malformed input
    # surfaces as SchemaError, which callers (the embed step's dead letter among them) handle.
    return decode_example(data)


def _single(feats, name: str, kind: str):
    if name not in feats:
        raise SchemaError(f"record has no feature {name!r}")
    got_kind, values = feats[name]
    if got_kind != kind or len(values) == 0:
        raise SchemaError(f"record feature {name!r} has no {kind} values")
    return values


def _check_version(feats, expected: int, what: str) -> None:
    got = list(_single(feats, params.FEATURE_SCHEMA_VERSION, "int64_list"))
    if got != [expected]:
        raise SchemaError(f"{what} record has schema_version {got}, this disco reads version {expected}")


def record_key(data: bytes) -> str:
    """A record's key without decoding the rest (no copy of its PCM or embedding)."""
    return _single(_parse_example(data), params.FEATURE_KEY, BYTES)[0].decode()


def _optional_text(feats, name: str) -> str:
    # A feature added after its schema's version (see disco.params): absent in older records.
    return _single(feats, name, BYTES)[0].decode() if name in feats else ""


def readable_key(data: bytes) -> str | None:
    """The record's key where the bytes still parse far enough to give one, else None: a
    dead-letter entry with the key lets the clip be found and re-made."""
    try:
        return record_key(data)
    except (DiscoError, ValueError):  # whatever does not parse (or is not UTF-8) simply has no key
        return None


def _labelled_fields(feats) -> dict[str, Any]:
    """The fields every record carries, decoded (see :func:`_encode_labelled`)."""
    key = _single(feats, params.FEATURE_KEY, "bytes_list")[0].decode()
    return {
        "key": key,
        "group": _optional_text(feats, params.FEATURE_GROUP) or clip_group(key),
        "partner_group": _optional_text(feats, params.FEATURE_PARTNER_GROUP),
        "split": _single(feats, params.FEATURE_SPLIT, "bytes_list")[0].decode(),
        "y_true": np.asarray(_single(feats, params.FEATURE_Y_TRUE, "float_list"), np.float32),
        "y_mask": np.asarray(_single(feats, params.FEATURE_Y_MASK, "int64_list"), np.int64),
        "augmentation_id": int(_single(feats, params.FEATURE_AUGMENTATION_ID, "int64_list")[0]),
    }


def decode_resampled(data: bytes) -> ResampledRecord:
    feats = _parse_example(data)
    _check_version(feats, params.RESAMPLED_SCHEMA_VERSION, "resampled audio")
    pcm = np.frombuffer(_single(feats, params.FEATURE_PCM, "bytes_list")[0], dtype=params.PCM_DTYPE)
    return ResampledRecord(
        pcm=pcm.astype(np.int16),
        original_duration=float(_single(feats, params.FEATURE_ORIGINAL_DURATION, "float_list")[0]),
        sample_rate=int(_single(feats, params.FEATURE_SAMPLE_RATE, "int64_list")[0]),
        **_labelled_fields(feats),
    )


def encode_embedding(rec: EmbeddingRecord) -> bytes:
    emb = np.asarray(rec.embedding, dtype=np.float32)
    if emb.ndim != 2:
        raise SchemaError(f"record {rec.key!r}: embedding must be [frames, dim], got shape {emb.shape}")
    payload = {
        params.FEATURE_EMBEDDING: (BYTES, [emb.astype("<f4").tobytes()]),
        params.FEATURE_EMBEDDING_SHAPE: (INT64, list(emb.shape)),
    }
    extra = {
        params.FEATURE_EMBEDDER: (BYTES, [rec.embedder.encode()]),
        params.FEATURE_EMBEDDER_VERSION: (BYTES, [rec.embedder_version.encode()]),
    }
    return _encode_labelled(rec, payload, extra=extra, schema_version=params.EMBEDDING_SCHEMA_VERSION)


def decode_embedding(data: bytes) -> EmbeddingRecord:
    feats = _parse_example(data)
    _check_version(feats, params.EMBEDDING_SCHEMA_VERSION, "embedding")
    shape = tuple(int(v) for v in _single(feats, params.FEATURE_EMBEDDING_SHAPE, "int64_list"))
    emb = np.frombuffer(_single(feats, params.FEATURE_EMBEDDING, "bytes_list")[0], dtype="<f4")
    return EmbeddingRecord(
        embedding=emb.reshape(shape).astype(np.float32),
        embedder=_single(feats, params.FEATURE_EMBEDDER, "bytes_list")[0].decode(),
        embedder_version=_single(feats, params.FEATURE_EMBEDDER_VERSION, "bytes_list")[0].decode(),
        **_labelled_fields(feats),
    )


def shard_pattern(directory: str | os.PathLike[str], prefix: str) -> str:
    """A glob for the shards under directory, with the folder part escaped (``exp[1]/r`` is a
    literal folder name, not a character class)."""
    from disco import fileio

    return fileio.join(fileio.escape_glob(os.fspath(directory)), f"{prefix}-*-of-*{params.TFRECORD_SUFFIX}")


def list_shards(directory: str | os.PathLike[str], prefix: str) -> list[str]:
    """Finished shards under directory (local or gs://), sorted, checked against the folder's
    manifest.json: an OutputError names a shard that is missing, or present but not listed (stale).
    Beam's temporary files are written under a separate temp directory, so they never match."""
    from disco.publish import verified_shards

    return verified_shards(directory, prefix)


def count_records(path: str) -> int:
    """Records in one TFRecord file, read by its length headers alone: steps check their counts
    after writing, and reading a 6 GB audio shard through TensorFlow to count it took minutes."""
    from disco import fileio

    n = 0
    size = fileio.size(path)
    with fileio.open_binary(path) as fh:
        pos = 0
        while pos < size:
            header = fh.read(12)  # uint64 length + masked crc32c of the length
            if len(header) < 12:
                raise SchemaError(f"{path}: truncated TFRecord header at byte {pos}")
            if _masked_crc(header[:8]) != int.from_bytes(header[8:], "little"):
                # Past a damaged length nothing can be located: the shard cannot be counted or read.
                raise SchemaError(f"{path}: record {n}: corrupt length header at byte {pos}")
            length = int.from_bytes(header[:8], "little")
            pos += 12 + length + 4
            if pos > size:
                raise SchemaError(f"{path}: truncated TFRecord of {length} bytes")
            fh.seek(pos)
            n += 1
    return n


_CRC_MASK_DELTA = 0xA282EAD8


def _masked_crc(data: bytes) -> int:
    # TFRecord's framing checksum: crc32c, rotated right by 15 bits, plus a constant.
    import google_crc32c

    crc = int.from_bytes(google_crc32c.Checksum(data).digest(), "big")
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def frame_tfrecord(data: bytes) -> bytes:
    """``data`` as one TFRecord: length, its masked CRC, the bytes, their masked CRC (what
    tf.io.TFRecordWriter writes, without importing TensorFlow)."""
    length = len(data).to_bytes(8, "little")
    return b"".join(
        (length, _masked_crc(length).to_bytes(4, "little"), data, _masked_crc(data).to_bytes(4, "little"))
    )


@dataclass
class FramedRecord:
    """One record of a TFRecord file as :func:`read_tfrecord_checked` found it: ``data`` is None
    only where the framing itself is damaged; ``error`` says why the record is not to be used."""

    index: int
    offset: int
    data: bytes | None
    error: str | None = None


def read_tfrecord_checked(path: str) -> Iterator[FramedRecord]:
    """Every record of one TFRecord file (local or gs://) with its checksums verified, in order.

    A record whose payload fails its checksum (a flipped byte) comes with ``error`` set and the
    reading goes on: its neighbours are intact, and the caller can dead-letter it by shard and
    index. A damaged length header or a cut-off file ends the file with one last errored record,
    since nothing after it can be located."""
    from disco import fileio

    with fileio.open_binary(path) as fh:
        index = offset = 0
        while True:
            header = fh.read(12)
            if not header:
                return
            if len(header) < 12:
                yield FramedRecord(index, offset, None, f"truncated record header at byte {offset}")
                return
            if _masked_crc(header[:8]) != int.from_bytes(header[8:], "little"):
                yield FramedRecord(
                    index,
                    offset,
                    None,
                    f"corrupt length header at byte {offset}; the rest of the shard is unreadable",
                )
                return
            length = int.from_bytes(header[:8], "little")
            data = fh.read(length)
            footer = fh.read(4)
            if len(data) < length or len(footer) < 4:
                yield FramedRecord(
                    index, offset, None, f"truncated record of {length} bytes at byte {offset}"
                )
                return
            ok = _masked_crc(data) == int.from_bytes(footer, "little")
            yield FramedRecord(
                index, offset, data, None if ok else f"checksum mismatch (corrupt bytes) at byte {offset}"
            )
            index += 1
            offset += 12 + length + 4


def iter_tfrecord_bytes(files: Sequence[str]) -> Iterator[bytes]:
    """Every record's bytes, checksums verified, local or gs:// (through disco.fileio, which the
    storage emulator and credentials reach; TensorFlow's own GCS client does not)."""
    for path in files:
        for framed in read_tfrecord_checked(path):
            if framed.error is not None:
                raise DatasetError(path, f"record {framed.index}: {framed.error}")
            yield framed.data


def iter_resampled(files_or_dirs: Iterable[str]) -> Iterator[ResampledRecord]:
    for raw in iter_tfrecord_bytes(_expand(files_or_dirs, params.RESAMPLED_PREFIX)):
        yield decode_resampled(raw)


def iter_embeddings(files_or_dirs: Iterable[str]) -> Iterator[EmbeddingRecord]:
    for raw in iter_tfrecord_bytes(_expand(files_or_dirs, params.EMBEDDING_PREFIX)):
        yield decode_embedding(raw)


def _expand(files_or_dirs: Iterable[str], prefix: str) -> list[str]:
    from disco import fileio

    out: list[str] = []
    for item in files_or_dirs:
        item = os.fspath(item)
        # A remote path has no isdir: a shard ends with the suffix, anything else is a folder,
        # listed (and checked against its manifest) like a local one.
        is_file = item.endswith(params.TFRECORD_SUFFIX) if fileio.is_remote(item) else not os.path.isdir(item)
        out.extend([item] if is_file else list_shards(item, prefix))
    return out


def embedding_feature_spec() -> dict:
    tf = _tf()
    return {
        params.FEATURE_KEY: tf.io.FixedLenFeature([], tf.string),
        params.FEATURE_SPLIT: tf.io.FixedLenFeature([], tf.string),
        params.FEATURE_EMBEDDING: tf.io.FixedLenFeature([], tf.string),
        params.FEATURE_EMBEDDING_SHAPE: tf.io.FixedLenFeature([2], tf.int64),
        params.FEATURE_Y_TRUE: tf.io.FixedLenFeature([params.NUM_CLASSES], tf.float32),
        params.FEATURE_Y_MASK: tf.io.FixedLenFeature([params.NUM_CLASSES], tf.int64),
        params.FEATURE_AUGMENTATION_ID: tf.io.FixedLenFeature([], tf.int64),
        # Defaulted: absent from records written before they were added (see disco.params).
        params.FEATURE_GROUP: tf.io.FixedLenFeature([], tf.string, default_value=""),
        params.FEATURE_PARTNER_GROUP: tf.io.FixedLenFeature([], tf.string, default_value=""),
        params.FEATURE_SCHEMA_VERSION: tf.io.FixedLenFeature([], tf.int64),
    }


def embedding_dataset(
    files: Sequence[str],
    *,
    frames: int,
    dim: int,
    split: str | None = None,
    include_augmented: bool = True,
    with_split: bool = False,
) -> tf.data.Dataset:
    """Parse embedding shards into ``(embedding[frames, dim], y_true[20], y_mask[20], key)``
    entirely in the TensorFlow graph, plus ``(split, augmentation_id, group, partner_group)`` when
    ``with_split`` (a group empty in the record is the caller's to take from the key).
    ``split`` filters by split name; augmented copies (augmentation_id > 0) are dropped unless
    ``include_augmented``."""
    tf = _tf()
    spec = embedding_feature_spec()
    ds = tf.data.TFRecordDataset(list(files), num_parallel_reads=tf.data.AUTOTUNE)
    ds = ds.map(lambda raw: tf.io.parse_single_example(raw, spec), num_parallel_calls=tf.data.AUTOTUNE)
    if split is not None:
        ds = ds.filter(lambda ex: tf.equal(ex[params.FEATURE_SPLIT], split))
    if not include_augmented:
        ds = ds.filter(lambda ex: tf.equal(ex[params.FEATURE_AUGMENTATION_ID], 0))

    def _to_tensors(ex):
        emb = tf.io.decode_raw(ex[params.FEATURE_EMBEDDING], tf.float32, little_endian=True)
        emb = tf.reshape(emb, [frames, dim])
        out = (
            emb,
            ex[params.FEATURE_Y_TRUE],
            tf.cast(ex[params.FEATURE_Y_MASK], tf.float32),
            ex[params.FEATURE_KEY],
        )
        extra = (
            ex[params.FEATURE_SPLIT],
            ex[params.FEATURE_AUGMENTATION_ID],
            ex[params.FEATURE_GROUP],
            ex[params.FEATURE_PARTNER_GROUP],
        )
        return out + extra if with_split else out

    return ds.map(_to_tensors, num_parallel_calls=tf.data.AUTOTUNE)


class AtomicShardWriter:
    """Write one TFRecord file outside Beam: to ``<path>.tmp-<pid>`` first, renamed on close, so a
    reader never sees a partial shard."""

    def __init__(self, path: str | os.PathLike[str]):
        tf = _tf()
        self.path = os.fspath(path)
        self._tmp = f"{self.path}.tmp-{os.getpid()}"
        self._writer = tf.io.TFRecordWriter(self._tmp)
        self.count = 0

    def write(self, data: bytes) -> None:
        self._writer.write(data)
        self.count += 1

    def close(self) -> None:
        self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._writer.close()
        if os.path.exists(self._tmp):
            os.remove(self._tmp)

    def __enter__(self) -> AtomicShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def shard_name(prefix: str, index: int, total: int) -> str:
    return f"{prefix}-{index:05d}-of-{total:05d}{params.TFRECORD_SUFFIX}"
