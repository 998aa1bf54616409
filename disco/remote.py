"""Preflight of remote (``gs://``) outputs: credentials and write access are checked before any
work starts, so a run without credentials or into a bucket it may not write fails in seconds
with one line, instead of after decoding every clip (or running the whole pipeline) and leaving
its staged outputs behind.

The check writes one small probe object under the output prefix and deletes it: that is the only
test of write permission that holds for every kind of grant (IAM, ACLs, uniform access).
"""

from __future__ import annotations

import logging
import os
import uuid

from disco import params
from disco.errors import ConfigError

log = logging.getLogger(__name__)

# Seconds per request of the probe: a reachable bucket answers in well under a second; this bounds
# a black-holed network so the whole preflight stays within seconds.
PROBE_TIMEOUT_S = 5.0


def is_remote(uri: str | os.PathLike[str]) -> bool:
    return "://" in str(uri)


def check_gcs_output(uri: str) -> None:
    """Raise ConfigError (naming ``uri`` and the reason) unless a ``gs://`` output can be written
    now: the URI names a bucket, credentials exist, the bucket exists and accepts a write."""
    from disco.data.storage import gcs_client, missing_credentials, split_gcs
    from disco.errors import DatasetError

    try:
        bucket_name, prefix = split_gcs(uri)
    except DatasetError as exc:
        raise ConfigError(f"{uri}: {exc.reason}") from None
    reason = missing_credentials()
    if reason:
        raise ConfigError(f"{uri}: cannot write: {reason}")
    from google.api_core import exceptions as gexc

    name = f"{prefix}/" * bool(prefix) + f"{params.WRITE_PROBE_NAME}-{uuid.uuid4().hex}"
    try:
        blob = gcs_client().bucket(bucket_name).blob(name)
        blob.upload_from_string(b"", timeout=PROBE_TIMEOUT_S, retry=None)
    except gexc.NotFound:
        raise ConfigError(f"{uri}: cannot write: bucket {bucket_name!r} does not exist") from None
    except gexc.Forbidden as exc:
        raise ConfigError(f"{uri}: cannot write: permission denied ({exc.message})") from None
    except gexc.Unauthorized as exc:
        raise ConfigError(f"{uri}: cannot write: credentials rejected ({exc.message})") from None
    except gexc.GoogleAPICallError as exc:
        raise ConfigError(f"{uri}: cannot write: {exc.message or exc}") from None
    except Exception as exc:  # transport errors (refused, timed out, DNS) come in several types
        raise ConfigError(f"{uri}: cannot reach the bucket: {type(exc).__name__}: {exc}") from None
    try:
        blob.delete(timeout=PROBE_TIMEOUT_S, retry=None)
    except Exception as exc:  # writing is what the step needs; a grant without delete is not fatal
        log.warning("%s: could not delete the write probe gs://%s/%s: %s", uri, bucket_name, name, exc)
    log.debug("%s: writable", uri)


def check_output(path: str | os.PathLike[str], *, remote_ok: bool) -> None:
    """One output location, before the work: a remote one must be supported by the step and be
    writable now; a local one must not be an existing file."""
    from disco.inputs import require_output_dir

    path = os.fspath(path)
    if not is_remote(path):
        require_output_dir(path)
        return
    if not path.startswith("gs://"):
        raise ConfigError(f"{path}: unsupported output scheme (local paths and gs:// only)")
    if not remote_ok:
        raise ConfigError(
            f"{path}: this command writes local outputs only; write locally, then copy to the bucket"
        )
    check_gcs_output(path)
