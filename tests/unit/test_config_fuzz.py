"""Generated configurations and NOC_* environments never end in a traceback.

Every case goes through `noc check`, `noc config show` and the dashboard's start
path (in-process): a clean error naming the file or the variable (and the key), with
`NOC UNKNOWN` and exit 3 from `noc check`, or a configuration that is accepted.
The bounded profile runs here; `NOC_LONG_HISTORIES=1` runs the long one;
`python3 bench/config_fuzz.py` runs 10,000 cases and prints the counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from config_cases import Outcome, base_config, config_files, environments, run_case, toml_document
from hypothesis import example, given, settings

VALID = toml_document(base_config()).encode()


@settings(max_examples=40, deadline=None)
@given(config_files(), environments())
@example(VALID, {})
@example(VALID.replace(b'"fuzz"', b'"caf\xe9"'), {})  # a Latin-1 file
@example(b"\xff\xfe[\x00e\x00", {})  # UTF-16
@example(VALID, {"NOC_HEALTH": "{"})  # a section that is not JSON
@example(VALID, {"NOC_REGIONS": "x"})
@example(VALID, {"NOC_HEALTH__X__Y": "1"})  # a key below one that does not exist
@example(VALID, {"NOC_ESTATE__NAME": "\udcff"})  # not UTF-8 in the environment
def test_a_generated_config_is_accepted_or_a_clean_error(raw: bytes, env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        result = run_case(raw, env, Path(directory))
    for command, outcome in result.outcomes.items():
        assert outcome in (Outcome.CLEAN_ERROR, Outcome.ACCEPTED), (
            command,
            result.details.get(command),
        )


def run_noc(
    tmp_path: Path, raw: bytes, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "noc.toml"
    path.write_bytes(raw)
    full = {k: v for k, v in os.environ.items() if not k.startswith("NOC_")}
    full |= {"XDG_STATE_HOME": str(tmp_path / "state"), **env}
    return subprocess.run(
        [sys.executable, "-m", "noc", *args, "--config", str(path)],
        capture_output=True, text=True, env=full, timeout=60, check=False,
    )  # fmt: skip


def test_a_file_that_is_not_utf8_is_unknown_with_its_place(tmp_path: Path) -> None:
    raw = VALID.replace(b'"fuzz"', b'"caf\xe9"')
    run = run_noc(tmp_path, raw, {}, "check")
    assert run.returncode == 3
    assert run.stdout.startswith(f"NOC UNKNOWN - config error: {tmp_path / 'noc.toml'}: line 2")
    assert "byte 0xe9 is not UTF-8" in run.stdout and "Traceback" not in run.stderr


def test_a_junk_section_variable_names_the_variable(tmp_path: Path) -> None:
    run = run_noc(tmp_path, VALID, {"NOC_HEALTH": "{"}, "check")
    assert run.returncode == 3
    assert run.stdout.startswith("NOC UNKNOWN - config error: $NOC_HEALTH: health: not valid JSON")
    assert "Traceback" not in run.stderr
    shown = run_noc(tmp_path, VALID, {"NOC_REGIONS": "[1,"}, "config", "show")
    assert shown.returncode == 3 and "$NOC_REGIONS: regions: not valid JSON" in shown.stderr


def test_a_bad_key_below_a_section_names_its_variable(tmp_path: Path) -> None:
    run = run_noc(tmp_path, VALID, {"NOC_HEALTH__X__Y": "1"}, "check")
    assert run.returncode == 3
    assert "(overridden by $NOC_HEALTH__X__Y): health.x: unknown key" in run.stdout


@pytest.mark.parametrize("state_dir", ["~nosuchuser/noc", "relative/dir", ""])
def test_an_unusable_state_dir_is_a_config_error(tmp_path: Path, state_dir: str) -> None:
    raw = VALID.replace(
        b'"fuzz"\n', b'"fuzz"\n"state_dir" = ' + json.dumps(state_dir).encode() + b"\n"
    )
    run = run_noc(tmp_path, raw, {}, "check")
    assert run.returncode == 3, run.stdout + run.stderr
    assert f"{tmp_path / 'noc.toml'}: estate.state_dir:" in run.stdout
