"""`noc serve`: the dashboard in a browser, for a wall screen that is only a kiosk browser.

textual-serve starts one `noc` process per browser connection and relays its
screen over a websocket. Every such process is read-only unless --allow-actions
is given: a wall screen is looked at, and a browser tab is easy to leave open.
It listens on loopback unless told otherwise; beyond loopback anyone who can
reach the port sees the estate (textual-serve has no login and no TLS), so noc
says so loudly before it starts.
"""

from __future__ import annotations

import argparse
import ipaddress
import shlex
import socket
import sys

from textual_serve.server import Server

from noc.config import load_config


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def noc_command(args: argparse.Namespace) -> list[str]:
    """The command each browser connection runs: this noc, with the same estate and display."""
    command = [sys.executable, "-m", "noc"]
    if args.demo:
        command.append("demo")
    else:
        # Resolved now, so a bad file is an error here and not in every browser.
        command += ["--config", str(load_config(getattr(args, "config", None)).path.resolve())]
    if args.allow_actions:
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
        lines.append("AND --allow-actions is on: anyone who reaches it can FAIL OVER the estate.")
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


def serve(args: argparse.Namespace) -> int:
    command = noc_command(args)
    shout = warning(args.host, args.port, args.allow_actions)
    if shout:
        print(shout, file=sys.stderr)
    server = Server(
        shlex.join(command),
        host=args.host,
        port=args.port,
        title="noc",
        public_url=public_url(args.host, args.port, args.public_url),
    )
    server.serve()
    return 0
