"""The identity of a dataset's content, for cache keys.

A pipeline cache (kfp.local's, a KFP cluster's, Vertex's) keys a step by its arguments; the
dataset is an argument only by its URI, so a dataset regenerated or updated at the same URI would
be served the old results. :func:`dataset_fingerprint` is a digest of the file list under the URI
with each file's size and modification time (object stores: size and update time), cheap enough
to compute before every run (a stat per file, no content read). It is passed to the steps that read
the dataset as the ``data_fingerprint`` pipeline parameter, so a changed dataset changes their
cache key and everything downstream re-runs.
"""

from __future__ import annotations

import hashlib
import os

from disco import fileio
from disco.data.storage import is_gcs, list_gcs_objects
from disco.errors import DatasetError


def dataset_fingerprint(uri: str | os.PathLike[str]) -> str:
    """A 16-hex-digit digest of (relative path, size, mtime) of every file under ``uri`` (a folder,
    a release ``.tgz`` or a ``gs://`` prefix)."""
    uri = str(uri)
    entries: list[tuple[str, int, float]] = []
    if is_gcs(uri):
        # The storage layer's bounded listing, not Beam's FileSystems.match: Beam retries an
        # unreachable endpoint for minutes, and a glob on the bare prefix also matches siblings
        # (``data`` would list ``data-old/``).
        entries.extend(list_gcs_objects(uri.rstrip("/")))
    elif fileio.is_remote(uri):  # another object store Beam knows (s3://, ...)
        from apache_beam.io.filesystems import FileSystems

        base = uri.rstrip("/")
        matched = FileSystems.match([fileio.escape_glob(base) + "**"])[0].metadata_list
        for m in matched:
            entries.append((m.path[len(base) :], m.size_in_bytes, float(m.last_updated_in_seconds or 0)))
    elif os.path.isfile(uri):
        st = os.stat(uri)
        entries.append((os.path.basename(uri), st.st_size, st.st_mtime_ns))
    elif os.path.isdir(uri):
        # Linked folders are followed (resample reads through them: audio -> /bigdisk/audio), each
        # real folder once, so a loop of links ends.
        seen: set[tuple[int, int]] = set()
        for root, dirs, files in os.walk(uri, followlinks=True):
            st = os.stat(root)
            if (st.st_dev, st.st_ino) in seen:
                dirs[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                st = os.stat(path)
                entries.append((os.path.relpath(path, uri), st.st_size, st.st_mtime_ns))
    else:
        raise DatasetError(uri, "dataset not found")
    digest = hashlib.sha256()
    for rel, size, mtime in sorted(entries):
        digest.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()[:16]
