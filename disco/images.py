"""Build, push and kind-load the disco container images (``make build-images`` and friends).

    python -m disco.images build     [--tag T] [--registry R] [--base-image B] [--gpu] [--no-steps]
                                     (prints each image with its size)
    python -m disco.images push      [--tag T] [--registry R] [--gpu] [--no-steps]
    python -m disco.images kind-load [--tag T] [--registry R] [--gpu] [--cluster NAME]

Two backends, picked at run time: the Docker SDK (``docker`` package) when a Docker daemon answers
a ping, else ``buildah`` (``--isolation chroot``, so it works inside an unprivileged CI container
with no daemon). Both build the same ``docker/Dockerfile`` targets with the same tags.

Tags are ``<package version>-<git sha>``, never ``latest``: a KFP task records the image it ran in,
and a moving tag would make that record meaningless (and defeat KFP's cache key).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from disco import params
from disco.errors import ConfigError, DiscoError
from disco.steps import STEPS

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = "docker/Dockerfile"
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
VARIANTS = ("cpu", "gpu")
RUNTIME_TARGET = "runtime"
# Dockerfile stage names of the per-step targets, one per step (a stage name holds no "_").
STEP_TARGETS = tuple(step.target for step in STEPS)
BACKENDS = ("auto", "docker", "buildah")


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """One image to build: a Dockerfile target in one variant, and the reference it is tagged as."""

    target: str
    variant: str
    ref: str

    @property
    def repository(self) -> str:
        return self.ref.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.ref.rsplit(":", 1)[1]


def git_sha(repo_root: Path = REPO_ROOT, *, length: int = 12) -> str:
    """Short commit of the checkout, with ``-dirty`` when its files differ from it: a changed
    tracked file, or an untracked one git does not ignore (a new module is copied into the
    images too). The Makefile and k8s/kind-up.sh compute the same tag in shell: a clean commit's
    tag on other code would make a cluster's KFP cache (keyed by image) reuse stale results."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", f"--short={length}", "HEAD"],
            cwd=repo_root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=repo_root, check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "nogit"
    return f"{sha}-dirty" if status.strip() else sha


def default_tag(repo_root: Path = REPO_ROOT) -> str:
    from disco import __version__

    return f"{__version__}-{git_sha(repo_root)}"


def validate_tag(tag: str) -> str:
    if not tag or tag.strip() != tag:
        raise ConfigError(f"image tag {tag!r} is empty or has spaces")
    if tag == "latest":
        raise ConfigError("image tag 'latest' is not allowed: use <version>-<git sha> (the default)")
    if len(tag) > 128 or not all(c.isalnum() or c in "._-" for c in tag) or tag[0] in ".-":
        raise ConfigError(f"image tag {tag!r} is not a valid OCI tag ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})")
    return tag


def image_specs(*, registry: str, tag: str, gpu: bool = False, steps: bool = True) -> list[ImageSpec]:
    """Every image of one build, runtime first: ``<registry>/disco-<variant>:<tag>`` (all steps,
    what the pipeline uses by default) and ``<registry>/disco-<step>-<variant>:<tag>``."""
    validate_tag(tag)
    registry = registry.rstrip("/")
    if not registry:
        raise ConfigError("--registry is empty")
    variants = VARIANTS if gpu else ("cpu",)
    specs: list[ImageSpec] = []
    for variant in variants:
        specs.append(ImageSpec(RUNTIME_TARGET, variant, f"{registry}/disco-{variant}:{tag}"))
        if steps:
            specs += [ImageSpec(t, variant, f"{registry}/disco-{t}-{variant}:{tag}") for t in STEP_TARGETS]
    return specs


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """What build, push and kind-load share: which images (:func:`image_specs`) and with which
    backend, or only printing the commands (``dry_run``)."""

    tag: str
    registry: str = params.DEFAULT_REGISTRY
    gpu: bool = False
    steps: bool = True
    backend: str = "auto"
    dry_run: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ImageSet:
        """From the command line, whose options are named as the fields; no --tag: :func:`default_tag`."""
        named = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
        return cls(**{**named, "tag": args.tag or default_tag()})

    def specs(self) -> list[ImageSpec]:
        return image_specs(registry=self.registry, tag=self.tag, gpu=self.gpu, steps=self.steps)

    def chosen_backend(self) -> str:
        # A dry run that names no backend prints buildah's commands: it needs no builder installed.
        return "buildah" if self.dry_run and self.backend == "auto" else pick_backend(self.backend)


