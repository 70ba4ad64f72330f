"""The HTTP health collector against real servers on loopback (nothing mocked)."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from noc.clock import FakeClock
from noc.model import CheckSample, CheckTarget, ErrorKind, mask_secrets, mask_url
from noc.simulator import EndpointMode, HealthEndpoint
from noc_collectors.http import HttpHealthCollector

EndpointFactory = Callable[..., Awaitable[HealthEndpoint]]

# Bound on how late a timed-out probe may return: generous, so a loaded CI
# machine does not fail it, yet far below a slow endpoint's 30 s.
LATE = 5.0


def target(url: str, **overrides: Any) -> CheckTarget:
    return CheckTarget(check_id="t/0", region_id="t", name="health", url=url, **overrides)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def timed_probe(
    collector: HttpHealthCollector, check: CheckTarget
) -> tuple[CheckSample, float]:
    started = time.monotonic()
    sample = await collector.probe(check)
    return sample, time.monotonic() - started


@pytest.fixture(params=["aiohttp", "httpcore"])
async def collector(request: pytest.FixtureRequest) -> AsyncIterator[HttpHealthCollector]:
    """Each transport httpx may run on must classify every failure alike."""
    collector = HttpHealthCollector(transport=request.param)
    yield collector
    await collector.aclose()


@pytest.fixture
async def odd_server() -> AsyncIterator[str]:
    """Answers the endpoint itself cannot give: redirects, huge or trickling bodies."""

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/health")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 1024 * 1024 + b"healthy")

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(600):
            await response.write(b".")
            await asyncio.sleep(0.05)
        return response

    async def typed(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "replicas": [{"lag": 0}], "note": "a\nb"})

    async def authorized(request: web.Request) -> web.Response:
        wanted = "Basic " + base64.b64encode(b"operator:hunter2").decode()
        return web.Response(
            text="healthy" if request.headers.get("Authorization") == wanted else "who?"
        )

    app = web.Application()
    app.router.add_get("/auth", authorized)
    app.router.add_get("/moved", moved)
    app.router.add_get("/big", big)
    app.router.add_get("/trickle", trickle)
    app.router.add_get("/typed", typed)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A listener whose accept queue is full: a new connection's SYN goes unanswered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers = [socket.socket() for _ in range(3)]
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


async def test_healthy_endpoint_is_ok(
    collector: HttpHealthCollector, health_endpoint: EndpointFactory
) -> None:
    endpoint = await health_endpoint("ro")
    sample = await collector.probe(target(endpoint.url, body_contains="healthy"))
    assert sample.ok, sample.error
    assert (sample.check_id, sample.region_id, sample.status) == ("t/0", "t", 200)
    assert sample.error is None
    assert sample.latency_ms is not None and sample.latency_ms > 0
    assert endpoint.requests_served == 1


async def test_samples_are_stamped_by_the_injected_clock(health_endpoint: EndpointFactory) -> None:
    clock = FakeClock()
    collector = HttpHealthCollector(clock)
    try:
        sample = await collector.probe(target((await health_endpoint()).url))
    finally:
        await collector.aclose()
    assert (sample.at, sample.wall, sample.latency_ms) == (clock.monotonic(), clock.utcnow(), 0.0)


async def test_unexpected_status_is_http_status(
    collector: HttpHealthCollector, health_endpoint: EndpointFactory
) -> None:
    endpoint = await health_endpoint()
    await endpoint.set_mode(EndpointMode.UNAVAILABLE)
    sample = await collector.probe(target(endpoint.url))
    assert not sample.ok
    assert sample.error is not None
    assert (sample.error.kind, sample.error.detail, str(sample.error)) == (
        ErrorKind.HTTP_STATUS,
        "503",
        "HTTP 503",
    )
    assert not sample.error.unreachable
    assert sample.status == 503 and sample.latency_ms is not None


async def test_expect_status_other_than_200(
    collector: HttpHealthCollector, health_endpoint: EndpointFactory
) -> None:
    endpoint = await health_endpoint()
    await endpoint.set_mode(EndpointMode.UNAVAILABLE)
    assert (await collector.probe(target(endpoint.url, expect_status=503))).ok


async def test_redirect_is_not_followed(collector: HttpHealthCollector, odd_server: str) -> None:
    sample = await collector.probe(target(f"{odd_server}/moved"))
    assert sample.error is not None and sample.error.detail == "302"
    assert (await collector.probe(target(f"{odd_server}/moved", expect_status=302))).ok


async def test_slower_than_timeout_is_timeout(
    collector: HttpHealthCollector, health_endpoint: EndpointFactory
) -> None:
    endpoint = await health_endpoint(slow_seconds=30)
    await endpoint.set_mode(EndpointMode.SLOW)
    sample, elapsed = await timed_probe(collector, target(endpoint.url, timeout_seconds=0.5))
    assert sample.error is not None
    assert str(sample.error) == "timeout: no answer within 0.5 s"
    assert not sample.error.unreachable
    # No answer arrived, so there is no status and no latency to report.
    assert (sample.status, sample.latency_ms) == (None, None)
    assert elapsed < 0.5 + LATE


async def test_trickling_body_is_cut_at_the_overall_deadline(
    collector: HttpHealthCollector, odd_server: str
) -> None:
    # Each byte arrives well within httpx's read timeout: only the outer deadline stops it.
    check = target(f"{odd_server}/trickle", timeout_seconds=0.5)
    sample, elapsed = await timed_probe(collector, check)
    assert sample.error is not None
    assert sample.error.kind is ErrorKind.TIMEOUT
    assert sample.error.detail == "body not complete within 0.5 s"
    assert sample.status == 200 and sample.latency_ms is not None
    assert elapsed < 0.5 + LATE


async def test_body_is_read_only_up_to_64_kib(
    collector: HttpHealthCollector, odd_server: str
) -> None:
    sample = await collector.probe(target(f"{odd_server}/big", body_contains="healthy"))
    assert sample.error is not None
    assert sample.error.kind is ErrorKind.BODY_MISMATCH
    assert sample.error.detail == "'healthy' not in body (first 64 KiB)"


async def test_garbage_body_is_body_mismatch(
    collector: HttpHealthCollector, health_endpoint: EndpointFactory
) -> None:
    endpoint = await health_endpoint()
    await endpoint.set_mode(EndpointMode.GARBAGE)
    sample = await collector.probe(target(endpoint.url, body_contains="healthy"))
    assert sample.error is not None
    assert (sample.error.kind, sample.error.detail) == (
        ErrorKind.BODY_MISMATCH,
        "'healthy' not in body",
    )
    assert sample.status == 200


@pytest.mark.parametrize(
    ("mode", "field", "equals", "kind", "detail"),
    [
        (EndpointMode.HEALTHY, "status", "healthy", None, None),
        (EndpointMode.HEALTHY, "region", "t", None, None),
        (
            EndpointMode.HEALTHY,
            "status",
            "degraded",
            ErrorKind.JSON_MISMATCH,
            "status = 'healthy', expected 'degraded'",
        ),
        (
            EndpointMode.HEALTHY,
            "checks.db",
            "ok",
            ErrorKind.JSON_MISMATCH,
            "checks.db missing, expected 'ok'",
        ),
        (EndpointMode.GARBAGE, "status", "healthy", ErrorKind.PROTOCOL, "body is not JSON"),
    ],
)
async def test_json_condition(
    collector: HttpHealthCollector,
    health_endpoint: EndpointFactory,
    mode: EndpointMode,
    field: str,
    equals: str,
    kind: ErrorKind | None,
    detail: str | None,
) -> None:
    endpoint = await health_endpoint()
    await endpoint.set_mode(mode)
    sample = await collector.probe(target(endpoint.url, json_field=field, json_equals=equals))
    assert sample.ok is (kind is None)
    if kind is not None:
        assert sample.error is not None
        assert (sample.error.kind, sample.error.detail) == (kind, detail)


@pytest.mark.parametrize(
    ("field", "equals", "ok"),
    [
        ("ok", "true", True),
        ("replicas.0.lag", "0", True),
        ("replicas.1.lag", "0", False),
        ("ok", "True", False),
    ],
)
async def test_json_values_compare_as_json_text(
    collector: HttpHealthCollector, odd_server: str, field: str, equals: str, ok: bool
) -> None:
    check = target(f"{odd_server}/typed", json_field=field, json_equals=equals)
    assert (await collector.probe(check)).ok is ok


async def test_json_detail_is_one_line(collector: HttpHealthCollector, odd_server: str) -> None:
    check = target(f"{odd_server}/typed", json_field="note", json_equals="x" * 300)
    sample = await collector.probe(check)
    assert sample.error is not None
    assert "\n" not in sample.error.detail and len(sample.error.detail) <= 120


async def test_closed_port_is_refused_and_unreachable(collector: HttpHealthCollector) -> None:
    sample = await collector.probe(target(f"http://127.0.0.1:{closed_port()}/health"))
    assert sample.error is not None
    assert (sample.error.kind, sample.error.detail) == (ErrorKind.REFUSED, "connection refused")
    assert sample.error.unreachable
    assert (sample.status, sample.latency_ms) == (None, None)


async def test_unanswered_connect_is_connect_timeout(
    collector: HttpHealthCollector, unanswered_port: int
) -> None:
    check = target(f"http://127.0.0.1:{unanswered_port}/health", timeout_seconds=0.5)
    sample, elapsed = await timed_probe(collector, check)
    assert sample.error is not None
    # The overall deadline and httpx's connect timeout race; either way it is
    # reported as a connect timeout, which counts as unreachable.
    assert (sample.error.kind, sample.error.detail) == (
        ErrorKind.CONNECT_TIMEOUT,
        "no connection within 0.5 s",
    )
    assert sample.error.unreachable
    assert elapsed < 0.5 + LATE


async def test_not_http_is_protocol_error(collector: HttpHealthCollector) -> None:
    async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        sample = await collector.probe(target(f"http://127.0.0.1:{port}/health"))
    assert sample.error is not None
    assert sample.error.kind is ErrorKind.PROTOCOL
    assert not sample.error.unreachable


async def test_a_body_cut_short_is_protocol_error(collector: HttpHealthCollector) -> None:
    """The server promises 100 bytes and hangs up after 3: over aiohttp this is a
    ClientPayloadError (which its httpx transport reports as a connect timeout), over
    httpcore a RemoteProtocolError; either way the endpoint answered badly."""

    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhea")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(cut_short, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        sample = await collector.probe(target(f"http://127.0.0.1:{port}/health"))
    assert sample.error is not None
    assert sample.error.kind is ErrorKind.PROTOCOL
    assert not sample.error.unreachable


async def test_a_silent_server_is_no_answer_not_connect_timeout(
    collector: HttpHealthCollector,
) -> None:
    """Connected, request sent, nothing back: the transport must tell that the request
    went out (httpcore through its trace extension, aiohttp through its TraceConfig)."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the probe gives up and hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        check = target(f"http://127.0.0.1:{port}/health", timeout_seconds=0.3)
        sample = await collector.probe(check)
    assert sample.error is not None
    assert (sample.error.kind, sample.error.detail) == (ErrorKind.TIMEOUT, "no answer within 0.3 s")


