"""`noc serve`: a real server on loopback, its page fetched over HTTP and the dashboard
itself started over the websocket, read-only unless actions are allowed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from noc.cli import build_parser
from noc.serve import is_loopback, noc_command, public_url, warning


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    server = subprocess.Popen(
        [sys.executable, "-m", "noc", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield port, server
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def fetch_page(port: int) -> str:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"http://127.0.0.1:{port}/") as response:
                    assert response.status == 200
                    return await response.text()
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    raise AssertionError("noc serve never answered")


async def test_the_page_loads_and_the_dashboard_runs_read_only(
    served: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = served
    page = await fetch_page(port)
    assert "xterm" in page  # textual-serve's terminal in the page
    assert f"ws://127.0.0.1:{port}/ws" in page
    drawn = b""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{port}/ws?width=100&height=30") as websocket,
    ):
        async with asyncio.timeout(60):
            while b"READ-ONLY" not in drawn:
                message = await websocket.receive()
                assert message.type is aiohttp.WSMsgType.BINARY, message
                drawn += message.data
    assert b"demo-mail" in drawn


def parse(*argv: str) -> object:
    return build_parser().parse_args(["serve", *argv])


def test_each_browser_gets_a_read_only_dashboard_unless_actions_are_allowed() -> None:
    command = noc_command(parse("--demo", "--wall", "--theme", "wall"))  # type: ignore[arg-type]
    assert command[1:] == ["-m", "noc", "demo", "--read-only", "--theme", "wall", "--wall"]
    allowed = noc_command(parse("--demo", "--allow-actions"))  # type: ignore[arg-type]
    assert "--read-only" not in allowed and "--allow-actions" in allowed


def test_a_config_error_stops_serve_before_it_listens(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "noc", "serve", "--config", str(tmp_path / "missing.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 3
    assert "missing.toml: no such file" in run.stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("wall", False)],
)
def test_loud_warning_beyond_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    shout = warning(host, 8000, allow_actions=False)
    assert (shout is None) is loopback
    if shout:
        assert "WARNING" in shout and "no login" in shout and "read-only" in shout
        assert "FAIL OVER" in str(warning(host, 8000, allow_actions=True))


def test_browsers_are_not_sent_to_a_wildcard_address() -> None:
    assert "0.0.0.0" not in public_url("0.0.0.0", 8000, None)
    assert public_url("127.0.0.1", 8000, None) == "http://127.0.0.1:8000"
    assert public_url("0.0.0.0", 8000, "https://wall.example/") == "https://wall.example"
