"""Lint, format, types and import rules run as tests, so the one test command runs all."""

from __future__ import annotations

import subprocess
import sys

import pytest
from paths import ROOT

TOOLS = {
    "ruff check": [sys.executable, "-m", "ruff", "check", "."],
    "ruff format": [sys.executable, "-m", "ruff", "format", "--check", "."],
    "mypy": [sys.executable, "-m", "mypy"],
    # This interpreter's import-linter, so it sees this interpreter's install of noc.
    "import-linter": [
        sys.executable,
        "-c",
        "from importlinter.cli import lint_imports_command; lint_imports_command()",
    ],
}


@pytest.mark.parametrize("tool", list(TOOLS))
def test_tool_passes(tool: str) -> None:
    command = TOOLS[tool]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{tool} failed:\n{result.stdout}\n{result.stderr}"
