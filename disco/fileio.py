"""Small file operations on local paths and object stores (``gs://``) alike, for what the Beam
steps write beside their shards (summary.json, run_info.json, failures.jsonl).

Through Beam's FileSystems, the layer the steps' sinks already write with: a step run on Dataflow
writes to ``gs://`` and its side files must land there too, not in a local directory named after
the URI. Local paths behave as plain file I/O, except that write_text replaces a file whole.
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
        # Beside the file, renamed over it when whole: a reader never sees half a summary, and a
        # full disk leaves the old file (or none), not a truncated one.
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(str(path)) as fh:
        fh.write(text.encode("utf-8"))


def copy_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy a local file whole: to a temporary name beside dst, renamed over it."""
    import shutil

    tmp = f"{dst}.tmp-{os.getpid()}"
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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


def escape_glob(path: str) -> str:
    """``path`` as a literal in a glob pattern: a folder named ``exp[1]`` is a character class to
    both Python's glob and Beam's FileSystems.match, so a pattern built on it matched nothing."""
    import glob as _glob

    return _glob.escape(str(path))


def list_names(directory: str | os.PathLike[str]) -> list[str]:
    """The names of the files directly under ``directory`` (local or object store), sorted; [] when
    it does not exist. No pattern is built from ``directory``, so any character in it is literal."""
    directory = str(directory)
    if not is_remote(directory):
        try:
            return sorted(os.listdir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return []
    from apache_beam.io.filesystems import FileSystems

    base = directory.rstrip("/") + "/"
    found = FileSystems.match([escape_glob(base) + "*"])[0].metadata_list
    return sorted(m.path[len(base) :] for m in found if "/" not in m.path[len(base) :])


def remove(path: str | os.PathLike[str]) -> None:
    """Delete one file; a missing one is not an error."""
    if not is_remote(path):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        return
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(str(path)):
        return
    if str(path).startswith("gs://"):
        from apache_beam.io.gcp.gcsio import GcsIO

        # One object, one request: FileSystems.delete goes through GCS's batch API, which
        # emulators (and the steps' few files) do without.
        GcsIO().delete(str(path))
        return
    FileSystems.delete([str(path)])


def rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Move one file over ``dst``: locally in one rename; on GCS a server-side copy, then the
    delete (the object at ``dst`` appears whole, and only once the copy is done)."""
    if not is_remote(src):
        os.replace(src, dst)
        return
    if str(src).startswith("gs://"):
        from apache_beam.io.gcp.gcsio import GcsIO

        # One object, one request each, as in remove(): FileSystems.rename uses the batch API.
        GcsIO().rename(str(src), str(dst))
        return
    from apache_beam.io.filesystems import FileSystems

    FileSystems.rename([str(src)], [str(dst)])


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Delete a folder (an object store: every object under the prefix); missing is not an error."""
    if not is_remote(path):
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        return
    from apache_beam.io.filesystems import FileSystems

    base = str(path).rstrip("/")
    for m in FileSystems.match([escape_glob(base) + "/**"])[0].metadata_list:
        remove(m.path)
