"""ruff (lint and format) over the whole tree: CI fails on a lint error or an unformatted file."""

from __future__ import annotations

import subprocess
import sys


def _ruff(repo_root, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=repo_root, capture_output=True, text=True, timeout=120
    )


def test_ruff_check_is_clean(repo_root):
    result = _ruff(repo_root, "check", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean(repo_root):
    result = _ruff(repo_root, "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr
