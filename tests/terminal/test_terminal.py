"""When the terminal goes away, noc goes too: promptly, without spinning, leaving nothing.

Real `noc demo` processes on real pseudo-terminals; the terminal is hung up the
way sshd or tmux does it. The bounds are generous (the requirement: 5 s); the
measured figures are in bench/tty_hangup.py and the README.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from paths import BENCH, TESTS

sys.path.insert(0, str(BENCH))
from ptyproc import PtyProcess

EXIT_WITHIN_SECONDS = 5.0
# The clean way out (stop the scheduler and the demo's servers) costs a few tenths
# of a CPU second; a busy loop would burn about one per second until killed.
CPU_BOUND_SECONDS = 2.0


@pytest.fixture
def spawned() -> Iterator[list[PtyProcess]]:
    processes: list[PtyProcess] = []
    yield processes
    for process in processes:
        process.stop()


def start_demo(spawned: list[PtyProcess], tmp_path: Path, *, block_sighup: bool) -> PtyProcess:
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    argv = [sys.executable, "-m", "noc", "demo"]
    process = PtyProcess.spawn(argv, env=env, block_sighup=block_sighup)
    spawned.append(process)
    assert process.read_until(b"LIVE", timeout=60), process.output[-2000:]
    return process


@pytest.mark.parametrize("block_sighup", [False, True], ids=["sighup", "no-sighup"])
def test_hung_up_terminal_ends_noc(
    spawned: list[PtyProcess], tmp_path: Path, block_sighup: bool
) -> None:
    process = start_demo(spawned, tmp_path, block_sighup=block_sighup)
    servers = process.children()
    assert servers, "the demo runs its redis-servers as child processes"
    process.hang_up()
    ended = process.wait(EXIT_WITHIN_SECONDS)
    assert ended is not None, f"noc still running {EXIT_WITHIN_SECONDS} s after the hang-up"
    assert ended.code == 0
    assert ended.cpu_seconds < CPU_BOUND_SECONDS
    assert not [pid for pid in servers if Path(f"/proc/{pid}").exists()]


def test_output_that_cannot_be_written_ends_noc(tmp_path: Path) -> None:
    """The screen goes out on stderr (Textual's choice); here it is a pipe whose reader
    goes away, so every write fails: noc must neither hang nor spin."""
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    master, slave = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "noc", "demo"],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    try:
        assert process.stderr is not None
        drawn = b""
        while b"LIVE" not in drawn:
            chunk = process.stderr.read1(65536)
            assert chunk, drawn[-2000:]
            drawn += chunk
        process.stderr.close()
        process.wait(timeout=EXIT_WITHIN_SECONDS)
        assert process.returncode == 0
    finally:
        process.kill()
        process.wait()
        os.close(master)


def test_steady_state_output_stays_small(spawned: list[PtyProcess], tmp_path: Path) -> None:
    """Once settled, noc resends only what changed: the clock line and the rows whose
    numbers moved. Repainting whole widgets every second was about 4,800 bytes/s at
    80x24; bench/tty_bandwidth.py gives the figures beside htop."""
    process = start_demo(spawned, tmp_path, block_sighup=False)
    process.read_for(4)
    assert process.read_for(10) / 10 < 2000


CRASHING = str(TESTS / "crashing_dashboard.py")


def start_crashing(spawned: list[PtyProcess], tmp_path: Path, *, block_sighup: bool) -> PtyProcess:
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    process = PtyProcess.spawn([sys.executable, CRASHING], env=env, block_sighup=block_sighup)
    spawned.append(process)
    assert process.read_until(b"LIVE", timeout=60), process.output[-2000:]
    process.read_for(1)
    return process


@pytest.mark.parametrize("block_sighup", [False, True], ids=["sighup", "no-sighup"])
def test_a_crashed_dashboard_on_an_unread_terminal_still_ends_with_it(
    spawned: list[PtyProcess], tmp_path: Path, block_sighup: bool
) -> None:
    """The crash report is bigger than the terminal's buffer and nobody reads it:
    Textual blocks writing it. The hang-up must still end noc, non-zero."""
    process = start_crashing(spawned, tmp_path, block_sighup=block_sighup)
    os.write(process.fd, b"?")
    # Long enough for the crash and the report to block; nothing is read meanwhile.
    time.sleep(3)
    assert Path(f"/proc/{process.pid}").exists(), "blocked on its crash report, as intended"
    servers = process.children()
    process.hang_up()
    ended = process.wait(EXIT_WITHIN_SECONDS)
    assert ended is not None, f"noc still running {EXIT_WITHIN_SECONDS} s after the hang-up"
    assert ended.code != 0
    assert not [pid for pid in servers if Path(f"/proc/{pid}").exists()]


def test_an_unhandled_error_exits_1_and_is_logged(
    spawned: list[PtyProcess], tmp_path: Path
) -> None:
    """A supervisor with restart-on-failure must see the crash: status 1, not 0."""
    process = start_crashing(spawned, tmp_path, block_sighup=False)
    os.write(process.fd, b"?")
    # Read everything (the crash report too) until noc has gone.
    deadline = time.monotonic() + 30
    pid = status = 0
    while not pid and time.monotonic() < deadline:
        process.read_for(0.2)
        pid, status = os.waitpid(process.pid, os.WNOHANG)
    assert pid, "noc did not exit after its crash"
    spawned.remove(process)  # reaped here
    os.close(process.fd)
    assert os.waitstatus_to_exitcode(status) == 1
    assert b"injected crash" in bytes(process.output)
    logs = "".join(p.read_text() for p in (tmp_path / "state").rglob("noc.log*"))
    assert "the dashboard stopped on an unhandled error" in logs
    assert "RuntimeError: injected crash" in logs
