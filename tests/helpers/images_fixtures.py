"""Test helpers for the image tests: make the local base, build with buildah, and run a compiled
KFP component's exact container command inside an image, as the KFP launcher would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

TOOLS = ("buildah", "podman", "debootstrap")
STEP_TIMEOUT_S = 600


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]


def make_local_base(repo_root: Path) -> str:
    """docker/make-local-base.sh, cached by date tag and by rootfs tarball; returns the image name."""
    proc = subprocess.run(
        ["bash", str(repo_root / "docker/make-local-base.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"make-local-base.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


@dataclass
class Executor:
    """One executor of a compiled pipeline: its container spec and its component's interface."""

    label: str
    function: str
    image: str
    command: list[str]
    args: list[str]
    inputs: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)


def load_executors(pipeline_yaml: Path) -> dict[str, Executor]:
    """``{function name: Executor}``, the first executor of each component function (the ``-2``
    copies KFP makes for a component used twice have the same command)."""
    spec = yaml.safe_load(pipeline_yaml.read_text())
    components = {c["executorLabel"]: c for c in spec["components"].values() if "executorLabel" in c}
    found: dict[str, Executor] = {}
    for label, ex in spec["deploymentSpec"]["executors"].items():
        container = ex["container"]
        args = container["args"]
        function = args[args.index("--function_to_execute") + 1]
        if function in found:
            continue
        comp = components[label]
        found[function] = Executor(
            label=label,
            function=function,
            image=container["image"],
            command=container["command"],
            args=args,
            inputs=comp.get("inputDefinitions", {}),
            outputs=comp.get("outputDefinitions", {}),
        )
    return found


def executor_input(ex: Executor, *, parameters: dict, input_artifacts: dict[str, str], out_dir: Path) -> dict:
    """The executor input JSON the KFP launcher hands a container (``{{$}}``), with local URIs."""

    def artifact(name: str, schema: dict, uri: str) -> dict:
        return {"artifacts": [{"name": name, "type": schema, "uri": uri, "metadata": {}}]}

    values = {}
    for name, pdef in (ex.inputs.get("parameters") or {}).items():
        if name in parameters:
            values[name] = parameters[name]
        elif "defaultValue" in pdef:
            values[name] = pdef["defaultValue"]
        elif pdef.get("isOptional"):
            continue
        else:
            raise KeyError(f"{ex.function}: no test value for parameter {name!r}")
    in_arts = {}
    for name, adef in (ex.inputs.get("artifacts") or {}).items():
        if name not in input_artifacts:
            raise KeyError(f"{ex.function}: no upstream artifact for input {name!r}")
        in_arts[name] = artifact(name, adef["artifactType"], input_artifacts[name])
    out_arts = {}
    for name, adef in (ex.outputs.get("artifacts") or {}).items():
        out_arts[name] = artifact(name, adef["artifactType"], str(out_dir / name))
    out_params = {
        name: {"outputFile": str(out_dir / "parameters" / name)}
        for name in (ex.outputs.get("parameters") or {})
    }
    return {
        "inputs": {"parameterValues": values, "artifacts": in_arts},
        "outputs": {
            "artifacts": out_arts,
            "parameters": out_params,
            "outputFile": str(out_dir / "executor_output.json"),
        },
    }


def container_argv(ex: Executor, payload: dict) -> list[str]:
    """command + args, with ``{{$}}`` replaced as the launcher does."""
    text = json.dumps(payload)
    return list(ex.command) + [text if a == "{{$}}" else a for a in ex.args]


def run_in_image(
    image: str,
    argv: list[str],
    *,
    mounts: list[Path],
    timeout: int = STEP_TIMEOUT_S,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """``buildah run --isolation chroot`` of argv in a fresh container of ``image``; host paths in
    ``mounts`` appear at the same path inside, so artifact URIs mean the same on both sides."""
    cid = subprocess.run(
        ["buildah", "from", "--pull-never", image], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        cmd = ["buildah", "run", "--isolation", "chroot"]
        for m in mounts:
            cmd += ["-v", f"{m}:{m}:rw"]
        for k, v in (env or {}).items():
            cmd += ["--env", f"{k}={v}"]
        cmd += [cid, "--", *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    finally:
        subprocess.run(["buildah", "rm", cid], capture_output=True)


def make_writable(path: Path) -> Path:
    """The image runs as uid 1000; the host tree the steps write into must let it."""
    path.mkdir(parents=True, exist_ok=True)
    for p in [path, *path.rglob("*")]:
        p.chmod(0o777 if p.is_dir() else 0o666)
    return path


def prune_old_test_images(registry: str, keep_tag: str) -> list[str]:
    """Untag the image test's builds from earlier commits (their layers shared with the current
    build stay) and drop dangling layers, so repeated runs on one machine do not pile up gigabytes."""
    out = subprocess.run(
        ["buildah", "images", "--format", "{{.Name}}:{{.Tag}}"], capture_output=True, text=True
    )
    stale = [
        ref
        for ref in out.stdout.split()
        if ref.startswith(registry + "/") and not ref.endswith(":" + keep_tag)
    ]
    if stale:
        subprocess.run(["buildah", "rmi", *stale], capture_output=True)
    subprocess.run(["buildah", "rmi", "--prune"], capture_output=True)
    return stale
