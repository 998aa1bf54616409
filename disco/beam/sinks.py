"""What the Beam steps share at their end: the records written per split into sharded TFRecords
(:class:`WriteSplits`) and the failed inputs into a JSON-lines dead-letter file
(:class:`DeadLetter`), both into the step's staging folder (disco.publish)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import apache_beam as beam

from disco import fileio, params
from disco.beam.portable import worker_path

OK_TAG = "ok"
FAILED_TAG = "failed"  # the dead-letter output of every step's decoding DoFn


def failure(**fields: Any) -> beam.pvalue.TaggedOutput:
    """A failed input as the DoFn's FAILED_TAG output: always tagged, so no runner can mistake a
    dead letter for a record (the main output carries records only)."""
    return beam.pvalue.TaggedOutput(FAILED_TAG, dict(fields))


def _json_line(item: Mapping[str, Any]) -> str:
    return json.dumps(dict(item), sort_keys=True)


class DeadLetter(beam.PTransform):
    """Failure dicts → ``failures.jsonl`` (one JSON object a line) in ``out_dir``."""

    def __init__(self, out_dir: str):
        super().__init__()
        self.path = fileio.join(worker_path(out_dir), params.FAILURES_FILE)

    def expand(self, failures):
        return (
            failures
            # Failures are dicts, records never are. Beam's DaskRunner hands every output of a
            # multi-output ParDo to every consumer (docs/images.md): only the dicts are ours.
            | "OnlyFailures" >> beam.Filter(lambda e: isinstance(e, dict))
            | "Json" >> beam.Map(_json_line)
            | "Write" >> beam.io.WriteToText(self.path, shard_name_template="", num_shards=1)
        )


def _in_split(element, split: str) -> bool:
    return isinstance(element, tuple) and len(element) == 2 and element[0] == split


class WriteSplits(beam.PTransform):
    """``(split, record bytes)`` → ``<prefix>-<split>-SSSSS-of-NNNNN.tfrecord`` in ``out_dir``,
    with ``shards[split]`` files for each split that has records (a split absent from ``shards``
    must not occur)."""

    def __init__(self, out_dir: str, prefix: str, shards: Mapping[str, int]):
        super().__init__()
        self.out_dir = worker_path(out_dir)
        self.prefix = prefix
        self.shards = dict(shards)

    def expand(self, records):
        # Filters, not beam.Partition: Partition is a multi-output ParDo, whose outputs Beam's
        # DaskRunner does not keep apart; the filters also drop failure dicts mixed in there.
        written = {}
        for split in params.SPLITS:
            if split not in self.shards:
                continue
            written[split] = (
                records
                | f"Only{split}" >> beam.Filter(_in_split, split)
                | f"Bytes{split}" >> beam.Values()
                | f"Write{split}"
                >> beam.io.WriteToTFRecord(
                    fileio.join(self.out_dir, f"{self.prefix}-{split}"),
                    file_name_suffix=params.TFRECORD_SUFFIX,
                    num_shards=self.shards[split],
                    shard_name_template="-SSSSS-of-NNNNN",
                )
            )
        return written


PARTIAL_MARK = ".partial-"  # <shard>.partial-<random>: a ShardFile being written


class ShardFile:
    """One TFRecord shard written by the DoFn that makes its records, a record at a time (memory
    holds one record, not the shard, on every runner), under ``<path>.partial-<random>`` and
    renamed to ``path`` when whole. A retried bundle writes the same name again and replaces the
    first attempt's file, so the shard ends up whole and once; partial files of failed attempts
    are removed by :func:`remove_sink_temp`. On an object store too: an upload left open is
    completed whenever its writer is garbage-collected, so an aborted shard written under its
    final name would appear there later, partial (or replace a retry's whole one)."""

    def __init__(self, path: str):
        import uuid

        self.path = path
        self.count = 0
        self.remote = fileio.is_remote(path)
        self._tmp = f"{path}{PARTIAL_MARK}{uuid.uuid4().hex[:8]}"
        if self.remote:
            from apache_beam.io.filesystems import CompressionTypes, FileSystems

            self._fh = FileSystems.create(self._tmp, compression_type=CompressionTypes.UNCOMPRESSED)
        else:
            self._fh = open(self._tmp, "wb")  # closed by close() or abort()

    def write(self, record: bytes) -> None:
        from disco.records import frame_tfrecord

        self._fh.write(frame_tfrecord(record))
        self.count += 1

    def close(self) -> None:
        self._fh.close()
        fileio.rename(self._tmp, self.path)

    def abort(self) -> None:
        self._fh.close()
        fileio.remove(self._tmp)


def read_dead_letters(path: str) -> list[dict]:
    """The JSON lines of a step's dead-letter file. Beam writes no file for an empty PCollection,
    so a missing one is created empty: an empty dead letter still says "none failed"."""
    if not fileio.exists(path):
        fileio.write_text(path, "")
        return []
    return [json.loads(line) for line in fileio.read_text(path).splitlines() if line.strip()]


def remove_sink_temp(directory: str) -> list[str]:
    """Delete what writers left in ``directory`` once the pipeline has finished: the partial files
    of :class:`ShardFile` attempts that failed and were retried, and Beam file-sink temporary
    directories. Beam's DaskRunner re-runs a sink's set-up for each side input that reads it, and
    the sink's finalisation removes only the one it used (docs/images.md); left in the staging
    folder, the others would be published with the output. Beam's temporary directories are
    removed from local folders only: on object stores the runner's own cleanup applies."""
    import glob
    import os
    import shutil

    partial = sorted(fileio.join(directory, n) for n in fileio.list_names(directory) if PARTIAL_MARK in n)
    for path in partial:
        fileio.remove(path)
    stale = (
        []
        if fileio.is_remote(directory)
        else sorted(glob.glob(os.path.join(glob.escape(directory), "beam-temp-*")))
    )
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return partial + stale