def build_args(*, variant: str, base_image: str, version: str, sha: str) -> dict[str, str]:
    if variant not in VARIANTS:
        raise ConfigError(f"variant {variant!r}: expected one of {VARIANTS}")
    return {"BASE_IMAGE": base_image, "VARIANT": variant, "VERSION": version, "GIT_SHA": sha}


def docker_client():
    """A Docker SDK client whose daemon answers, or None."""
    try:
        import docker
    except ImportError:  # the 'cluster' extra; buildah needs no Python package
        return None
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:  # the SDK raises several unrelated types for "no daemon"
        log.debug("no Docker daemon: %s", exc)
        return None
    return client


def pick_backend(requested: str = "auto") -> str:
    if requested not in BACKENDS:
        raise ConfigError(f"backend {requested!r}: expected one of {BACKENDS}")
    if requested in ("auto", "docker") and docker_client() is not None:
        return "docker"
    if requested == "docker":
        from disco.extras import require

        require("docker", feature="--backend docker")  # the SDK itself missing is its own message
        raise ConfigError("backend 'docker': no Docker daemon answers (DOCKER_HOST / docker.sock)")
    if shutil.which("buildah"):
        return "buildah"
    raise ConfigError(
        "no way to build images: no Docker daemon answers and buildah is not installed "
        "(apt-get install -y buildah, or start Docker)"
    )


def buildah_build_command(
    spec: ImageSpec,
    *,
    args: dict[str, str],
    context: Path = REPO_ROOT,
    layers: bool = True,
    network: str | None = None,
) -> list[str]:
    # Docker image format: OCI format drops SHELL (the Dockerfile's pipefail) and kind / Dataflow
    # take Docker-format images anyway.
    cmd = [
        "buildah",
        "bud",
        "--isolation",
        "chroot",
        "--format",
        "docker",
        "--target",
        spec.target,
        "-f",
        str(context / DOCKERFILE),
    ]
    if layers:
        # Layer cache: the dependency layer is reused across targets, variants' source layers and rebuilds.
        cmd.append("--layers")
    if network:
        cmd += ["--network", network]
    for key, value in args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    cmd += ["-t", spec.ref, str(context)]
    return cmd


def _run(cmd: Sequence[str]) -> None:
    log.info("$ %s", " ".join(cmd))
    proc = subprocess.run(list(cmd))
    if proc.returncode != 0:
        raise DiscoError(f"command failed (exit {proc.returncode}): {' '.join(cmd)}")


def _run_or_print(cmd: Sequence[str], *, dry_run: bool) -> None:
    if dry_run:
        print(" ".join(cmd))
    else:
        _run(cmd)


def build(
    images: ImageSet,
    *,
    base_image: str = DEFAULT_BASE_IMAGE,
    context: Path = REPO_ROOT,
    network: str | None = None,
) -> list[ImageSpec]:
    """Build the runtime image (and the per-step images) for CPU, and GPU with ``gpu=True``.

    ``network``: the build containers' network (``host`` where the daemon's default bridge cannot
    reach PyPI, e.g. a daemon started with ``--bridge=none`` or behind a host-only proxy)."""
    from disco import __version__

    specs, chosen, dry_run = images.specs(), images.chosen_backend(), images.dry_run
    sha = git_sha(context)
    client = docker_client() if chosen == "docker" and not dry_run else None
    for i, spec in enumerate(specs, 1):
        args = build_args(variant=spec.variant, base_image=base_image, version=__version__, sha=sha)
        log.info(
            "[%d/%d] building %s (target %s, %s) with %s",
            i,
            len(specs),
            spec.ref,
            spec.target,
            spec.variant,
            chosen,
        )
        if chosen == "buildah":
            _run_or_print(
                buildah_build_command(spec, args=args, context=context, network=network), dry_run=dry_run
            )
        elif dry_run:
            print(
                f"docker build {context} -f {DOCKERFILE} --target {spec.target} -t {spec.ref} "
                + " ".join(f"--build-arg {k}={v}" for k, v in args.items())
            )
        else:
            _docker_build(client, spec, args=args, context=context, network=network)
    return specs


def _docker_build(
    client, spec: ImageSpec, *, args: dict[str, str], context: Path, network: str | None
) -> None:
    # The low-level API streams the build log, so a long dependency install shows progress.
    for chunk in client.api.build(
        path=str(context),
        dockerfile=DOCKERFILE,
        target=spec.target,
        tag=spec.ref,
        buildargs=args,
        rm=True,
        decode=True,
        network_mode=network,
    ):
        if "error" in chunk:
            raise DiscoError(f"docker build of {spec.ref} failed: {chunk['error'].strip()}")
        line = str(chunk.get("stream", "")).rstrip()
        if line:
            log.info("%s", line)