async def test_credentials_in_the_url_are_sent_as_basic_auth(
    collector: HttpHealthCollector, odd_server: str
) -> None:
    url = odd_server.replace("http://", "http://operator:hunter2@") + "/auth"
    sample = await collector.probe(target(url, body_contains="healthy"))
    assert sample.ok, sample.error


async def test_self_signed_tls(
    collector: HttpHealthCollector,
    health_endpoint: EndpointFactory,
    self_signed_tls: ssl.SSLContext,
) -> None:
    endpoint = await health_endpoint(ssl_context=self_signed_tls)
    assert endpoint.url.startswith("https://")

    verified = await collector.probe(target(endpoint.url))
    assert verified.error is not None
    assert verified.error.kind is ErrorKind.TLS
    # OpenSSL 3 says "self-signed certificate", 1.1 "self signed certificate".
    assert verified.error.detail.startswith("certificate verify failed: self")
    assert not verified.error.unreachable

    unverified = await collector.probe(target(endpoint.url, verify_tls=False))
    assert unverified.ok, unverified.error


async def test_tls_to_a_plain_http_port_is_tls_error(
    collector: HttpHealthCollector, health_endpoint: EndpointFactory
) -> None:
    endpoint = await health_endpoint()
    sample = await collector.probe(target(endpoint.url.replace("http://", "https://")))
    assert sample.error is not None and sample.error.kind is ErrorKind.TLS


