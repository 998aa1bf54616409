"""`disco compile`: write the KFP pipeline YAML (what `make compile`, submit and the images use)."""

from __future__ import annotations

import argparse
import logging

from disco import params, steps

log = logging.getLogger(__name__)


# `disco compile --help` ends with these.
EXAMPLES = (
    "disco compile",
    "disco compile --gpu --tag 0.1.0-abc123 -o disco-gpu.yaml",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compile",
        help="compile the KFP pipeline to YAML",
        description="Compile the disco KFP v2 pipeline for a backend. GPU requests are fixed at compile "
        "time (KFP cannot add or remove them per run), so a CPU-only cluster uses the default. --target "
        "kfp (open-source Kubeflow Pipelines): --gpu requests one nvidia.com/gpu for embed and train, "
        "with a GKE node selector and toleration; --target vertex (Vertex AI Pipelines): --gpu requests "
        "Vertex's accelerator name (NVIDIA_TESLA_T4, NVIDIA_L4...) and every step gets CPU and memory "
        "limits, which Vertex sizes the machine from.",
    )
    p.add_argument(
        "--target",
        choices=params.COMPILE_TARGETS,
        default=params.DEFAULT_COMPILE_TARGET,
        help=f"backend the YAML is for (default {params.DEFAULT_COMPILE_TARGET})",
    )
    p.add_argument(
        "--output",
        "-o",
        default=None,
        help="YAML path (default pipelines/<pipeline name>.yaml; <pipeline name>-<target>.yaml for a "
        "non-default target)",
    )
    p.add_argument(
        "--image",
        default=None,
        help=f"image for every step (default {params.DEFAULT_REGISTRY}/disco-cpu:<version>)",
    )
    p.add_argument("--registry", default=params.DEFAULT_REGISTRY, help="registry of the default image names")
    p.add_argument(
        "--tag", default=None, help="tag of the default image names (make build-images: <version>-<git sha>)"
    )
    p.add_argument(
        "--gpu-image", default=None, help="image for the GPU steps when --gpu (default the -gpu variant)"
    )
    p.add_argument("--gpu", action="store_true", help="request a GPU for embed and train")
    p.add_argument(
        "--gpu-accelerator",
        default=None,
        help=f"GPU, as GKE's accelerator label value (default {params.DEFAULT_GPU_TYPE}): the node "
        f"selector for kfp, mapped to Vertex's name for vertex ({', '.join(params.VERTEX_ACCELERATORS)})",
    )
    p.add_argument("--pipeline-name", default=None, help=f"pipeline name (default {params.PIPELINE_NAME})")
    p.add_argument("--retries", type=int, default=3, help="retries of steps that read remote storage")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from disco_pipelines.compile import compile_pipeline

    print(compile_pipeline(args.output, **steps.keywords_for(compile_pipeline, vars(args))))
    return 0
