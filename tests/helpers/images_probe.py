"""A tiny KFP component for the image test (no `from __future__ import annotations`: KFP reads
the real annotation objects)."""

from kfp.dsl import Dataset, Output


def probe(n: int, out: Output[Dataset]) -> int:
    """Imports what every step imports and reports versions and uid from inside the image."""
    import os

    import apache_beam
    import tensorflow as tf

    import disco

    os.makedirs(out.path, exist_ok=True)
    with open(os.path.join(out.path, "probe.txt"), "w") as fh:
        fh.write(f"{disco.__version__} {tf.__version__} {apache_beam.__version__} {os.getuid()}")
    return n * 2
