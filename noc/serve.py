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
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ipaddress
import logging
import secrets
import shlex
import socket
import sys

from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int
from yarl import URL

from noc.config import load_config

log = logging.getLogger(__name__)

# Where a browser keeps the token once it has presented it.
TOKEN_COOKIE = "noc_serve_token"


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
        self.read_only = shlex.join(read_only)
        self.with_actions = shlex.join(with_actions) if with_actions is not None else None
        self.token = token

    def initialize_logging(self) -> None:
        super().initialize_logging()
        # The access log would write the page's `?token=` in clear.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    def token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        given = request.query.get("token")
        if given is None:
            response: web.StreamResponse = await super().handle_index(request)
            return response
        if not self.token_ok(given):
            log.warning("noc serve: wrong token from %s", request.remote)
            raise web.HTTPForbidden(text="wrong token\n")
        # Kept by the browser, sent only to this origin; off the address bar, where a
        # wall screen would show it to the room.
        found = web.HTTPFound(location="/")
        found.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="Strict", path="/")
        raise found

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
        app_service: AppService | None = None

        async def close() -> None:
            await websocket.close()

        try:
            await websocket.prepare(request)
            app_service = AppService(
                command,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=close,
                download_manager=self.download_manager,
                debug=self.debug,
            )
            await app_service.start(width, height)
            await self._process_messages(websocket, app_service)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception:
            log.exception("noc serve: a browser's dashboard failed")
        finally:
            if app_service is not None:
                await app_service.stop()
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
