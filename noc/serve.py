"""`noc serve`: the dashboard in a browser, for a wall screen that is only a kiosk browser.

textual-serve starts one `noc` process per browser connection and relays its
screen over a websocket. Every such process is read-only unless --allow-actions
is given: a wall screen is looked at, and a browser tab is easy to leave open.
It listens on loopback unless told otherwise; beyond loopback anyone who can
reach the port sees the estate (textual-serve has no login and no TLS), so noc
says so loudly before it starts.

Two more guards, because a browser runs pages from anywhere next to the dashboard:

- the websocket that drives a dashboard is refused (403, logged) when its Origin is
  not the page noc serves (same scheme, host and port): a page on another site the
  operator's browser opens cannot read the estate or press keys in it;
- with --allow-actions, a browser's dashboard takes actions only if it presented the
  token: the operator opens `<url>/?token=<token>` once, noc keeps it in a strict
  same-site, HttpOnly cookie that the websocket upgrade must carry. Without it the
  browser gets the read-only dashboard. The token is `[serve] token` (or
  NOC_SERVE__TOKEN), or made up at each start and printed.

Each browser's noc lives exactly as long as its websocket. textual-serve asks the
process to quit and then waits on it for ever; a noc whose exit hung (or one run
through `sh -c`, where a signal reaches only the shell) was left running, with the
demo's redis-servers, after the tab closed and after `noc serve` itself stopped.
Here every session's noc leads its own process group: when the websocket closes it
is asked to quit, then sent SIGTERM, then SIGKILL, group and all (the demo's
redis-servers are in it), all within SESSION_END_SECONDS; stopping `noc serve`
(SIGTERM, SIGINT or SIGHUP) ends every session that way before it exits.

The page fetches nothing from anywhere but noc serve: a wall screen on an isolated
network must not wait on, or break for, a web font. textual-serve's page links
Google Fonts; noc swaps that for the Roboto Mono files textual-serve ships, and a
Content-Security-Policy keeps the browser to this origin whatever the page says.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import shlex
import signal
import socket
import sys
from asyncio.subprocess import Process
from typing import Any

from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int
from yarl import URL

from noc.config import load_config

log = logging.getLogger(__name__)

# Where a browser keeps the token once it has presented it.
TOKEN_COOKIE = "noc_serve_token"

# A closed session's noc is gone within SESSION_END_SECONDS: it is asked to quit (a
# demo's clean exit, its redis-servers stopped, takes about a second), then its
# process group is sent SIGTERM, then SIGKILL.
QUIT_GRACE_SECONDS = 3.0
TERM_GRACE_SECONDS = 1.0
SESSION_END_SECONDS = 5.0

# textual-serve's page takes its font from Google; the same font ships in its static
# folder. Variable fonts: one file covers every weight.
_WEB_FONT_LINK = re.compile(
    r"<link[^>]*href=[\"']https?://fonts\.googleapis\.com/[^>]*>", re.IGNORECASE
)
_LOCAL_FONT_FACES = """<style>
      @font-face {{
        font-family: "Roboto Mono";
        src: url("{static}fonts/RobotoMono-VariableFont_wght.ttf") format("truetype");
        font-weight: 100 700;
        font-style: normal;
      }}
      @font-face {{
        font-family: "Roboto Mono";
        src: url("{static}fonts/RobotoMono-Italic-VariableFont_wght.ttf") format("truetype");
        font-weight: 100 700;
        font-style: italic;
      }}
    </style>"""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def noc_command(args: argparse.Namespace, *, allow_actions: bool | None = None) -> list[str]:
    """The command each browser connection runs: this noc, with the same estate and display;
    actions as `--allow-actions` says, unless `allow_actions` decides for one browser."""
    if allow_actions is None:
        allow_actions = args.allow_actions
    command = [sys.executable, "-m", "noc"]
    if args.demo:
        command.append("demo")
    else:
        # Resolved now, so a bad file is an error here and not in every browser.
        command += ["--config", str(load_config(getattr(args, "config", None)).path.resolve())]
    if allow_actions:
        command.append("--allow-actions")
    else:
        command.append("--read-only")
    if args.theme:
        command += ["--theme", args.theme]
    if args.wall:
        command.append("--wall")
    if args.low_bandwidth:
        command.append("--low-bandwidth")
    return command


def warning(host: str, port: int, allow_actions: bool) -> str | None:
    """What to shout before listening beyond loopback; None on loopback."""
    if is_loopback(host):
        return None
    lines = [
        f"WARNING: noc serve is listening on {host}:{port}, beyond this machine.",
        "Anyone who can reach that address sees the whole estate: there is no login",
        "and no encryption. Put it behind a VPN, a firewall or an authenticating proxy.",
    ]
    if allow_actions:
        lines.append(
            "AND --allow-actions is on: anyone who reaches it with the token can FAIL OVER "
            "the estate."
        )
    else:
        lines.append("Actions are off: every browser gets a read-only dashboard.")
    rule = "!" * max(len(line) for line in lines)
    return "\n".join([rule, *lines, rule])


def public_url(host: str, port: int, given: str | None) -> str:
    """Where browsers find the page: a wildcard address is no place to connect to."""
    if given:
        return given.rstrip("/")
    shown = socket.getfqdn() if host in ("0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port, as a browser's Origin header compares them."""
    parsed = URL(url)
    return (parsed.scheme.lower(), (parsed.host or "").lower(), parsed.port)


