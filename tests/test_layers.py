"""The layers (#15): application > pipeline > components > library, checked by import-linter.

The contract lives in pyproject.toml ([tool.importlinter]); `make lint` runs it too. Besides the
contract itself, these tests check that no module sits outside every layer (a new module would
otherwise escape the contract) and that the contract does fail on an import against the layers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _tool(repo_root: Path) -> dict:
    return tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]


def _config(repo_root: Path) -> dict:
    return _tool(repo_root)["importlinter"]


def _package_dirs(repo_root: Path) -> dict[str, Path]:
    """Installed top-level package -> its folder (components/ installs as disco_components)."""
    mapping = _tool(repo_root)["setuptools"]["package-dir"]
    return {name: repo_root / mapping.get(name, name) for name in _config(repo_root)["root_packages"]}


def _layer_modules(config: dict) -> list[str]:
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    names = []
    for layer in layers["layers"]:
        names += [part.strip() for part in layer.replace(":", "|").split("|")]
    return names


def _lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def test_contracts_are_kept(repo_root):
    result = _lint_imports(repo_root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_module_is_in_a_layer(repo_root):
    config = _config(repo_root)
    roots = config["root_packages"]
    layers = _layer_modules(config)
    graph = grimp.build_graph(*roots)
    outside = sorted(
        m
        for m in graph.modules
        if m not in roots and not any(m == layer or m.startswith(layer + ".") for layer in layers)
    )
    assert outside == [], f"modules in no layer of pyproject's [tool.importlinter]: {outside}"


@pytest.mark.parametrize(
    ("module_file", "bad_import", "expected"),
    [
        # the library reaching up into the pipeline
        (
            "disco/evaluate/analyse.py",
            "import disco_pipelines.factory",
            "disco.evaluate.analyse -> disco_pipelines.factory",
        ),
        # the library importing KFP directly
        ("disco/records.py", "import kfp", "disco.records -> kfp"),
        # a component reaching up into the pipeline
        (
            "disco_components/train.py",
            "import disco_pipelines.compile",
            "disco_components.train -> disco_pipelines.compile",
        ),
        # a lower library layer importing a higher one
        (
            "disco/train/losses.py",
            "import disco.evaluate.report",
            "disco.train.losses -> disco.evaluate.report",
        ),
    ],
)
def test_contract_fails_on_an_import_against_the_layers(
    repo_root, tmp_path, module_file, bad_import, expected
):
    for name, folder in _package_dirs(repo_root).items():
        shutil.copytree(folder, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo_root / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module_file
    target.write_text(target.read_text() + f"\n{bad_import}  # noqa\n")
    # The copy comes first on sys.path, ahead of the editable install of the real tree.
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = _lint_imports(tmp_path, env)
    assert result.returncode != 0, result.stdout
    assert expected in result.stdout, result.stdout


def test_nothing_imports_the_folders_by_their_generic_names(repo_root):
    """From the repository root `components` and `pipelines` would still import (as folders on
    sys.path), hiding a stale import that fails once installed; only the installed names count."""
    import re

    stale = re.compile(r"^\s*(from|import) (components|pipelines)\b", re.M)
    offenders = [
        str(path.relative_to(repo_root))
        for folder in ("disco", "components", "pipelines", "tests", "bench")
        for path in (repo_root / folder).rglob("*.py")
        if stale.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], f"import disco_components / disco_pipelines instead: {offenders}"


def test_test_helpers_are_imported_from_their_package(repo_root):
    """Helpers live in tests/helpers/; a bare `import openmic_fixtures` only fails at collection."""
    import re

    names = sorted(p.stem for p in (repo_root / "tests" / "helpers").glob("*.py") if p.stem != "__init__")
    bare = re.compile(rf"^\s*(from|import) ({'|'.join(names)})\b", re.M)
    offenders = [
        str(path.relative_to(repo_root))
        for folder in ("tests", "bench")
        for path in (repo_root / folder).rglob("*.py")
        if bare.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], f"import helpers.<name> instead: {offenders}"


def test_installed_packages_are_the_package_folders(repo_root):
    """pyproject lists packages explicitly (for the disco_components / disco_pipelines mapping): it
    must name every package folder, or an install would silently leave one out."""
    tool = _tool(repo_root)
    listed = set(tool["setuptools"]["packages"])
    found = set()
    for name, folder in _package_dirs(repo_root).items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder).parts
            found.add(".".join((name, *rel)))
    assert listed == found
    # No generic top-level names in site-packages.
    assert all(name.split(".")[0].startswith("disco") for name in listed)