def image_size(ref: str, backend: str) -> str:
    """The image's size as its backend reports it (buildah: its own rounding, e.g. ``2.37 GB``;
    Docker: the uncompressed size in MB), or ``?`` if it cannot be read."""
    if backend == "docker":
        client = docker_client()
        if client is None:
            return "?"
        return f"{client.images.get(ref).attrs['Size'] / 1e6:.0f} MB"
    proc = subprocess.run(["buildah", "images", "--json", ref], capture_output=True, text=True)
    if proc.returncode != 0:
        return "?"
    import json

    found = json.loads(proc.stdout or "[]")
    return str(found[0].get("size", "?")) if found else "?"


def push(images: ImageSet) -> list[ImageSpec]:
    """Push every image of the set to its registry."""
    registry = images.registry
    if registry.rstrip("/") == "localhost" or registry.startswith("localhost/"):
        raise ConfigError(
            f"--registry {registry!r} is the local image store, not a registry: pass REGISTRY=host[:port]/path "
            "(e.g. us-docker.pkg.dev/PROJECT/disco or localhost:5000/disco)"
        )
    specs, chosen, dry_run = images.specs(), images.chosen_backend(), images.dry_run
    client = docker_client() if chosen == "docker" and not dry_run else None
    for spec in specs:
        if chosen == "buildah":
            _run_or_print(["buildah", "push", spec.ref, f"docker://{spec.ref}"], dry_run=dry_run)
        elif dry_run:
            print(f"docker push {spec.ref}")
        else:
            for chunk in client.images.push(spec.repository, tag=spec.tag, stream=True, decode=True):
                if "error" in chunk:
                    raise DiscoError(f"docker push of {spec.ref} failed: {chunk['error']}")
            log.info("pushed %s", spec.ref)
    return specs


def kind_load(images: ImageSet, *, cluster: str) -> list[ImageSpec]:
    """Load the images into a kind cluster's nodes (kind pulls nothing from ``localhost/``)."""
    dry_run = images.dry_run
    if not dry_run and not shutil.which("kind"):
        raise ConfigError(
            "kind is not installed (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
        )
    specs, chosen = images.specs(), images.chosen_backend()
    for spec in specs:
        if chosen == "docker":
            cmds = [["kind", "load", "docker-image", spec.ref, "--name", cluster]]
        else:
            # Without a Docker daemon kind takes an image archive; buildah writes one.
            archive = os.path.join(tempfile.gettempdir(), f"disco-{spec.target}-{spec.variant}.tar")
            cmds = [
                ["buildah", "push", spec.ref, f"docker-archive:{archive}:{spec.ref}"],
                ["kind", "load", "image-archive", archive, "--name", cluster],
            ]
        for cmd in cmds:
            _run_or_print(cmd, dry_run=dry_run)
    return specs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m disco.images", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    for action in ("build", "push", "kind-load"):
        p = sub.add_parser(action)
        p.add_argument("--tag", default=None, help="image tag (default <version>-<git sha>; never 'latest')")
        p.add_argument(
            "--registry", default=params.DEFAULT_REGISTRY, help="image name prefix (default %(default)s)"
        )
        p.add_argument("--gpu", action="store_true", help="also the GPU variant (tensorflow[and-cuda])")
        p.add_argument(
            "--no-steps", dest="steps", action="store_false", help="only the all-steps runtime image"
        )
        p.add_argument("--backend", choices=BACKENDS, default="auto")
        p.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
        if action == "build":
            p.add_argument("--network", default=None, help="build containers' network (e.g. host)")
            p.add_argument(
                "--base-image",
                default=DEFAULT_BASE_IMAGE,
                help="Debian bookworm + python3.11 image (docker/make-local-base.sh makes one offline)",
            )
        if action == "kind-load":
            p.add_argument("--cluster", default="disco")
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    selected = ImageSet.from_args(args)
    try:
        if args.action == "build":
            specs = build(selected, base_image=args.base_image, network=args.network)
        elif args.action == "push":
            specs = push(selected)
        else:
            specs = kind_load(selected, cluster=args.cluster)
    except DiscoError as exc:
        print(f"python -m disco.images {args.action}: error: {exc}", file=sys.stderr)
        return 2
    if args.action == "build" and not args.dry_run:
        # What the images cost a node to pull: one line per image, "<ref> <size>".
        backend = selected.chosen_backend()
        for spec in specs:
            print(f"{spec.ref} {image_size(spec.ref, backend)}")
        return 0
    for spec in specs:
        print(spec.ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
