"""Files the Beam steps keep beside their shards: the dead-letter file, and the temporary
directories of Beam's file sink."""

from __future__ import annotations

import json
import logging
import os

from disco import fileio

log = logging.getLogger(__name__)


def read_dead_letters(path: str) -> list[dict]:
    """The JSON lines of a step's dead-letter file. Beam writes no file for an empty PCollection,
    so a missing one is created empty: an empty dead letter still says "none failed"."""
    if not fileio.exists(path):
        fileio.write_text(path, "")
        return []
    return [json.loads(line) for line in fileio.read_text(path).splitlines() if line.strip()]


def remove_stale_temp(out_dir: str, *, after_success: bool = False) -> list[str]:
    """Delete Beam file-sink temporary directories that a killed run left in ``out_dir``.

    Shards only reach their final names at finalisation, so these never hold readable output;
    left alone they would pile up (hundreds of MB of partial audio) with every interrupted run.
    ``after_success``: called once the pipeline finished, when any directory still there is one a
    runner's finalisation did not clean (Beam's DaskRunner re-runs a sink's set-up for each side
    input that reads it, docs/images.md). Local directories only: on object stores the runner's
    own cleanup applies."""
    import glob
    import shutil

    stale = [] if fileio.is_remote(out_dir) else sorted(glob.glob(os.path.join(out_dir, "beam-temp-*")))
    for path in stale:
        if after_success:
            log.info("removing %s, left by the runner's sink finalisation", path)
        else:
            log.warning("removing %s, left by an interrupted run", path)
        shutil.rmtree(path, ignore_errors=True)
    return stale
