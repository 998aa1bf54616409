"""Small file operations on local paths and object stores (``gs://``) alike, for what the Beam
steps write beside their shards (summary.json, run_info.json, failures.jsonl).

Through Beam's FileSystems, the layer the steps' sinks already write with: a step run on Dataflow
writes to ``gs://`` and its side files must land there too, not in a local directory named after
the URI. Local paths behave exactly as plain file I/O.
"""

from __future__ import annotations

import os


def is_remote(path: str | os.PathLike[str]) -> bool:
    return "://" in str(path)


def join(base: str | os.PathLike[str], *parts: str) -> str:
    base = str(base)
    if is_remote(base):
        return "/".join([base.rstrip("/"), *parts])
    return os.path.join(base, *parts)


def makedirs(path: str | os.PathLike[str]) -> None:
    # Object stores have no directories: writing an object under a prefix is enough.
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)


def exists(path: str | os.PathLike[str]) -> bool:
    if not is_remote(path):
        return os.path.exists(path)
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.exists(str(path))


def read_text(path: str | os.PathLike[str]) -> str:
    if not is_remote(path):
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(str(path)) as fh:
        return fh.read().decode("utf-8")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    if not is_remote(path):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(str(path)) as fh:
        fh.write(text.encode("utf-8"))


def glob(pattern: str) -> list[str]:
    if not is_remote(pattern):
        import glob as _glob

        return sorted(_glob.glob(pattern))
    from apache_beam.io.filesystems import FileSystems

    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def open_binary(path: str):
    if not is_remote(path):
        return open(path, "rb")
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.open(path, compression_type="uncompressed")


def size(path: str) -> int:
    if not is_remote(path):
        return os.path.getsize(path)
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
