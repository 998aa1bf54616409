"""Pipeline options shared by the Beam steps.

Whatever the user passes (``--runner DataflowRunner --project ...``, ``--runner PortableRunner
--job_endpoint ...``) goes to Beam unchanged. Only when no runner is named do we pick the local
default: the DirectRunner in its in-memory mode with one worker. That sounds slower than
multi-processing but is not: the heavy work (libsndfile decode, soxr, TensorFlow) releases the GIL,
so the steps run it on a thread pool / TF's own threads inside one process, and nothing pays for
pickling 320 kB of PCM per clip between processes (measured in bench/).
"""

from __future__ import annotations

from typing import Sequence


def has_option(beam_args: Sequence[str], name: str) -> bool:
    flag = f"--{name}"
    return any(a == flag or a.startswith(flag + "=") for a in beam_args)


def pipeline_options(beam_args: Sequence[str] = (), *, default_workers: int | None = None):
    from apache_beam.options.pipeline_options import PipelineOptions

    args = list(beam_args)
    if not has_option(args, "runner"):
        args.append("--runner=DirectRunner")
        if not has_option(args, "direct_running_mode"):
            args.append("--direct_running_mode=in_memory")
        if not has_option(args, "direct_num_workers"):
            args.append(f"--direct_num_workers={default_workers or 1}")
    return PipelineOptions(args)


def is_local(beam_args: Sequence[str]) -> bool:
    runner = next((a.split("=", 1)[1] for a in beam_args if a.startswith("--runner=")), None)
    if runner is None and "--runner" in beam_args:
        i = list(beam_args).index("--runner")
        runner = beam_args[i + 1] if i + 1 < len(beam_args) else None
    return runner in (None, "DirectRunner", "direct")
