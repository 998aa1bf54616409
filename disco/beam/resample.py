"""The resample step as a Beam pipeline: every clip of a dataset → mono 16 kHz, 10 s records in
sharded TFRecords per split, with undecodable clips sent to a dead-letter file instead of failing.

An element is every clip of one output shard: the worker decodes them on a pool (spawned
processes or threads: libsndfile and soxr) and writes the shard itself as the records come, so
memory stays flat however many clips there are (docs/resample-augment.md). Everything is written
into a staging folder that is published whole when the step succeeds (disco.publish), so a killed
or failed run leaves the previous output (or none), never a partial one.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam
from apache_beam.metrics import Metrics

from disco import fileio, params
from disco.beam.decoding import ClipTask, decode_in_process, resample_one, start_decoder
from disco.beam.options import is_local, pipeline_options
from disco.beam.portable import one_leaf, worker_path
from disco.beam.progress import Progress
from disco.beam.sinks import (
    FAILED_TAG,
    OK_TAG,
    DeadLetter,
    ShardFile,
    failure,
    read_dead_letters,
    remove_sink_temp,
)
from disco.errors import ConfigError, DiscoError
from disco.publish import publishes
from disco.results import ResampleResult

log = logging.getLogger(__name__)

DEFAULT_BATCH = 16


def default_num_shards(n_records: int) -> int:
    # ~1000 clips (about 320 MB of PCM) per shard keeps shards big enough for throughput and
    # numerous enough for parallel readers.
    return max(1, min(64, -(-n_records // 1000)))


class ResampleShards(beam.DoFn):
    """A group of clips (:class:`ClipTask`, with their shard file name) → their records written
    straight into their shard files (:class:`ShardFile`), ``(split, shard name, records)`` on the
    main output for each shard finished, and a failure dict on FAILED_TAG for each clip that
    cannot be decoded.

    Every clip of a shard is in one element, so the shard is written whole inside one ``process``
    call: records never travel through Beam (no per-record element, no grouping that a local
    runner holds in memory), memory holds the clips in flight in the decode pool, not the
    output, and nothing is left to ``finish_bundle``, whose outputs Beam's DaskRunner drops.
    Clips are decoded by a pool (threads or spawned processes) ``window`` at a time, written in
    order as they finish."""

    def __init__(
        self, data_uri: str, out_dir: str, threads: int, total: int, window: int, pool: str = "thread"
    ):
        self.data_uri = data_uri
        self.out_dir = out_dir
        self.threads = threads
        self.total = total
        self.window = max(window, threads)
        self.pool_kind = pool

    def setup(self):
        from disco.data.openmic import open_dataset
        from disco.data.storage import TarSource

        self.ds = open_dataset(self.data_uri)
        self.is_tar = isinstance(self.ds.source, TarSource)
        if self.pool_kind == "process":
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: the worker holds gRPC and Beam threads that a fork would copy
            # mid-state. Each process opens the dataset once; a tarball's bytes come from here.
            self.pool = ProcessPoolExecutor(
                self.threads,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=start_decoder,
                initargs=(None if self.is_tar else self.data_uri,),
            )
        else:
            self.pool = ThreadPoolExecutor(self.threads)
        self.ok = {s: Metrics.counter("resample", f"ok_{s}") for s in params.SPLITS}
        self.failed = Metrics.counter("resample", "failed")
        self.progress = Progress("resample", total=self.total)

    def _jobs(self, clips):
        """(clip, audio bytes or None, error or None), lazily: a tarball is streamed in one pass."""
        if self.is_tar:
            info = {c.key: c for c in clips}
            for b in self.ds.iter_audio(info):
                yield info[b.key], b.data, b.error
        else:
            for c in clips:
                yield c, None, None

    def _submit(self, clip: ClipTask, data, error):
        if self.pool_kind == "process":
            location = self.ds.audio_path(clip.key)
            return self.pool.submit(decode_in_process, clip, data, error, location)
        return self.pool.submit(resample_one, self.ds, clip, data, error)

    def _decoded(self, clips):
        pending: deque = deque()
        for clip, data, error in self._jobs(clips):
            pending.append((clip, self._submit(clip, data, error)))
            if len(pending) >= self.window:
                clip, fut = pending.popleft()
                yield clip, *fut.result()
        while pending:
            clip, fut = pending.popleft()
            yield clip, *fut.result()

    def process(self, clips):
        remaining = Counter(c.shard for c in clips)
        writers: dict[str, ShardFile] = {}
        try:
            for clip, encoded, failed in self._decoded(clips):
                split, shard = clip.split, clip.shard
                if shard not in writers:
                    writers[shard] = ShardFile(fileio.join(self.out_dir, shard))
                self.progress.add()
                if failed is None:
                    writers[shard].write(encoded)
                    self.ok[split].inc()
                else:
                    self.failed.inc()
                    yield failure(**failed)
                remaining[shard] -= 1
                if remaining[shard] == 0:
                    writers[shard].close()
                    yield split, shard, writers.pop(shard).count
        except BaseException:
            for w in writers.values():
                w.abort()
            raise

    def teardown(self):
        self.pool.shutdown()


def decode_pool(pool: str, threads: int, beam_args: Sequence[str] = ()) -> str:
    """The decoders' kind for ``pool`` (``auto``, ``process`` or ``thread``): ``auto`` is processes
    on the local runner with more than ``params.THREAD_DECODERS_MAX`` decoders, else threads."""
    if pool == "auto":
        return "process" if is_local(beam_args) and threads > params.THREAD_DECODERS_MAX else "thread"
    if pool not in ("process", "thread"):
        raise ConfigError(f"pool {pool!r}: expected auto, process or thread")
    return pool


def shard_groups(
    clips: Sequence[ClipTask], shards: dict[str, int], prefix: str, whole: bool
) -> list[list[ClipTask]]:
    """Each clip with the name of its shard set, grouped one
    shard per element (``whole``: all in one element, for a tarball read in one pass). The k-th of
    a split's n clips goes to shard ``k * shards[split] // n``: contiguous, even, and the same on
    every run and runner."""
    from disco.records import shard_name

    by_split: dict[str, list[ClipTask]] = {}
    for c in clips:
        by_split.setdefault(c.split, []).append(c)
    groups: dict[str, list[ClipTask]] = {}
    for split, members in by_split.items():
        total = shards[split]
        for k, c in enumerate(members):
            name = shard_name(f"{prefix}-{split}", k * total // len(members), total)
            groups.setdefault(name, []).append(c._replace(shard=name))
    ordered = [groups[n] for n in sorted(groups)]
    return [[c for g in ordered for c in g]] if whole else ordered


def _complete_shards(out_dir: str, shards: dict[str, int], groups: list[list[ClipTask]]) -> None:
    """Every shard of every split is there once the pipeline has finished. A split that asked for
    more shards than it has clips gets the shards no clip was assigned to written empty, so the set
    is whole (``-of-NNNNN`` as asked), as Beam's sinks did; a shard that had clips and is missing
    (a runner that lost a task without failing) is an error naming it."""
    from disco.records import shard_name

    assigned = {c.shard for g in groups for c in g}
    present = set(fileio.list_names(out_dir))
    for split, total in shards.items():
        for i in range(total):
            name = shard_name(f"{params.RESAMPLED_PREFIX}-{split}", i, total)
            if name not in assigned and name not in present:
                ShardFile(fileio.join(out_dir, name)).close()
            elif name not in present:
                raise DiscoError(f"{fileio.join(out_dir, name)}: not written, though the pipeline finished")


def _ok_counts(result, planned: dict[str, int], failures: list[dict]) -> dict[str, int]:
    try:
        counts = {s: 0 for s in params.SPLITS}
        for c in result.metrics().query()["counters"]:
            name = c.key.metric.name
            if name.startswith("ok_"):
                counts[name[3:]] += int(c.committed or c.attempted or 0)
        return counts
    except Exception:  # some runners do not report metrics; fall back to the plan minus failures
        return {s: planned[s] - sum(f["split"] == s for f in failures) for s in params.SPLITS}


@publishes("resample")
def run_resample(
    data_uri: str,
    out_dir: str,
    *,
    seed: int = params.DEFAULT_SEED,
    validation_fraction: float = params.DEFAULT_VALIDATION_FRACTION,
    num_shards: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    threads: int | None = None,
    pool: str = "auto",
    beam_args: Sequence[str] = (),
    max_failure_ratio: float = params.DEFAULT_MAX_FAILURE_RATIO,
    test_pipeline: beam.Pipeline | None = None,
) -> ResampleResult:
    """Resample every clip of a dataset into sharded TFRecords per split.

    Args:
        data_uri: the dataset (``openmic-2018/`` folder, release ``.tgz`` or ``gs://`` prefix).
        out_dir: the output folder (local or ``gs://``); published whole or not at all.
        seed, validation_fraction: the artist-grouped validation split carved from train.
        num_shards: shards per split (default about 1000 clips each).
        batch_size: clips in flight in a worker's decode pool; threads: parallel decoders per worker.
        pool: ``process`` (``threads`` spawned processes) or ``thread``. Threads share the GIL,
            which the decode leaves for most of a clip, and save handing records between
            processes: faster on 2 cores (make bench-resample), while what stays under the GIL
            limits them as cores are added. ``auto`` (:func:`decode_pool`): processes on the
            local runner with more than ``params.THREAD_DECODERS_MAX`` decoders, else threads
            (which also suit runners that already run one worker per core: Dataflow, Flink, Dask).
        beam_args: options passed to Beam unchanged.
        max_failure_ratio: fail (publishing nothing) when more than this fraction of clips fails;
            an output with no clip always fails.
        test_pipeline: a Beam pipeline to build on (tests pass ``TestPipeline``).

    Returns:
        The step's ResampleResult (also its summary.json).
    """
    from disco.data.openmic import open_dataset
    from disco.data.storage import TarSource
    from disco.records import clip_group

    start = time.perf_counter()
    ds = open_dataset(data_uri)
    clips = ds.clips(validation_fraction=validation_fraction, seed=seed)
    threads = threads or os.cpu_count() or 1
    pool = decode_pool(pool, threads, beam_args)
    items = [
        ClipTask(c.key, c.split, c.y_true.tolist(), c.y_mask.tolist(), clip_group(c.key, c.artist_id))
        for c in clips
    ]
    per_split = {s: sum(c.split == s for c in clips) for s in params.SPLITS}
    shards = {s: num_shards or default_num_shards(n) for s, n in per_split.items() if n}
    groups = shard_groups(items, shards, params.RESAMPLED_PREFIX, whole=isinstance(ds.source, TarSource))
    log.info(
        "resampling %d clips from %s (%s) with %d decode %ses",
        len(items),
        ds.uri,
        ", ".join(f"{s} {n}" for s, n in per_split.items()),
        threads,
        pool,
    )

    pipeline = test_pipeline or beam.Pipeline(options=pipeline_options(beam_args))
    results = (
        pipeline
        | "Shards" >> beam.Create(groups, reshuffle=False)
        | "ResampleWrite"
        >> beam.ParDo(
            ResampleShards(worker_path(data_uri), worker_path(out_dir), threads, len(items), batch_size, pool)
        ).with_outputs(FAILED_TAG, main=OK_TAG)
    )
    dead = results[FAILED_TAG] | "DeadLetter" >> DeadLetter(out_dir)
    one_leaf([results[OK_TAG], dead])
    result = pipeline.run()
    result.wait_until_finish()
    remove_sink_temp(out_dir)
    _complete_shards(out_dir, shards, groups)

    failures = read_dead_letters(fileio.join(out_dir, params.FAILURES_FILE))
    counts = _ok_counts(result, per_split, failures)
    for f in failures:
        log.warning("could not decode %s: %s", f["path"], f["reason"])
    seconds = time.perf_counter() - start
    summary = ResampleResult(
        dataset=ds.uri,
        clips=len(items),
        ok=sum(counts.values()),
        failed=len(failures),
        failures=failures,
        splits=counts,
        shards=shards,
        seconds=round(seconds, 2),
        clips_per_s=round(len(items) / seconds, 2) if seconds else None,
    )
    if summary.ok + summary.failed != len(items):
        raise DiscoError(
            f"resample lost clips: {len(items)} in, {summary.ok} written + {summary.failed} failed"
        )
    return summary
