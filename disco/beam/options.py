"""Pipeline options shared by the Beam steps.

Whatever the user passes (``--runner DataflowRunner --project ...``, ``--runner PortableRunner
--job_endpoint ...``, ``--runner DirectRunner``) goes to Beam unchanged. Only when no runner is named
do we pick the local default: Beam's in-memory FnApiRunner (what the DirectRunner runs in its
in-memory mode) with one worker, named directly because the DirectRunner of Beam >= 2.6x first
tries the Prism runner, which downloads a Go binary from GitHub at run time and runs elsewhere.

One in-memory worker sounds slower than multi-processing but is not: the heavy work (libsndfile
decode, soxr, TensorFlow) releases the GIL, so the steps run it on a thread pool / TF's own threads
inside one process, and nothing pays for pickling 320 kB of PCM per clip between processes
(measured in bench/).
"""

from __future__ import annotations

import os
from typing import Sequence

LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
_LOCAL_NAMES = (None, LOCAL_RUNNER, "DirectRunner", "direct", "FnApiRunner")


def has_option(beam_args: Sequence[str], name: str) -> bool:
    flag = f"--{name}"
    return any(a == flag or a.startswith(flag + "=") for a in beam_args)


def pipeline_options(beam_args: Sequence[str] = (), *, default_workers: int | None = None):
    from apache_beam.options.pipeline_options import PipelineOptions

    args = list(beam_args)
    if not has_option(args, "runner"):
        args.append(f"--runner={LOCAL_RUNNER}")
        if not has_option(args, "direct_num_workers"):
            args.append(f"--direct_num_workers={default_workers or 1}")
        if not has_option(args, "direct_running_mode"):
            # in_memory runs exactly one worker; more workers asked for means threads.
            one = any(a in ("--direct_num_workers=1",) for a in args) or (
                "--direct_num_workers" in args and args[args.index("--direct_num_workers") + 1:][:1] == ["1"])
            args.append(f"--direct_running_mode={'in_memory' if one else 'multi_threading'}")
    return PipelineOptions(args)


def runner_name(beam_args: Sequence[str]) -> str | None:
    runner = next((a.split("=", 1)[1] for a in beam_args if a.startswith("--runner=")), None)
    if runner is None and "--runner" in beam_args:
        i = list(beam_args).index("--runner")
        runner = beam_args[i + 1] if i + 1 < len(beam_args) else None
    return runner


def is_local(beam_args: Sequence[str]) -> bool:
    return runner_name(beam_args) in _LOCAL_NAMES


def remove_stale_temp(out_dir: str) -> list[str]:
    """Delete Beam file-sink temporary directories that a killed run left in ``out_dir``.

    Shards only reach their final names at finalisation, so these never hold readable output;
    left alone they would pile up (hundreds of MB of partial audio) with every interrupted run.
    Local directories only: on object stores the runner's own cleanup applies."""
    import glob
    import logging
    import shutil

    stale = sorted(glob.glob(os.path.join(out_dir, "beam-temp-*"))) if "://" not in out_dir else []
    for path in stale:
        logging.getLogger(__name__).warning("removing %s, left by an interrupted run", path)
        shutil.rmtree(path, ignore_errors=True)
    return stale
