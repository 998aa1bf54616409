"""Where a dataset's bytes come from: a local directory, a release tarball, or a ``gs://`` prefix.

Each source answers the same three questions (does this relative path exist, read its bytes, list
what lies under a folder), so the OpenMIC reader above it never cares where it runs. Relative paths
are checked before use: a key such as ``../../etc/passwd`` in a CSV must not reach outside the
dataset root.
"""

from __future__ import annotations

import logging
import os
import posixpath
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from disco import params
from disco.errors import DatasetError

log = logging.getLogger(__name__)

GCS_SCHEME = "gs://"


def is_gcs(uri: str) -> bool:
    return str(uri).startswith(GCS_SCHEME)


def split_gcs(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` → ``("bucket", "a/b")``."""
    rest = str(uri)[len(GCS_SCHEME) :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise DatasetError(uri, "a gs:// URI needs a bucket name")
    return bucket, prefix.strip("/")


def missing_credentials() -> str | None:
    """Why there are no usable Google credentials, or None. The emulator needs none. Off Google
    Cloud, google-auth's probe of the GCE metadata server only costs timeouts, so it is skipped
    where the machine says it is not a Google VM."""
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        return None
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    skip_probe = _off_google_cloud() and "NO_GCE_CHECK" not in os.environ
    if skip_probe:
        os.environ["NO_GCE_CHECK"] = "True"
    try:
        google.auth.default()
    except DefaultCredentialsError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"no Google Cloud credentials ({first})"
    finally:
        if skip_probe:
            del os.environ["NO_GCE_CHECK"]
    return None


def _off_google_cloud() -> bool:
    # Google's VMs (GCE, GKE nodes, Vertex workers) name themselves in the BIOS product string.
    # Where it cannot be read, nothing is assumed and google-auth probes as usual.
    if os.environ.get("GCE_METADATA_HOST") or os.environ.get("GCE_METADATA_IP"):
        return False
    try:
        with open("/sys/class/dmi/id/product_name", encoding="utf-8") as fh:
            return "Google" not in fh.read()
    except OSError:
        return False


def gcs_client(uri: str | None = None):
    """A google-cloud-storage client. ``STORAGE_EMULATOR_HOST`` (honoured by the client itself)
    points it at an emulator; there it needs no credentials. Elsewhere missing credentials are a
    DatasetError naming ``uri`` at once, not a traceback from the first request."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project="disco-emulated", credentials=AnonymousCredentials())
    reason = missing_credentials()
    if reason:
        raise DatasetError(uri or GCS_SCHEME, reason)
    return storage.Client()


def list_gcs_objects(uri: str) -> list[tuple[str, int, float]]:
    """``(path after uri, size, update time in seconds)`` of the object ``uri`` and of every object
    under ``uri/``, with each page request bounded (params.GCS_LIST_TIMEOUT_S per request, retries
    for params.GCS_LIST_DEADLINE_S): an unreachable endpoint is a DatasetError in seconds, not
    minutes of the client's default retries."""
    from google.api_core import exceptions as gexc
    from google.cloud.storage.retry import DEFAULT_RETRY

    bucket, name = split_gcs(uri)
    client = gcs_client(uri)
    retry = DEFAULT_RETRY.with_timeout(params.GCS_LIST_DEADLINE_S)
    found = []
    try:
        # The prefix without "/" also lists ``name`` itself (a tarball); siblings such as
        # ``name-2/`` that it matches too are dropped below.
        for blob in client.list_blobs(bucket, prefix=name, timeout=params.GCS_LIST_TIMEOUT_S, retry=retry):
            rest = blob.name[len(name) :]
            if name and rest and not rest.startswith("/"):
                continue
            updated = blob.updated.timestamp() if blob.updated is not None else 0.0
            found.append((rest if name else "/" + rest, int(blob.size or 0), updated))
    except (gexc.GoogleAPICallError, gexc.RetryError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError(uri, f"cannot list: {first}") from exc
    return found


def safe_relpath(rel: str, *, source: str) -> str:
    """Normalise a dataset-relative path, refusing anything that would escape the root."""
    norm = posixpath.normpath(str(rel).replace("\\", "/"))
    if norm.startswith("/") or norm == ".." or norm.startswith("../") or "/../" in norm:
        raise DatasetError(source, f"path {rel!r} would escape the dataset root")
    return norm


class Source:
    """Read-only view of a dataset root."""

    uri: str

    def exists(self, rel: str) -> bool:
        raise NotImplementedError

    def read_bytes(self, rel: str) -> bytes:
        raise NotImplementedError

    def list_files(self, rel_dir: str) -> list[str]:
        """Relative paths of all files below ``rel_dir`` (recursively)."""
        raise NotImplementedError

    def location(self, rel: str) -> str:
        return f"{self.uri.rstrip('/')}/{rel}"

    def read_text(self, rel: str) -> str:
        try:
            # utf-8-sig: a CSV saved by a spreadsheet starts with a byte-order mark, which would
            # otherwise become part of the first header name.
            return self.read_bytes(rel).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DatasetError(self.location(rel), f"not UTF-8 text: {exc}") from exc

    def local_path(self, rel: str) -> str | None:
        """A filesystem path for ``rel`` where one exists (lets numpy memory-map the npz)."""
        return None


class DirSource(Source):
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.uri = str(self.root)
        if not self.root.is_dir():
            raise DatasetError(self.root, "dataset directory does not exist")

    def _path(self, rel: str) -> Path:
        return self.root / safe_relpath(rel, source=self.uri)

    def exists(self, rel: str) -> bool:
        return self._path(rel).is_file()

    def read_bytes(self, rel: str) -> bytes:
        path = self._path(rel)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise DatasetError(path, "file not found") from None
        except OSError as exc:
            raise DatasetError(path, f"cannot read: {exc.strerror or exc}") from exc

    def list_files(self, rel_dir: str) -> list[str]:
        base = self._path(rel_dir)
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def location(self, rel: str) -> str:
        return str(self._path(rel))

    def local_path(self, rel: str) -> str | None:
        path = self._path(rel)
        return str(path) if path.is_file() else None


class TarSource(Source):
    """The release tarball read in place. One pass over the (gzip) stream builds an index of the
    members; the small CSV/JSON files are kept in memory, audio is read back by member on demand
    (sequentially in member order by ``iter_members``, which is what resample does)."""

    # Anything at most this size is cached during indexing: labels, metadata, partitions, JSON.
    _CACHE_BYTES = 64 * 1024 * 1024

    def __init__(self, path: str | os.PathLike[str], *, uri: str | None = None):
        self.path = str(path)
        self.uri = uri or self.path
        self._lock = threading.Lock()
        self._members: dict[str, tarfile.TarInfo] = {}
        self._cache: dict[str, bytes] = {}
        self._root_prefix = ""
        self._index()

    def _open(self) -> tarfile.TarFile:
        try:
            return tarfile.open(self.path, mode="r:*")
        except (tarfile.TarError, OSError, EOFError) as exc:
            # tarfile lists every compression it tried, one per line: the first line is the gist.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatasetError(self.uri, f"not a readable tar archive: {first.rstrip(':')}") from exc

    def _index(self) -> None:
        names: dict[str, tarfile.TarInfo] = {}
        try:
            with self._open() as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    names[member.name] = member
                    small = not member.name.endswith(params.AUDIO_EXTENSION)
                    if small and member.size <= self._CACHE_BYTES:
                        handle = tar.extractfile(member)
                        if handle is not None:
                            self._cache[member.name] = handle.read()
        except (tarfile.TarError, EOFError, OSError, __import__("zlib").error) as exc:
            raise DatasetError(self.uri, f"truncated or corrupt tar archive ({exc}); re-download it") from exc
        # The release puts everything under openmic-2018/; accept a tarball without that root too.
        root = params.RELEASE_ROOT_NAME + "/"
        if any(n.startswith(root) for n in names):
            self._root_prefix = root
        self._members = names
        log.info("indexed %s: %d files", self.uri, len(names))

    def _name(self, rel: str) -> str:
        return self._root_prefix + safe_relpath(rel, source=self.uri)

    def exists(self, rel: str) -> bool:
        return self._name(rel) in self._members

    def read_bytes(self, rel: str) -> bytes:
        name = self._name(rel)
        if name in self._cache:
            return self._cache[name]
        member = self._members.get(name)
        if member is None:
            raise DatasetError(self.location(rel), "file not found in the tarball")
        with self._lock, self._open() as tar:
            handle = tar.extractfile(member)
            if handle is None:
                raise DatasetError(self.location(rel), "tar member is not a regular file")
            return handle.read()

    def iter_members(self, rels: set[str]) -> Iterator[tuple[str, bytes | None, str | None]]:
        """Stream the wanted members in archive order (one decompression pass)."""
        wanted = {self._name(r): r for r in rels}
        seen = set()
        try:
            with self._open() as tar:
                for member in tar:
                    rel = wanted.get(member.name)
                    if rel is None:
                        continue
                    handle = tar.extractfile(member)
                    seen.add(member.name)
                    if handle is None:
                        yield rel, None, "tar member is not a regular file"
                    else:
                        yield rel, handle.read(), None
        except (tarfile.TarError, EOFError, OSError) as exc:
            for name, rel in wanted.items():
                if name not in seen:
                    seen.add(name)
                    yield rel, None, f"unreadable: tar archive is truncated or corrupt ({exc})"
        for name, rel in wanted.items():
            if name not in seen:
                yield rel, None, "file not found in the tarball"

    def list_files(self, rel_dir: str) -> list[str]:
        prefix = self._name(rel_dir).rstrip("/") + "/"
        n = len(self._root_prefix)
        return sorted(name[n:] for name in self._members if name.startswith(prefix))

    def location(self, rel: str) -> str:
        return f"{self.uri}!{self._name(rel)}"


class GCSSource(Source):
    def __init__(self, uri: str, *, client=None):
        self.uri = uri.rstrip("/")
        self.bucket_name, self.prefix = split_gcs(uri)
        self._client = client
        self._bucket = None

    @property
    def bucket(self):
        if self._bucket is None:
            self._client = self._client or gcs_client(self.uri)
            self._bucket = self._client.bucket(self.bucket_name)
        return self._bucket

    def _blob_name(self, rel: str) -> str:
        rel = safe_relpath(rel, source=self.uri)
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def exists(self, rel: str) -> bool:
        return self.bucket.blob(self._blob_name(rel)).exists()

    def read_bytes(self, rel: str) -> bytes:
        from google.api_core import exceptions as gexc

        try:
            return self.bucket.blob(self._blob_name(rel)).download_as_bytes()
        except gexc.NotFound:
            raise DatasetError(self.location(rel), "object not found") from None
        except gexc.GoogleAPIError as exc:
            raise DatasetError(self.location(rel), f"cannot read: {exc}") from exc

    def list_files(self, rel_dir: str) -> list[str]:
        base = self._blob_name(rel_dir).rstrip("/") + "/"
        n = len(self.prefix) + 1 if self.prefix else 0
        return sorted(b.name[n:] for b in self._client_list(base))

    def _client_list(self, prefix: str):
        _ = self.bucket  # creates the client
        return self._client.list_blobs(self.bucket_name, prefix=prefix)


def download_gcs_file(uri: str, dest_dir: str | os.PathLike[str] | None = None) -> str:
    """Copy one gs:// object to a local file (a tarball must be seekable to be indexed)."""
    from google.api_core import exceptions as gexc

    bucket, name = split_gcs(uri)
    client = gcs_client(uri)
    dest_dir = dest_dir or tempfile.mkdtemp(prefix="disco-gcs-")
    dest = Path(dest_dir) / posixpath.basename(name)
    log.info("downloading %s → %s", uri, dest)
    try:
        client.bucket(bucket).blob(name).download_to_filename(str(dest))
    except gexc.NotFound:
        raise DatasetError(uri, "object not found") from None
    return str(dest)


def upload_dir(local_dir: str | os.PathLike[str], uri: str, *, client=None) -> int:
    """Copy a local directory tree to a gs:// prefix; returns the number of files."""
    bucket_name, prefix = split_gcs(uri)
    client = client or gcs_client(uri)
    bucket = client.bucket(bucket_name)
    count = 0
    root = Path(local_dir)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            rel = path.relative_to(root).as_posix()
            bucket.blob(f"{prefix}/{rel}" if prefix else rel).upload_from_filename(str(path))
            count += 1
    return count


def open_source(uri: str | os.PathLike[str]) -> Source:
    uri = str(uri)
    if is_gcs(uri):
        if uri.endswith((".tgz", ".tar.gz", ".tar")):
            return TarSource(download_gcs_file(uri), uri=uri)
        return GCSSource(uri)
    path = Path(uri)
    if path.is_file():
        return TarSource(path)
    if path.is_dir():
        # Users may point at the folder that holds openmic-2018/ rather than at it.
        inner = path / params.RELEASE_ROOT_NAME
        if not (path / params.AGGREGATED_LABELS_FILE).exists() and inner.is_dir():
            return DirSource(inner)
        return DirSource(path)
    raise DatasetError(uri, "no such dataset directory, tarball or gs:// prefix")
