"""The 3 a.m. SSH session: noc in tmux with TERM=linux and NO_COLOR=1 at 80x24.

A real estate on loopback puts every health on screen at once: ro answers (healthy),
bg has one check answering and one refused (degraded), pa is refused (down), and
xx's endpoint never answers within its long timeout (unknown, no answer yet).
Each must be readable in words, with no colour anywhere; and killing the tmux
server, which takes noc's terminal away, must end noc.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from noc.simulator import HealthEndpoint, RedisServer
from noc.simulator.health_endpoint import EndpointMode

pytestmark = pytest.mark.skipif(not shutil.which("tmux"), reason="apt-get install tmux")

WORDS = ("✓ healthy", "▲ degraded", "✗ down", "? unknown")
# SGR colour parameters that carry a hue; greys (and none) are what NO_COLOR allows.
_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_GREY_16 = {30, 37, 39, 40, 47, 49, 90, 97, 100, 107}


def hues(screen: str) -> list[str]:
    """Every colour in `screen`'s escape sequences that is not black, white or grey."""
    found: list[str] = []
    for match in _SGR.finditer(screen):
        codes = [int(code) for code in match.group(1).split(";") if code]
        i = 0
        while i < len(codes):
            code = codes[i]
            if code in (38, 48) and codes[i + 1 : i + 2] == [5]:
                index = codes[i + 2]
                if not (index in (0, 7, 8, 15, 16, 231) or 232 <= index <= 255):
                    found.append(match.group(0))
                i += 3
            elif code in (38, 48) and codes[i + 1 : i + 2] == [2]:
                red, green, blue = codes[i + 2 : i + 5]
                if not red == green == blue:
                    found.append(match.group(0))
                i += 5
            else:
                if (30 <= code <= 49 or 90 <= code <= 107) and code not in _GREY_16:
                    found.append(match.group(0))
                i += 1
    return found


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        run = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30
        )
        assert run.returncode == 0, run.stderr
        return run.stdout


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    session = Tmux(f"noc-test-{os.getpid()}-{tmp_path.name}")
    yield session
    subprocess.run(["tmux", "-L", session.socket, "kill-server"], capture_output=True, check=False)


def write_estate(path: Path, urls: dict[str, list[str]], store: str) -> Path:
    lines = [
        '[estate]\nname = "night-shift"\n',
        "[health]\ninterval_seconds = 1\nfailure_threshold = 1\ntimeout_seconds = 1\n",
    ]
    for index, (rid, checks) in enumerate(urls.items()):
        role = "primary" if index == 0 else "secondary"
        lines.append(f'[[regions]]\nid = "{rid}"\nrole = "{role}"\nredis_url = "{store}/{index}"\n')
        for url in checks:
            # xx's endpoint hangs: a long timeout keeps it waiting for its first answer.
            timeout = "timeout_seconds = 300\n" if rid == "xx" else ""
            lines.append(f'[[regions.checks]]\nurl = "{url}"\n{timeout}')
    path.write_text("\n".join(lines))
    return path


async def test_every_status_in_words_with_term_linux_and_no_color(
    tmp_path: Path,
    tmux: Tmux,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
    redis_server: RedisServer,
) -> None:
    healthy = await health_endpoint("ro")
    refused = await health_endpoint("pa")
    await refused.set_mode(EndpointMode.DOWN)
    silent = await health_endpoint("xx", slow_seconds=600)
    await silent.set_mode(EndpointMode.SLOW)
    config = write_estate(
        tmp_path / "noc.toml",
        {
            "ro": [healthy.url],
            "bg": [healthy.url, refused.url],
            "pa": [refused.url],
            "xx": [silent.url],
        },
        redis_server.url.rsplit("/", 1)[0],
    )
    command = (
        f"env TERM=linux NO_COLOR=1 XDG_STATE_HOME={tmp_path / 'state'} "
        f"{sys.executable} -m noc --config {config}"
    )
    tmux("new-session", "-d", "-x", "80", "-y", "24", "-s", "noc", command)
    pid = int(tmux("display-message", "-p", "-t", "noc", "#{pane_pid}"))

    screen = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # Asleep on the event loop, which also serves the health endpoints.
        screen = await asyncio.to_thread(tmux, "capture-pane", "-p", "-t", "noc")
        if all(word in screen for word in WORDS):
            break
        await asyncio.sleep(0.2)
    assert all(word in screen for word in WORDS), screen
    assert "★ active ro" in screen
    assert hues(tmux("capture-pane", "-p", "-e", "-t", "noc")) == []

    # tmux gone, terminal gone: noc must follow.
    tmux("kill-server")
    assert await asyncio.to_thread(gone_within, pid, 5.0), "noc outlived its tmux"


def gone_within(pid: int, seconds: float) -> bool:
    """Whether process `pid` has exited (or is only a zombie left to reap) in time."""
    status = Path(f"/proc/{pid}/status")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if "State:\tZ" in status.read_text():
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False
