"""What the Beam steps share at their end: the records written per split into sharded TFRecords
(:class:`WriteSplits`) and the failed inputs into a JSON-lines dead-letter file
(:class:`DeadLetter`), both into the step's staging folder (disco.publish)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import apache_beam as beam

from disco import fileio, params

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
        self.path = fileio.join(out_dir, params.FAILURES_FILE)

    def expand(self, failures):
        return (
            failures
            | "Json" >> beam.Map(_json_line)
            | "Write" >> beam.io.WriteToText(self.path, shard_name_template="", num_shards=1)
        )


def _split_index(element: tuple[str, bytes], _n: int) -> int:
    return params.SPLITS.index(element[0])


class WriteSplits(beam.PTransform):
    """``(split, record bytes)`` → ``<prefix>-<split>-SSSSS-of-NNNNN.tfrecord`` in ``out_dir``,
    with ``shards[split]`` files for each split that has records (a split absent from ``shards``
    must not occur)."""

    def __init__(self, out_dir: str, prefix: str, shards: Mapping[str, int]):
        super().__init__()
        self.out_dir = out_dir
        self.prefix = prefix
        self.shards = dict(shards)

    def expand(self, records):
        parts = records | "BySplit" >> beam.Partition(_split_index, len(params.SPLITS))
        written = {}
        for split, part in zip(params.SPLITS, parts):
            if split not in self.shards:
                continue
            written[split] = (
                part
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


def read_dead_letters(path: str) -> list[dict]:
    """The JSON lines of a step's dead-letter file. Beam writes no file for an empty PCollection,
    so a missing one is created empty: an empty dead letter still says "none failed"."""
    if not fileio.exists(path):
        fileio.write_text(path, "")
        return []
    return [json.loads(line) for line in fileio.read_text(path).splitlines() if line.strip()]
