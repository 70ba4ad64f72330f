"""`noc serve`: a real server on loopback, its page fetched over HTTP and the dashboard
itself started over the websocket, read-only unless actions are allowed; each
session's noc (and the demo's redis-servers it started) ends with its websocket and
with serve; the dashboard exits on SIGTERM under the web driver and headless.

Every test here must leave no process of its own running (checked after each)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import pytest
from paths import TESTS
from processes import descendants, leaves_no_process, name, wait_gone
from support import estate_config

from noc.app import NocApp
from noc.cli import build_parser
from noc.scheduler import end_tasks
from noc.serve import is_loopback, noc_command, public_url, warning

# Generous, for a loaded machine: what is promised is noc.serve.SESSION_END_SECONDS
# (serve's own timers enforce it); the tests that wait print the figures measured.
DEADLINE_SECONDS = 10.0


@pytest.fixture(autouse=True)
def _leaves_no_process() -> Iterator[None]:
    with leaves_no_process(DEADLINE_SECONDS):
        yield


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


# --- sessions end with their websocket and with serve --------------------------------


async def open_session(
    session: aiohttp.ClientSession, port: int
) -> aiohttp.ClientWebSocketResponse:
    """A browser's dashboard, open and drawn (as the page opens it, with its Origin)."""
    websocket = await session.ws_connect(
        f"http://127.0.0.1:{port}/ws?width=100&height=30", origin=f"http://127.0.0.1:{port}"
    )
    drawn = b""
    async with asyncio.timeout(60):
        while b"READ-ONLY" not in drawn:
            message = await websocket.receive()
            assert message.type is aiohttp.WSMsgType.BINARY, message
            drawn += message.data
    return websocket


def session_tree(server: subprocess.Popen[bytes]) -> dict[int, str]:
    return {pid: name(pid) for pid in descendants(server.pid)}


def assert_a_demo_session(tree: dict[int, str], count: int = 1) -> None:
    """`count` nocs, each with the demo's 5 redis-servers, and nothing between serve and
    a noc (a shell would take the signals meant for it)."""
    assert sorted(tree.values()).count("redis-server") == 5 * count, tree
    assert len(tree) == 6 * count, tree