def _signal_group(leader: int, signum: signal.Signals) -> None:
    """`signum` to every process left in the group `leader` led (none left: nothing)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader, signum)


async def _exited(process: Process, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await process.wait()
    except TimeoutError:
        return False
    return True


class Session(AppService):
    """One browser's noc, run directly (no shell in between) as the leader of its own
    process group, and ended with everything it started when the session ends."""

    def __init__(self, argv: list[str], **kwargs: Any) -> None:
        super().__init__(shlex.join(argv), **kwargs)
        self.argv = argv
        self._ending: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Process:
        environment = self._build_environment(width=width, height=height)
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
            # Its own group: the demo's redis-servers join it, and one killpg ends all.
            start_new_session=True,
        )
        assert process.stdin is not None
        self._stdin = process.stdin
        return process

    async def stop(self) -> None:
        """End this session's noc (idempotent; the websocket's end and the server's
        shutdown may both ask). Shielded: a cancelled caller must not leave it half
        done, with a group that was sent SIGTERM but never SIGKILL."""
        if self._ending is None:
            self._ending = asyncio.create_task(self._end())
        await asyncio.shield(self._ending)

    async def _end(self) -> None:
        process = self._process
        if process is None:
            return
        await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
        await self.send_meta({"type": "quit"})  # False once its stdin is gone: fine
        if not await _exited(process, QUIT_GRACE_SECONDS):
            log.warning("noc serve: session %d did not quit; sending SIGTERM", process.pid)
            _signal_group(process.pid, signal.SIGTERM)
            if not await _exited(process, TERM_GRACE_SECONDS):
                log.warning("noc serve: session %d ignored SIGTERM; killing it", process.pid)
                _signal_group(process.pid, signal.SIGKILL)
                await process.wait()
        # The noc is gone; anything of its group still there (a redis-server its demo
        # failed to stop) goes too. The group is still ours: it lives while a member does.
        _signal_group(process.pid, signal.SIGKILL)
        if self._task is not None:
            # Its relay ends at the noc's end of output; it holds nothing more.
            _, running = await asyncio.wait({self._task}, timeout=TERM_GRACE_SECONDS)
            for task in running:
                task.cancel()
            self._task = None


class NocServer(Server):
    """textual-serve's server with an Origin check and a token for actions.

    Each browser connection runs `read_only` unless actions are allowed
    (`with_actions` is not None) and it carries the token.
    """

    def __init__(
        self,
        read_only: list[str],
        with_actions: list[str] | None,
        token: str,
        *,
        host: str,
        port: int,
        public_url: str,
    ) -> None:
        super().__init__(
            shlex.join(read_only), host=host, port=port, title="noc", public_url=public_url
        )
        self.read_only = read_only
        self.with_actions = with_actions
        self.token = token
        # The sessions running now, and their websockets: stopping the server ends them.
        self.sessions: dict[Session, web.WebSocketResponse] = {}

    async def on_startup(self, app: web.Application) -> None:
        await super().on_startup(app)
        # A hang-up (the terminal serve runs in closed) stops it as cleanly as SIGTERM.
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.request_exit)

    async def on_shutdown(self, app: web.Application) -> None:
        """Before aiohttp waits on the handlers (up to a minute): end every session's
        noc, all at once, then close the websockets."""
        sessions = dict(self.sessions)
        await asyncio.gather(*(session.stop() for session in sessions), return_exceptions=True)
        for websocket in sessions.values():
            await websocket.close()
        await super().on_shutdown(app)

    def initialize_logging(self) -> None:
        super().initialize_logging()
        # The access log would write the page's `?token=` in clear.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    def token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        given = request.query.get("token")
        if given is None:
            return self.self_contained(await super().handle_index(request))
        if not self.token_ok(given):
            log.warning("noc serve: wrong token from %s", request.remote)
            raise web.HTTPForbidden(text="wrong token\n")
        # Kept by the browser, sent only to this origin; off the address bar, where a
        # wall screen would show it to the room.
        found = web.HTTPFound(location="/")
        found.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="Strict", path="/")
        raise found

    def self_contained(self, page: web.StreamResponse) -> web.StreamResponse:
        """textual-serve's page with its web font served from here, and a policy that
        keeps the browser to this origin (and this websocket) for everything."""
        assert isinstance(page, web.Response) and page.text is not None
        static = f"{self.public_url}/static/"
        page.text = _WEB_FONT_LINK.sub(_LOCAL_FONT_FACES.format(static=static), page.text)
        scheme, rest = self.public_url.split(":", 1)
        websocket = ("wss:" if scheme == "https" else "ws:") + rest
        page.headers["Content-Security-Policy"] = "; ".join([
            "default-src 'self'",
            # The page's own inline script and styles; nothing from elsewhere.
            "script-src 'self' 'unsafe-inline'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src 'self' {websocket}",
            # No other site may frame the dashboard and steer clicks or keys into it.
            "frame-ancestors 'self'",
        ])  # fmt: skip
        return page

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """As textual-serve's, after the Origin check, with this browser's command."""
        sent = request.headers.get("Origin")
        # A browser always sends Origin on a websocket; a missing one is not a browser,
        # so not a page some other site made the operator's browser open.
        if sent is not None and origin(sent) != origin(self.public_url):
            log.warning(
                "noc serve: refused a websocket from Origin %s (noc serves %s) from %s",
                sent, self.public_url, request.remote,
            )  # fmt: skip
            raise web.HTTPForbidden(text="foreign Origin\n")
        acts = self.with_actions is not None and self.token_ok(request.cookies.get(TOKEN_COOKIE))
        command = self.with_actions if acts and self.with_actions else self.read_only
        log.info("noc serve: dashboard for %s (%s)", request.remote,
                 "actions allowed" if acts else "read-only")  # fmt: skip
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        session: Session | None = None

        async def close() -> None:
            await websocket.close()

        try:
            await websocket.prepare(request)
            session = Session(
                command,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=close,
                download_manager=self.download_manager,
                debug=self.debug,
            )
            self.sessions[session] = websocket
            await session.start(width, height)
            log.info("noc serve: session %s started for %s", session.pid, request.remote)
            await self._process_messages(websocket, session)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception:
            log.exception("noc serve: a browser's dashboard failed")
        finally:
            if session is not None:
                await session.stop()
                self.sessions.pop(session, None)
                log.info("noc serve: session %s ended", session.pid)
        return websocket


def serve(args: argparse.Namespace) -> int:
    read_only = noc_command(args, allow_actions=False)
    with_actions = noc_command(args, allow_actions=True) if args.allow_actions else None
    configured = None if args.demo else load_config(getattr(args, "config", None)).config.serve
    token = (
        configured.token.get_secret_value()
        if configured is not None and configured.token is not None
        else secrets.token_urlsafe(24)
    )
    url = public_url(args.host, args.port, args.public_url)
    shout = warning(args.host, args.port, args.allow_actions)
    if shout:
        print(shout, file=sys.stderr)
    if args.allow_actions:
        shown = "<[serve] token>" if configured is not None and configured.token else token
        print(
            f"Actions need the token: open {url}/?token={shown} (without it, read-only)",
            file=sys.stderr,
            flush=True,
        )
    server = NocServer(
        read_only, with_actions, token, host=args.host, port=args.port, public_url=url
    )
    server.serve()
    return 0
