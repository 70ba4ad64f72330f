"""A real BIND 9 `named` for DNS tests: zones in a temp dir, a loopback port, always stopped.

Use it from a test module by importing the fixture (tests/ is on sys.path):

    from named import NamedServer, Zone, named_servers  # noqa: F401

- `named_servers(zones, tsig=None)`: a module-scoped factory of started NamedServers;
  every server it started is stopped when the module's tests are done.
- `NamedServer`: the helper itself, for a test that wants to manage one by hand.
- `TsigKey` and `Zone(allow_update=True)`: a key in named.conf and `allow-update` with
  it, for RFC 2136 updates.

Without `named` the tests skip with the install hint, unless NOC_REQUIRE_NAMED=1 (CI
sets it): then they fail, since a CI that silently skips every DNS test proves nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import pytest

INSTALL_HINT = "named (BIND 9) not installed: apt-get install bind9 bind9-utils"
# named answers ~0.15 s after launch; a loaded CI machine gets far more slack.
READY_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class TsigKey:
    name: str
    secret: str  # base64, as in named.conf
    algorithm: str = "hmac-sha256"

    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        """The keyring dnspython's UpdateMessage takes (`keyring=..., keyname=key.name`)."""
        return dns.tsigkeyring.from_text({self.name: (self.algorithm, self.secret)})


@dataclass(frozen=True, slots=True)
class Zone:
    """One primary zone. `text` is the zone file; `$ORIGIN` is the zone name."""

    name: str
    text: str
    allow_update: bool = False  # with the server's TSIG key


def named_binary() -> str:
    """The path of `named`, or skip (fail under NOC_REQUIRE_NAMED=1) with the install hint."""
    # /usr/sbin is not on every user's PATH, but that is where Debian puts named.
    found = shutil.which("named") or shutil.which("named", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        if os.environ.get("NOC_REQUIRE_NAMED") == "1":
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    return found


def free_port() -> int:
    """A loopback port free for both TCP and UDP: named binds both and cannot bind port 0."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no loopback port free for both TCP and UDP")


class NamedServer:
    """One authoritative, non-recursive named on 127.0.0.1, serving `zones`."""

    def __init__(self, directory: Path, zones: Sequence[Zone], tsig: TsigKey | None = None) -> None:
        if not zones:
            raise ValueError("named needs at least one zone (readiness is a SOA query)")
        if any(zone.allow_update for zone in zones) and tsig is None:
            raise ValueError("allow_update needs a TSIG key")
        self.directory = directory
        self.zones = tuple(zones)
        self.tsig = tsig
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """As a noc resolver string: `127.0.0.1:PORT`."""
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        path = self.directory / "named.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        binary = named_binary()
        # Zone files are copied fresh per server: updates write journals beside them.
        for zone in self.zones:
            (self.directory / f"{zone.name}.zone").write_text(zone.text)
        # The port is free when picked but could be taken before named binds it, so a
        # failed start is retried on a new port.
        for _ in range(3):
            self.port = free_port()
            conf = self.directory / "named.conf"
            conf.write_text(self._config())
            (self.directory / "named.log").unlink(missing_ok=True)
            self._process = subprocess.Popen(
                [binary, "-c", str(conf), "-f", "-n", "1", "-L", str(self.directory / "named.log")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ready():
                return
            self.stop()
            if "address in use" not in self.log:
                break
        raise RuntimeError(f"named did not start; its log:\n{self.log}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def _wait_ready(self) -> bool:
        query = dns.message.make_query(self.zones[0].name, "SOA")
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                response = dns.query.udp(query, "127.0.0.1", timeout=0.2, port=self.port)
            except (dns.exception.DNSException, OSError):
                time.sleep(0.02)
                continue
            # Even a SERVFAIL means named is up and answering; the zone is the test's business.
            return response.rcode() in (dns.rcode.NOERROR, dns.rcode.SERVFAIL)
        return False

    def _config(self) -> str:
        home = self.directory
        lines = []
        if self.tsig is not None:
            lines.append(
                f'key "{self.tsig.name}" {{ algorithm {self.tsig.algorithm}; '
                f'secret "{self.tsig.secret}"; }};'
            )
        lines += [
            "options {",
            f'  directory "{home}";',
            f'  pid-file "{home}/named.pid";',
            f'  session-keyfile "{home}/session.key";',
            f'  managed-keys-directory "{home}";',
            f"  listen-on port {self.port} {{ 127.0.0.1; }};",
            "  listen-on-v6 { none; };",
            "  recursion no;",
            "  dnssec-validation no;",
            "  notify no;",
            "};",
            # No rndc channel: it would want port 953 and a key file.
            "controls { };",
        ]
        key_name = self.tsig.name if self.tsig is not None else ""
        for zone in self.zones:
            update = f' allow-update {{ key "{key_name}"; }};' if zone.allow_update else ""
            lines.append(
                f'zone "{zone.name}" {{ type primary; file "{zone.name}.zone";{update} }};'
            )
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def named_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., NamedServer]]:
    started: list[NamedServer] = []

    def make(zones: Sequence[Zone], tsig: TsigKey | None = None) -> NamedServer:
        # pytest keeps the last few runs' temp dirs: named.log is there after a failure.
        server = NamedServer(tmp_path_factory.mktemp("named"), zones, tsig)
        started.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()
