"""The embed step: resampled records → batched embedder inference (Beam RunInference) → sharded
embedding TFRecords per split, labels and masks carried through.

The model handler is our own: the stock TensorFlow handler feeds one tensor per element and knows
nothing of our records, whereas an Embedder takes a [B, 160000] waveform batch and returns
[B, frames, dim]. RunInference loads it once per worker process (shared across threads and
bundles) and batches elements with BatchElements.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from disco import fileio, params
from disco.beam.options import pipeline_options
from disco.beam.portable import one_leaf, worker_path
from disco.beam.progress import Progress
from disco.beam.sinks import (
    FAILED_TAG,
    OK_TAG,
    DeadLetter,
    WriteSplits,
    failure,
    read_dead_letters,
    remove_sink_temp,
)
from disco.embedders import embedder_options
from disco.errors import ConfigError, DiscoError, SchemaError
from disco.publish import distinct_inputs, publishes
from disco.results import EmbedResult

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = params.EMBED_BATCH_SIZE


# The embedder the launcher built, reused by a worker in the same process (the local runner): a
# second VGGish would cost another weight load and ~300 MB. Remote workers start empty and load.
_LOADED: dict[str, Any] = {}


def _load_embedder(embedder: str, options: dict[str, Any]):
    from disco.embedders import get_embedder

    key = json.dumps([embedder, options], sort_keys=True, default=str)
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = get_embedder(embedder, **options)
    return _LOADED[key]


class EmbedderModelHandler(ModelHandler):
    """RunInference's model handler for a disco Embedder: a batch of ``(pcm, metadata)`` →
    ``PredictionResult(metadata, embedding[frames, dim])``."""

    def __init__(self, embedder: str, options: dict[str, Any], batch_size: int, total: int | None = None):
        super().__init__()
        self.embedder = embedder
        self.options = options
        self.batch_size = batch_size
        self.total = total
        self._progress = None

    def load_model(self):
        return _load_embedder(self.embedder, self.options)

    def run_inference(self, batch: Sequence[tuple], model, inference_args=None) -> Iterable[PredictionResult]:
        if self._progress is None:  # made on the worker, after unpickling; its clock times this batch too
            self._progress = Progress("embed", total=self.total)
        waves = np.stack([item[0] for item in batch]).astype(np.float32) / params.PCM_SCALE
        embeddings = model.embed(waves, batch_size=len(batch))
        self._progress.add(len(batch))
        for item, emb in zip(batch, embeddings):
            yield PredictionResult(item[1], emb)

    def should_skip_batching(self) -> bool:
        # Elements arrive as fixed-size batches cut by ReadBatches; RunInference's own batching
        # would hold a bundle's last batch until finish_bundle (dropped by Beam's DaskRunner).
        return True

    def get_num_bytes(self, batch: Sequence[tuple]) -> int:
        return sum(item[0].nbytes for item in batch)

    def get_metrics_namespace(self) -> str:
        return "disco_embed"

    def share_model_across_processes(self) -> bool:
        return False


class RecordMeta(NamedTuple):
    """What an embedding record takes from its resampled record, carried beside the PCM through
    RunInference (its ``PredictionResult.example``)."""

    key: str
    split: str
    y_true: list[float]
    y_mask: list[int]
    augmentation_id: int
    group: str
    partner_group: str


def _to_input(raw: bytes) -> tuple[np.ndarray, RecordMeta]:
    """Resampled record bytes -> (pcm, metadata) for the model handler. Raises SchemaError for any
    record the embedder cannot take, so the Decode step can dead-letter it."""
    from disco.records import decode_resampled

    rec = decode_resampled(raw)
    if rec.split not in params.SPLITS:
        raise SchemaError(f"record {rec.key!r}: unknown split {rec.split!r}")
    # RunInference stacks a batch into one array: a clip of another length would fail the whole batch.
    if rec.pcm.shape != (params.CLIP_SAMPLES,):
        raise SchemaError(
            f"record {rec.key!r}: pcm has {rec.pcm.shape[0]} samples, expected {params.CLIP_SAMPLES}"
        )
    if rec.sample_rate != params.SAMPLE_RATE:
        raise SchemaError(f"record {rec.key!r}: sample_rate {rec.sample_rate}, expected {params.SAMPLE_RATE}")
    if rec.y_true.shape != (params.NUM_CLASSES,) or rec.y_mask.shape != (params.NUM_CLASSES,):
        raise SchemaError(
            f"record {rec.key!r}: y_true/y_mask have shapes {rec.y_true.shape} and "
            f"{rec.y_mask.shape}, expected ({params.NUM_CLASSES},)"
        )
    meta = RecordMeta(
        rec.key,
        rec.split,
        rec.y_true.astype(np.float32).tolist(),
        rec.y_mask.astype(int).tolist(),
        int(rec.augmentation_id),
        rec.group,
        rec.partner_group,
    )
    return rec.pcm, meta


class ReadBatches(beam.DoFn):
    """shard path -> batches ``[(pcm, metadata), ...]`` of up to ``batch_size`` clips on the main
    output, and a failure dict on FAILED_TAG for each record the embedder cannot take.

    Batches are cut here, inside one ``process`` call per shard, rather than by RunInference's
    BatchElements, which emits a bundle's last batch from ``finish_bundle``, an output Beam's
    DaskRunner drops (docs/images.md): a batch is complete when it leaves the reader, on every
    runner, and memory holds one batch of PCM, not a shard. The shard is read with its checksums
    verified (``read_tfrecord_checked``): a record failing its checksum is dead-lettered by shard
    and index and the shard's other records are still read, where Beam's own TFRecord source
    stops the whole run at the first bad checksum, naming no file."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size

    def setup(self):
        self.failed = Metrics.counter("disco_embed", "failed")

    def process(self, shard: str):
        from disco.records import read_tfrecord_checked, readable_key

        batch = []
        for rec in read_tfrecord_checked(shard):
            try:
                if rec.error is not None:
                    raise SchemaError(f"record {rec.index}: {rec.error}")
                batch.append(_to_input(rec.data))
            except (DiscoError, ValueError) as exc:  # ValueError: undecodable UTF-8 or PCM bytes
                self.failed.inc()
                key = readable_key(rec.data) if rec.data is not None else None
                yield failure(shard=str(shard), key=key, reason=str(exc))
                continue
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


