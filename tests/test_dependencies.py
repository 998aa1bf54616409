"""The steps need only disco's runtime dependencies (what the step images install): every component
body's import lines, and every module of disco / components / pipelines, import in a fresh Python
where the packages that only disco's extras bring cannot be imported. The extras' packages are
worked out from the installed distributions' metadata, not listed here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from disco.errors import MissingExtraError
from disco.extras import EXTRA_MODULES, require


def _name(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _closure(requirements: list[Requirement]) -> set[str]:
    """Installed distributions these requirements pull in, markers evaluated here (a requirement's
    own extras are followed; the top-level `extra == ...` lines are not)."""
    seen: set[tuple[str, str]] = set()
    dists: set[str] = set()
    todo = [(r, "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = _name(req.name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional requirement not installed here
        dists.add(name)
        for ex in ("", *sorted(req.extras)):
            if (name, ex) in seen:
                continue
            seen.add((name, ex))
            todo += [(Requirement(line), ex) for line in dist.requires or []]
    return dists


def _modules(dist: str) -> set[str]:
    """Dotted module/package names a distribution installs (from its RECORD)."""
    out = set()
    for f in metadata.distribution(dist).files or []:
        parts = f.parts
        if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] in ("..", "bin"):
            continue
        if f.suffix not in (".py", ".so", ".pyd"):
            continue
        names = list(parts[:-1])
        stem = parts[-1].split(".")[0]
        if stem != "__init__":
            names.append(stem)
        for i in range(1, len(names) + 1):
            out.add(".".join(names[:i]))
    return out


def blocked_modules(repo_root: Path) -> tuple[list[str], set[str]]:
    """The shortest module prefixes that only extra-only distributions provide."""
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    runtime = _closure([Requirement(r) for r in project["dependencies"]])
    extras = _closure(
        [Requirement(r) for reqs in project["optional-dependencies"].values() for r in reqs]
        + [Requirement(line.split("==")[0]) for line in _nodeps(repo_root / "requirements/nodeps-demo.txt")]
    )
    extra_only = extras - runtime
    provided = set().union(*(_modules(d) for d in runtime))
    blocked = set()
    for dist in extra_only:
        for module in _modules(dist):
            parts = module.split(".")
            prefixes = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
            first_own = next((p for p in prefixes if p not in provided), None)
            if first_own is not None:
                blocked.add(first_own)
    # Keep only the shortest prefixes.
    short = sorted(m for m in blocked if not any(m.startswith(b + ".") for b in blocked))
    return short, extra_only


def _nodeps(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


_PROBE = r"""
import ast, importlib, importlib.abc, inspect, json, pkgutil, sys, textwrap

BLOCKED = json.loads(sys.argv[1])

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: only in an extra)", name=name)
        return None

sys.meta_path.insert(0, Blocker())

import components
checked = []
for step in components.STEP_MODULES:
    module_name = f"components.{step}"
    module = importlib.import_module(module_name)
    for fn in vars(module).values():
        if not inspect.isfunction(fn) or fn.__module__ != module.__name__ or fn.__name__ == "make_component":
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        lines = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        exec("\n".join(lines), {})
        checked.append(f"{module_name}.{fn.__name__}: {len(lines)} import lines")
for package in ("disco", "components", "pipelines"):
    pkg = importlib.import_module(package)
    for info in pkgutil.walk_packages(pkg.__path__, package + "."):
        if info.name == "disco.__main__":
            continue
        importlib.import_module(info.name)
        checked.append(info.name)
leaked = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED))
print(json.dumps({"checked": checked, "leaked": leaked}))
"""


def test_extras_are_declared_once(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    runtime = {_name(Requirement(r).name) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    for module, (extra, requirement) in EXTRA_MODULES.items():
        assert _name(requirement) not in runtime, f"{requirement} is still a runtime dependency"
        if module == "tinysoundfont":
            assert any(
                ln.startswith("tinysoundfont==") for ln in _nodeps(repo_root / "requirements/nodeps-demo.txt")
            )
        else:
            assert _name(requirement) in {_name(Requirement(r).name) for r in extras[extra]}, (module, extra)
    assert not any("tinysoundfont" in ln for ln in _nodeps(repo_root / "requirements/nodeps.txt"))


def test_a_missing_extra_is_one_line_naming_it():
    with pytest.raises(MissingExtraError, match=r"disco\[tune\]") as info:
        # Blocked the same way a runtime-only install lacks it.
        sys.modules["keras_tuner"] = None  # type: ignore[assignment]
        try:
            require("keras_tuner", feature="disco train --tune")
        finally:
            del sys.modules["keras_tuner"]
    assert "\n" not in str(info.value) and "disco train --tune" in str(info.value)


@pytest.mark.slow
def test_component_bodies_and_every_module_import_with_runtime_dependencies_only(repo_root):
    blocked, extra_only = blocked_modules(repo_root)
    # The packages the extras were made for are among the blocked (those a runtime dependency pulls
    # in anyway, e.g. the Vertex SDK through apache-beam[gcp], are in the images regardless).
    for module in ("docker", "pretty_midi", "keras_tuner", "tinysoundfont", "pytest"):
        assert module in blocked, (module, blocked)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(blocked)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["leaked"] == []
    bodies = [c for c in report["checked"] if "import lines" in c]
    assert len(bodies) >= 6 and all(not c.endswith(": 0 import lines") for c in bodies), bodies
    assert "disco.cli.submit" in report["checked"] and "disco.images" in report["checked"]
    # The blocker really blocks: the same probe fails once a module it imports is blocked.
    broken = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps([*blocked, "disco.evaluate.pooled"])],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert broken.returncode != 0 and "disco.evaluate.pooled" in broken.stderr
