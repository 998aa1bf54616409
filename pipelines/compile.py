"""Compile the disco pipeline to YAML (``make compile`` -> ``pipelines/disco-openmic.yaml``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from disco import __version__, params
from disco.errors import ConfigError

log = logging.getLogger(__name__)

PIPELINES_DIR = Path(__file__).resolve().parent


def default_image(
    *, registry: str = params.DEFAULT_REGISTRY, variant: str = "cpu", tag: str | None = None
) -> str:
    """The image the compiled components name: ``<registry>/disco-<variant>:<tag>``; the tag defaults to
    the package version (``make build-images`` tags version-commit; pass ``--image`` to pin one)."""
    return f"{registry}/disco-{variant}:{tag or __version__}"


def default_output(pipeline_name: str, target: str = params.DEFAULT_COMPILE_TARGET) -> Path:
    """``pipelines/<name>.yaml`` for the default target, ``pipelines/<name>-<target>.yaml`` otherwise."""
    suffix = "" if target == params.DEFAULT_COMPILE_TARGET else f"-{target}"
    return PIPELINES_DIR / f"{pipeline_name}{suffix}.yaml"


def _variant_of(image: str, given: str, other: str) -> str:
    """``<registry>/disco-<variant>:<tag>`` of the other variant (cpu/gpu) of ``image``'s build."""
    repository, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:  # no tag: the colon was a registry port, or there is none
        repository, tag = image, ""
    if not repository.endswith(f"-{given}"):
        raise ConfigError(
            f"cannot tell the {other.upper()} image from {image!r} (not named …-{given}:<tag>): "
            f"give --{'gpu-image' if other == 'gpu' else 'image'} too"
        )
    return repository[: -len(given)] + other + (f":{tag}" if tag else "")


def compile_pipeline(
    output: str | os.PathLike[str] | None = None,
    *,
    image: str | None = None,
    gpu_image: str | None = None,
    gpu: bool = False,
    gpu_accelerator: str | None = None,
    pipeline_name: str | None = None,
    retries: int = 3,
    registry: str = params.DEFAULT_REGISTRY,
    tag: str | None = None,
    target: str = params.DEFAULT_COMPILE_TARGET,
) -> Path:
    """Compile for ``target`` (``kfp`` or ``vertex``) to ``output`` (default :func:`default_output`)
    and return the path."""
    from kfp import compiler

    from disco_pipelines import factory

    if (gpu_accelerator or gpu_image) and not gpu:
        # Either alone would compile a CPU-only pipeline without a word: the user asked for a GPU.
        raise ConfigError("--gpu-accelerator and --gpu-image need --gpu")
    if gpu and bool(image) != bool(gpu_image):
        # The other variant of the same build, not the local default (localhost/…:<version>, which
        # no build tags and no cluster can pull).
        image, gpu_image = (
            image or _variant_of(gpu_image, "gpu", "cpu"),
            gpu_image or _variant_of(image, "cpu", "gpu"),
        )
    name = pipeline_name or params.PIPELINE_NAME
    gpu_arg: bool | factory.GpuConfig = gpu
    if gpu and gpu_accelerator:
        if gpu_accelerator not in params.VERTEX_ACCELERATORS:
            # GKE may have labels newer than this list: a warning, since a misspelt one leaves the
            # GPU steps Pending forever on a node selector no node matches.
            log.warning(
                "GPU accelerator %r is none of %s; GPU steps stay Pending unless nodes carry that label",
                gpu_accelerator,
                ", ".join(sorted(params.VERTEX_ACCELERATORS)),
            )
        gpu_arg = factory.GpuConfig(node_label_value=gpu_accelerator)
    pipeline = factory.make_pipeline(
        image=image or default_image(registry=registry, tag=tag),
        gpu_image=gpu_image or (default_image(registry=registry, variant="gpu", tag=tag) if gpu else None),
        gpu=gpu_arg,
        pipeline_name=name,
        retries=retries,
        target=target,
    )
    out = Path(output) if output else default_output(name, target)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(out))
    log.info("compiled pipeline %r for %s to %s", name, target, out)
    return out