async def test_a_closed_session_ends_its_noc_and_its_redis_servers(
    served: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, server = served
    await fetch_page(port)
    async with aiohttp.ClientSession() as session:
        websocket = await open_session(session, port)
        tree = session_tree(server)
        assert_a_demo_session(tree)
        await websocket.close()
        left, took = await asyncio.to_thread(wait_gone, tree, DEADLINE_SECONDS)
    assert not left, f"still running after the session closed: {left}"
    print(f"session ended {took:.2f} s after its websocket closed")
    assert server.poll() is None, "serve itself goes on"


async def test_stopping_serve_ends_every_session(
    served: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, server = served
    await fetch_page(port)
    async with aiohttp.ClientSession() as session:
        first, second = await open_session(session, port), await open_session(session, port)
        tree = session_tree(server)
        assert_a_demo_session(tree, count=2)
        server.send_signal(signal.SIGTERM)
        status = await asyncio.to_thread(server.wait, DEADLINE_SECONDS)
        left, took = await asyncio.to_thread(wait_gone, tree, DEADLINE_SECONDS)
        for websocket in (first, second):
            await closed_by_serve(websocket)
    assert status == 0
    assert not left, f"still running after serve stopped: {left}"
    print(f"both sessions ended {took:.2f} s after serve exited")


async def closed_by_serve(websocket: aiohttp.ClientWebSocketResponse) -> None:
    """The browser sees its session end (what was drawn before may still be queued)."""
    ended = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    async with asyncio.timeout(DEADLINE_SECONDS):
        while (await websocket.receive()).type not in ended:
            pass


# --- the page fetches nothing from elsewhere -----------------------------------------


class Fetched(HTMLParser):
    """Every address the page makes a browser fetch: src and href attributes, and
    url(...) and @import in its inline styles."""

    def __init__(self) -> None:
        super().__init__()
        self.addresses: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for attribute, value in attrs:
            if attribute in ("src", "href") and value:
                self.addresses.append(value)

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.addresses += css_addresses(data)


def css_addresses(css: str) -> list[str]:
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)  # a comment fetches nothing
    found = re.findall(r"""url\(\s*["']?([^"')]+)""", css)
    return found + re.findall(r"""@import\s+["']([^"']+)""", css)


async def test_the_page_fetches_nothing_from_elsewhere(
    served: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = served
    own = f"http://127.0.0.1:{port}/"
    page = await fetch_page(port)
    fetched = Fetched()
    fetched.feed(page)
    addresses = fetched.addresses
    assert any(address.endswith(".ttf") for address in addresses), "the font is served here"
    async with aiohttp.ClientSession() as session:
        async with session.get(own) as response:
            policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "font-src 'self'" in policy
        for address in list(addresses):
            assert not re.match(r"(?i)(https?:)?//", address) or address.startswith(own), (
                f"the page fetches {address} from elsewhere"
            )
            async with session.get(urljoin(own, address)) as response:
                assert response.status == 200, address
                if address.endswith(".css"):
                    for inner in css_addresses(await response.text()):
                        assert not re.match(r"(?i)(https?:)?//", inner), (address, inner)


# --- the dashboard exits on SIGTERM under every driver -------------------------------


async def exits_cleanly(process: asyncio.subprocess.Process, ending: str) -> None:
    """Ends `process` by `ending` and checks it exits 0, with every server it started."""
    tree = {pid: name(pid) for pid in descendants(process.pid)}
    assert sorted(tree.values()).count("redis-server") == 5, tree
    if ending in ("SIGTERM", "SIGHUP"):
        process.send_signal(getattr(signal, ending))
    elif ending == "quit":  # what textual-serve sends when its websocket closes
        quit_meta = json.dumps({"type": "quit"}).encode()
        assert process.stdin is not None
        process.stdin.write(b"M" + len(quit_meta).to_bytes(4, "big") + quit_meta)
    else:  # "stdin closed": noc serve itself was killed
        assert process.stdin is not None
        process.stdin.close()
    async with asyncio.timeout(DEADLINE_SECONDS):
        status = await process.wait()
    assert status == 0
    left, _ = await asyncio.to_thread(wait_gone, tree, DEADLINE_SECONDS)
    assert not left, f"its servers outlived it: {left}"


@pytest.mark.parametrize("ending", ["SIGTERM", "SIGHUP", "quit", "stdin closed"])
async def test_the_dashboard_under_the_web_driver_exits(tmp_path: Path, ending: str) -> None:
    """As noc serve runs it: textual-serve's environment, its protocol on pipes."""
    env = dict(
        os.environ,
        XDG_STATE_HOME=str(tmp_path / "state"),
        TEXTUAL_DRIVER="textual.drivers.web_driver:WebDriver",
        COLUMNS="100",
        ROWS="30",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "noc", "demo", "--read-only",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    drawn = b""
    try:
        async with asyncio.timeout(60):
            while b"READ-ONLY" not in drawn:
                drawn += await process.stdout.read(65536)
        # Read on, as serve does: a noc whose output nobody reads would block on it.
        reading = asyncio.create_task(process.stdout.read())
        await exits_cleanly(process, ending)
        await reading
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


HEADLESS = str(TESTS / "headless_dashboard.py")


@pytest.mark.parametrize("ending", ["SIGTERM", "SIGHUP"])
async def test_a_headless_dashboard_exits(tmp_path: Path, ending: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, HEADLESS, str(tmp_path / "state"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            assert await process.stdout.readline() == b"ready\n"
        await exits_cleanly(process, ending)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stubborn_loop(swallowed: list[int]) -> None:
    """A poll loop whose first cancellation a library swallows, as redis-py's
    wait_for can on Python 3.11: it then polls on as if nothing had asked it to stop."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed.append(1)


async def test_ending_tasks_outlasts_a_swallowed_cancellation() -> None:
    swallowed: list[int] = []
    stubborn = asyncio.create_task(stubborn_loop(swallowed))
    polite = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    async with asyncio.timeout(DEADLINE_SECONDS):
        await end_tasks([stubborn, polite])
    assert stubborn.cancelled() and polite.cancelled() and swallowed == [1]


async def test_a_headless_app_exits_though_a_poll_loop_swallowed_its_cancellation(
    tmp_path: Path,
) -> None:
    """The hang of issue 16: App.exit waited for ever on the scheduler's stop."""
    swallowed: list[int] = []
    loops: list[asyncio.Task[None]] = []
    app = NocApp(estate_config(), start_polling=False, state_path=tmp_path)

    async def run_and_exit() -> None:
        async with app.run_test() as pilot:
            # Supervised like every poll loop (the scheduler's own way to start one).
            app.scheduler._spawn("stubborn", partial(stubborn_loop, swallowed))
            loops.append(app.scheduler._tasks["stubborn"])
            await pilot.pause()
            app.exit()

    # Waited on, not cancelled at the deadline: a cancellation would end the hang itself.
    running = asyncio.create_task(run_and_exit())
    done, _ = await asyncio.wait({running}, timeout=DEADLINE_SECONDS)
    if not done:
        running.cancel()
        await asyncio.wait({running})
        pytest.fail(f"the app's exit had not finished {DEADLINE_SECONDS} s later")
    await running
    assert swallowed == [1]
    assert loops[0].cancelled(), "the loop was ended, not left polling"
