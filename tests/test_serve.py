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


def start_serving(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, subprocess.Popen[bytes], Path]:
    port = free_port()
    environment = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), **(env or {}))
    said = tmp_path / "serve.err"
    with said.open("wb") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "noc", "serve", "--port", str(port), *extra],
            env=environment,
            stdout=err,  # textual-serve logs there
            stderr=subprocess.STDOUT,
        )
    return port, server, said


def stop_serving(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture
def served_with_actions(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    port, server, said = start_serving(tmp_path, "--demo", "--allow-actions")
    try:
        yield port, server, said
    finally:
        stop_serving(server)


def children(server: subprocess.Popen[bytes]) -> list[int]:
    tasks = Path(f"/proc/{server.pid}/task").iterdir()
    return [int(pid) for task in tasks for pid in (task / "children").read_text().split()]


def printed_token(said: Path) -> str:
    for line in said.read_text().splitlines():
        if "?token=" in line:
            return line.split("?token=", 1)[1].split()[0]
    raise AssertionError(said.read_text())


async def dashboard(session: aiohttp.ClientSession, port: int, origin: str) -> bytes:
    """What the browser's dashboard draws until its footer is there."""
    drawn = b""
    async with session.ws_connect(
        f"http://127.0.0.1:{port}/ws?width=160&height=40", origin=origin
    ) as websocket:
        async with asyncio.timeout(60):
            while b"Quit" not in drawn:
                message = await websocket.receive()
                assert message.type is aiohttp.WSMsgType.BINARY, message
                drawn += message.data
    return drawn


async def test_a_foreign_origin_is_refused_and_nothing_runs(
    served_with_actions: tuple[int, subprocess.Popen[bytes], Path],
) -> None:
    port, server, said = served_with_actions
    await fetch_page(port)
    token = printed_token(said)
    jar = aiohttp.CookieJar(unsafe=True)  # a cookie for 127.0.0.1, as a browser keeps it
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        # Even with the token in the browser: a page from elsewhere gets nothing.
        async with session.get(f"http://127.0.0.1:{port}/?token={token}") as response:
            assert response.status == 200
        for foreign in ("http://evil.example", f"http://127.0.0.1:{port + 1}", "null",
                        f"https://127.0.0.1:{port}"):  # fmt: skip
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                async with session.ws_connect(f"http://127.0.0.1:{port}/ws", origin=foreign):
                    pass
            assert refused.value.status == 403
    assert children(server) == [], "no dashboard was started for a foreign page"
    assert "refused a websocket from Origin http://evil.example" in said.read_text()


async def test_actions_need_the_token_as_well_as_allow_actions(
    served_with_actions: tuple[int, subprocess.Popen[bytes], Path],
) -> None:
    port, _, said = served_with_actions
    await fetch_page(port)
    token = printed_token(said)
    page = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        without = await dashboard(session, port, page)
        assert b"READ-ONLY" in without and b"Failover" not in without
        async with session.get(f"{page}/?token=wrong") as response:
            assert response.status == 403
        async with session.get(f"{page}/?token={token}") as response:
            assert response.status == 200
            assert response.url.query_string == "", "the token leaves the address bar"
        with_token = await dashboard(session, port, page)
        assert b"Failover" in with_token and b"READ-ONLY" not in with_token
    assert token not in said.read_text().replace(f"?token={token}", "", 1), "logged once only"


async def test_a_configured_token_is_used_and_not_printed(tmp_path: Path) -> None:
    config = tmp_path / "noc.toml"
    config.write_text(
        '[estate]\nname = "t"\n[[regions]]\nid = "ro"\nrole = "primary"\n'
        '[[regions.checks]]\nurl = "http://127.0.0.1:9/health"\n'
    )
    port, server, said = start_serving(
        tmp_path, "--config", str(config), "--allow-actions",
        env={"NOC_SERVE__TOKEN": "s3cret-token-for-a-test"},
    )  # fmt: skip
    try:
        await fetch_page(port)
        assert "s3cret" not in said.read_text()
        page = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.get(f"{page}/?token=s3cret-token-for-a-test") as response:
                assert response.status == 200
            assert b"Failover" in await dashboard(session, port, page)
    finally:
        stop_serving(server)
