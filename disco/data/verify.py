"""Check a dataset's audio and VGGish files against md5 lists (the release's ``checksums-*.csv``).

The lists are CSV with a header (the authors' files start ``,md5``) and rows ``sample_key,md5``.
A listed file that is absent is *missing*; one whose md5 differs is *corrupt*; a file present but
not listed is *unlisted* (reported, not a failure: a user may verify a subset).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
from dataclasses import dataclass, field

from disco import params
from disco.data.openmic import OpenMICDataset, audio_relpath, vggish_relpath
from disco.errors import DatasetError

log = logging.getLogger(__name__)

_MD5 = re.compile(r"^[0-9a-f]{32}$")
_PROGRESS_EVERY = 1000


def read_md5_list(path: str | os.PathLike[str], *, text: str | None = None) -> dict[str, str]:
    """``{sample_key: md5}`` from a checksum CSV; malformed rows are a DatasetError with the line."""
    path = str(path)
    if text is None:
        try:
            if os.path.exists(path):
                # A FIFO would block the read forever.
                from disco.inputs import require_regular_file

                require_regular_file(path)
            with open(path, encoding="utf-8-sig") as fh:
                text = fh.read()
        except FileNotFoundError:
            raise DatasetError(path, "md5 list not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(path, f"cannot read md5 list: {exc}") from exc
    out: dict[str, str] = {}
    reader = csv.reader(io.StringIO(text))
    for lineno, row in enumerate(reader, start=1):
        if not row or (lineno == 1 and not _MD5.match(row[-1].strip().lower())):
            continue  # blank line or header
        if len(row) != 2:
            raise DatasetError(path, f"expected 2 columns (sample_key,md5), got {len(row)}", line=lineno)
        key, digest = row[0].strip(), row[1].strip().lower()
        if not key or "/" in key or "\\" in key or key.startswith("."):
            raise DatasetError(path, f"bad sample key {key!r}", line=lineno)
        if not _MD5.match(digest):
            raise DatasetError(path, f"{digest!r} is not an md5 hex digest", line=lineno)
        if key in out:
            raise DatasetError(path, f"duplicate key {key}", line=lineno)
        out[key] = digest
    if not out:
        raise DatasetError(path, "md5 list has no entries")
    return out


@dataclass
class KindReport:
    kind: str  # "audio" | "vggish"
    list_path: str
    listed: int = 0
    checked: int = 0
    ok: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[dict] = field(default_factory=list)  # {key, path, expected, actual|reason}
    unlisted: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.missing and not self.corrupt

    def as_dict(self) -> dict:
        return {
            "list": self.list_path,
            "listed": self.listed,
            "checked": self.checked,
            "ok": self.ok,
            "missing": self.missing,
            "corrupt": self.corrupt,
            "unlisted": self.unlisted,
            "passed": self.passed,
        }


def _present_keys(ds: OpenMICDataset, folder: str, suffix: str) -> set[str]:
    return {
        os.path.basename(rel)[: -len(suffix)] for rel in ds.source.list_files(folder) if rel.endswith(suffix)
    }


def verify_kind(
    ds: OpenMICDataset, kind: str, md5s: dict[str, str], *, list_path: str, present_only: bool = False
) -> KindReport:
    """Hash every listed file of one kind. ``present_only`` skips absent files (for an excerpt)."""
    if kind == "audio":
        folder, suffix, relpath = params.AUDIO_DIR, params.AUDIO_EXTENSION, audio_relpath
    elif kind == "vggish":
        folder, suffix, relpath = params.VGGISH_DIR, ".json", vggish_relpath
    else:
        raise ValueError(f"unknown kind {kind!r}")
    report = KindReport(kind, list_path, listed=len(md5s))
    present = _present_keys(ds, folder, suffix)
    report.unlisted = sorted(present - set(md5s))
    if not present_only:
        report.missing = sorted(set(md5s) - present)
    todo = sorted(present & set(md5s))

    def blobs():
        if kind == "audio":
            yield from ds.iter_audio(todo)  # streams a tarball in one pass
            return
        for key in todo:
            rel = relpath(key)
            try:
                yield key, ds.source.location(rel), ds.source.read_bytes(rel), None
            except DatasetError as exc:
                yield key, ds.source.location(rel), None, exc.reason

    for n, blob in enumerate(blobs(), start=1):
        key, location, data, error = (
            blob if isinstance(blob, tuple) else (blob.key, blob.location, blob.data, blob.error)
        )
        report.checked += 1
        if error is not None:
            report.corrupt.append({"key": key, "path": location, "expected": md5s[key], "reason": error})
        else:
            actual = hashlib.md5(data).hexdigest()
            if actual == md5s[key]:
                report.ok += 1
            else:
                report.corrupt.append({"key": key, "path": location, "expected": md5s[key], "actual": actual})
        if n % _PROGRESS_EVERY == 0:
            log.info("verify %s: %d/%d files hashed", kind, n, len(todo))
    return report


def verify_dataset(
    ds: OpenMICDataset,
    *,
    audio_md5: str | os.PathLike[str] | None = None,
    vggish_md5: str | os.PathLike[str] | None = None,
    present_only: bool = False,
) -> dict[str, KindReport]:
    """Verify against the given lists; a list not given is looked for in the dataset root
    (``checksums-audio.csv`` / ``checksums-vggish.csv``). No list at all is a DatasetError."""
    lists: dict[str, tuple[str, dict[str, str]]] = {}
    defaults = (("audio", audio_md5, params.AUDIO_MD5_FILE), ("vggish", vggish_md5, params.VGGISH_MD5_FILE))
    for kind, given, default in defaults:
        if given is not None:
            lists[kind] = (str(given), read_md5_list(given))
        elif ds.source.exists(default):
            where = ds.source.location(default)
            lists[kind] = (where, read_md5_list(where, text=ds.source.read_text(default)))
    if not lists:
        raise DatasetError(
            ds.uri,
            f"no md5 list: pass --audio-md5/--vggish-md5 (the official lists are {params.AUDIO_MD5_FILE} and "
            f"{params.VGGISH_MD5_FILE} from the dataset authors) or put them in the dataset root",
        )
    return {
        kind: verify_kind(ds, kind, md5s, list_path=path, present_only=present_only)
        for kind, (path, md5s) in lists.items()
    }
