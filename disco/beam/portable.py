"""Graph shapes that every Beam runner executes alike.

Two things the Beam model allows but not every runner honours (docs/images.md, "Beam on Dask"):

- **tagged outputs**: Beam's DaskRunner (2.77) hands *every* output of a multi-output ParDo to
  every consumer. So each consumer of a step's outputs takes only elements of its own shape:
  ``DeadLetter`` failure dicts, ``WriteSplits`` ``(split, bytes)`` pairs of its split (by filters,
  not ``beam.Partition``, itself a multi-output ParDo), embed's model only batches (lists).
- **several leaves**: the DaskRunner computes only the last transform applied; sinks on other
  branches never run. :func:`one_leaf` joins every sink's result into one final transform, so
  finishing the graph means finishing every sink.

And paths go to workers as :func:`worker_path` makes them: a worker process has its own working
directory (and, on a cluster, its own file system), so only absolute paths or URIs mean the same there.
"""

from __future__ import annotations


def worker_path(path) -> str:
    """``path`` as a worker sees it: a URI unchanged, a local path made absolute. A relative path
    handed to a worker would be resolved against the worker's own working directory."""
    import os

    path = str(path)
    return path if "://" in path else os.path.abspath(path)


def one_leaf(sink_results, label: str = "AllSinksDone"):
    """One last transform downstream of every sink's result (apply it after everything else)."""
    import apache_beam as beam

    results = list(sink_results)
    if not results:
        return None
    joined = results[0] if len(results) == 1 else tuple(results) | f"{label}Join" >> beam.Flatten()
    return joined | label >> beam.Map(lambda _: None)