def _to_record(result, name: str, version: str):
    from disco.records import EmbeddingRecord, encode_embedding

    meta: RecordMeta = result.example
    return meta.split, encode_embedding(
        EmbeddingRecord(
            key=meta.key,
            split=meta.split,
            embedding=np.asarray(result.inference, np.float32),
            y_true=np.asarray(meta.y_true, np.float32),
            y_mask=np.asarray(meta.y_mask, np.int64),
            embedder=name,
            embedder_version=version,
            augmentation_id=meta.augmentation_id,
            group=meta.group,
            partner_group=meta.partner_group,
        )
    )


def _input_files(audio_dirs: Sequence[str]) -> list[str]:
    from disco.records import list_shards

    files: list[str] = []
    for d in distinct_inputs(audio_dirs):
        found = list_shards(d, params.RESAMPLED_PREFIX)
        if not found:
            raise ConfigError(
                f"{d}: no resampled shards ({params.RESAMPLED_PREFIX}-*{params.TFRECORD_SUFFIX})"
            )
        files.extend(found)
    return files


def _count_records(files: Sequence[str]) -> dict[str, int]:
    from disco.records import count_records

    counts: dict[str, int] = {}
    for f in files:
        split = os.path.basename(f).split("-")[1]
        counts[split] = counts.get(split, 0) + count_records(f)
    return counts