async def test_unresolvable_host_is_dns_and_unreachable(collector: HttpHealthCollector) -> None:
    sample = await collector.probe(target("http://nonexistent.invalid/health", timeout_seconds=3))
    assert sample.error is not None
    # Without any resolver the sandbox may fail differently; it is unreachable either way.
    assert sample.error.kind in (ErrorKind.DNS, ErrorKind.NETWORK)
    assert sample.error.unreachable


async def test_in_flight_probes_never_exceed_the_cap(health_endpoint: EndpointFactory) -> None:
    # Slow, but within the timeout: each request ends server-side before its probe
    # does, so the server's peak concurrency is a lower bound of the client's.
    endpoint = await health_endpoint(slow_seconds=0.2)
    await endpoint.set_mode(EndpointMode.SLOW)
    collector = HttpHealthCollector(max_in_flight=3)
    try:
        check = target(endpoint.url, timeout_seconds=5)
        samples = await asyncio.gather(*(collector.probe(check) for _ in range(12)))
    finally:
        await collector.aclose()
    assert all(s.ok for s in samples)
    assert endpoint.requests_served == 12
    assert endpoint.max_in_flight == 3


@pytest.mark.parametrize(
    "url",
    [
        "http://user:s3cret@[::1/health",
        "ftp://user:s3cret@127.0.0.1/health",
        "http://user:s3cret@bad host.invalid/health",
        "http://user:s3cret@127.0.0.1:99999/health",
        "not a url",
        "http://127.0.0.1:1/health?token=s3cret",
        "http://user:pw@bad host.invalid/health?API-Key=s3cret",
        "http://s3cret@[::1/health?x=1",
    ],
)
async def test_never_raises_and_never_shows_a_password(
    collector: HttpHealthCollector, url: str
) -> None:
    sample = await collector.probe(target(url))
    assert not sample.ok
    assert sample.error is not None
    shown = str(sample.error)
    assert "s3cret" not in shown
    assert "\n" not in shown and len(sample.error.detail) <= 120


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:****@h:6379/0"),
        ("https://u:p@x.com/h?token=abc&x=1", "https://u:****@x.com/h?token=****&x=1"),
        ("https://x/h?API-Key=1&Signature=zz#f", "https://x/h?API-Key=****&Signature=****#f"),
        (
            "https://x/h?access_token=a;sig=b&passwd=c",
            "https://x/h?access_token=****;sig=****&passwd=****",
        ),
        ("https://x/h?AUTH=a&apikey=b&key=c", "https://x/h?AUTH=****&apikey=****&key=****"),
        ("https://x/h?secret=a&password=b", "https://x/h?secret=****&password=****"),
        ("redis://[::1]:6379?password=p", "redis://[::1]:6379?password=****"),
        ("http://tok@h/", "http://****@h/"),
        ("https://x:99999/?token=t", "https://x:99999/?token=****"),
        ("https://h/p?keyword=3&monkey=2&region=ro", "https://h/p?keyword=3&monkey=2&region=ro"),
    ],
)
def test_every_credential_of_a_url_is_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert mask_secrets(f"GET {url} failed") == f"GET {shown} failed"
