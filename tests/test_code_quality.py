"""Lint, format, types and import rules run as tests, so the one test command runs all."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TOOLS = {
    "ruff check": [sys.executable, "-m", "ruff", "check", "."],
    "ruff format": [sys.executable, "-m", "ruff", "format", "--check", "."],
    "mypy": [sys.executable, "-m", "mypy"],
    "import-linter": ["lint-imports"],
}


@pytest.mark.parametrize("tool", list(TOOLS))
def test_tool_passes(tool: str) -> None:
    command = TOOLS[tool]
    if shutil.which(command[0]) is None:
        # lint-imports is a console script; find it beside this interpreter.
        command = [str(Path(sys.executable).with_name(command[0])), *command[1:]]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{tool} failed:\n{result.stdout}\n{result.stderr}"