def default_num_shards(n_records: int) -> int:
    return max(1, min(64, -(-n_records // 5000)))


@publishes("embed")
def run_embed(
    audio_dirs: Sequence[str],
    out_dir: str,
    *,
    embedder: str = "musicnn",
    vggish_handle: str | None = None,
    vggish_checkpoint: str | None = None,
    pca_params: str | None = None,
    precision: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_shards: int | None = None,
    beam_args: Sequence[str] = (),
    max_failure_ratio: float = params.DEFAULT_MAX_FAILURE_RATIO,
    test_pipeline: beam.Pipeline | None = None,
) -> EmbedResult:
    """Embed every record of resampled (and augmented) outputs into embedding TFRecords per split.

    Args:
        audio_dirs: resample / augment outputs (each at most once).
        out_dir: the output folder (local or ``gs://``); published whole or not at all.
        embedder, vggish_handle, vggish_checkpoint, pca_params, precision: the embedder and its
            weights (see ``embedder_options``).
        batch_size: clips per model call; num_shards: shards per split (default ~5000 records each).
        beam_args: options passed to Beam unchanged.
        max_failure_ratio: fail (publishing nothing) when more than this fraction of records cannot
            be decoded; an output with no record always fails.
        test_pipeline: a Beam pipeline to build on (tests pass ``TestPipeline``).

    Returns:
        The step's EmbedResult (also its summary.json).
    """
    from disco.embedders.precision import resolve_precision
    from disco.records import list_shards

    start = time.perf_counter()
    if isinstance(audio_dirs, str):
        audio_dirs = [audio_dirs]
    files = _input_files(audio_dirs)
    in_counts = _count_records(files)
    # Resolved once, here, and sent to the workers: what summary.json records is then what every
    # worker computed in, even where workers run on other hardware than the launcher (pass
    # --precision bfloat16 for GPU workers launched from a CPU without native bfloat16).
    options = embedder_options(
        embedder,
        vggish_handle=vggish_handle,
        vggish_checkpoint=vggish_checkpoint,
        pca_params=pca_params,
        precision=resolve_precision(precision),
    )
    # Built here for its description and to fail fast on unreachable weights; a local worker
    # reuses it, remote workers load their own through the model handler.
    described = _load_embedder(embedder, options).describe()
    log.info(
        "embedding %d records from %d shards with %s (%s)",
        sum(in_counts.values()),
        len(files),
        embedder,
        described["precision"],
    )

    pipeline = test_pipeline or beam.Pipeline(options=pipeline_options(beam_args))
    decoded = (
        pipeline
        | "Shards" >> beam.Create([worker_path(f) for f in files], reshuffle=False)
        | "ReadBatches" >> beam.ParDo(ReadBatches(batch_size)).with_outputs(FAILED_TAG, main=OK_TAG)
    )
    dead = decoded[FAILED_TAG] | "DeadLetter" >> DeadLetter(out_dir)
    written = (
        decoded[OK_TAG]
        # Batches are lists, failures dicts: Beam's DaskRunner mixes a ParDo's outputs (docs/images.md).
        | "OnlyBatches" >> beam.Filter(lambda e: isinstance(e, list))
        | "Embed"
        >> RunInference(EmbedderModelHandler(embedder, options, batch_size, sum(in_counts.values())))
        | "Encode" >> beam.Map(_to_record, described["embedder"], described["embedder_version"])
        | "WriteSplits"
        >> WriteSplits(
            out_dir,
            params.EMBEDDING_PREFIX,
            {split: num_shards or default_num_shards(n) for split, n in in_counts.items()},
        )
    )
    one_leaf([*written.values(), dead])
    pipeline.run().wait_until_finish()
    remove_sink_temp(out_dir)

    # Through fileio, not open(): on Dataflow the workers wrote it, possibly to gs://.
    failures = read_dead_letters(fileio.join(out_dir, params.FAILURES_FILE))
    for f in failures:
        log.warning("could not decode a record (key %s) in %s: %s", f["key"], f["shard"], f["reason"])

    out_files = list_shards(out_dir, params.EMBEDDING_PREFIX)
    out_counts = _count_records(out_files)
    seconds = time.perf_counter() - start
    total = sum(out_counts.values())
    if total + len(failures) != sum(in_counts.values()):
        raise DiscoError(
            f"embed lost records: {sum(in_counts.values())} in, {total} written + {len(failures)} failed"
        )
    return EmbedResult(
        records=total,
        splits=out_counts,
        failed=len(failures),
        failures=failures,
        embedder=described["embedder"],
        embedder_version=described["embedder_version"],
        frames=described["frames"],
        dim=described["dim"],
        precision=described["precision"],
        inputs=list(map(str, audio_dirs)),
        shards=len(out_files),
        batch_size=batch_size,
        seconds=round(seconds, 2),
        clips_per_s=round(total / seconds, 2) if seconds else None,
    )
