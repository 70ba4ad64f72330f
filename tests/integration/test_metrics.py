"""Lag from Prometheus text and JSON, served by a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from noc.clock import FakeClock
from noc.model import LagBasis, LinkState, ReplicationKind, ReplicationSample, ReplicationSpec
from noc_collectors.metrics import MetricsLagCollector, json_seconds, parse_selector

TIMEOUT = 0.5

EXPOSITION = """\
# HELP redis_replication_lag_seconds Seconds the replica is behind.
# TYPE redis_replication_lag_seconds gauge
redis_replication_lag_seconds{source="ro",target="bg",class="suppression"} 4.5
redis_replication_lag_seconds{source="ro",target="hk",class="suppression"} 12
redis_replication_lag_seconds{source="ro",target="hk",class="analytics"} NaN
# TYPE replicator_events counter
replicator_events_total{result="ok"} 1027
"""

DOCUMENT = {
    "replication": {
        "links": [
            {"target": "bg", "lag_seconds": 2.25},
            {"target": "hk", "lag_seconds": 31, "healthy": True, "note": "slow"},
            {"target": "sg", "lag_seconds": -1.5},
        ]
    }
}


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, set[int]]]:
    """Serves every case; also records the client ports it saw (connection reuse)."""
    peers: set[int] = set()

    @web.middleware
    async def record(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        peername = request.transport.get_extra_info("peername") if request.transport else None
        if peername:
            peers.add(peername[1])
        return await handler(request)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late")

    app = web.Application(middlewares=[record])
    app.router.add_get("/metrics", serve(EXPOSITION))
    app.router.add_get("/garbage", serve("<html><body>Bad gateway</body></html>\n"))
    app.router.add_get("/empty", serve(""))
    app.router.add_get("/error", serve("unavailable", status=503))
    app.router.add_get("/big", serve("# " + "x" * (2 * 1024 * 1024) + "\n"))
    app.router.add_get("/slow", slow)
    app.router.add_get("/json", serve(json.dumps(DOCUMENT), content_type="application/json"))
    app.router.add_get("/notjson", serve("{'single': 'quotes'}"))
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", peers
    finally:
        await runner.cleanup()


def serve(body: str, status: int = 200, content_type: str = "text/plain") -> web.Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    return handler


def spec(url: str, kind: ReplicationKind, metric: str) -> ReplicationSpec:
    return ReplicationSpec(
        data_class="suppression", source="ro", target="bg", kind=kind, url=url, metric=metric
    )


async def poll(url: str, kind: ReplicationKind, metric: str, **options: int) -> ReplicationSample:
    collector = MetricsLagCollector(
        spec(url, kind, metric), timeout_seconds=TIMEOUT, clock=FakeClock(), **options
    )
    try:
        return await collector.poll()
    finally:
        await collector.aclose()


PROM = ReplicationKind.PROMETHEUS
JSON = ReplicationKind.JSON


async def test_prometheus_series_by_labels(server: tuple[str, set[int]]) -> None:
    base, _ = server
    sample = await poll(f"{base}/metrics", PROM, 'redis_replication_lag_seconds{target="bg"}')
    assert sample.error is None
    assert sample.lag_seconds == 4.5
    assert sample.lag_basis is LagBasis.METRIC and not sample.lag_is_floor
    # A metric says nothing of the link itself.
    assert sample.link is LinkState.UNKNOWN and sample.offset_lag_bytes is None


async def test_prometheus_exact_labels_and_counters(server: tuple[str, set[int]]) -> None:
    base, _ = server
    metric = 'redis_replication_lag_seconds{class="suppression",target="hk",source="ro"}'
    assert (await poll(f"{base}/metrics", PROM, metric)).lag_seconds == 12.0
    # A counter keeps its _total suffix on the series: the name the exporter shows.
    counter = await poll(f"{base}/metrics", PROM, 'replicator_events_total{result="ok"}')
    assert counter.lag_seconds == 1027.0


@pytest.mark.parametrize(
    ("metric", "error"),
    [
        (
            'redis_replication_lag_seconds{target="sg"}',
            'no series redis_replication_lag_seconds{target="sg"}',
        ),
        ("absent_metric", "no series absent_metric"),
        (
            'redis_replication_lag_seconds{target="hk"}',
            '2 series match redis_replication_lag_seconds{target="hk"}: name more labels',
        ),
        (
            'redis_replication_lag_seconds{class="analytics"}',
            'redis_replication_lag_seconds{class="analytics"} is nan, not a number of seconds',
        ),
    ],
)
async def test_prometheus_no_single_usable_series(
    server: tuple[str, set[int]], metric: str, error: str
) -> None:
    base, _ = server
    sample = await poll(f"{base}/metrics", PROM, metric)
    assert sample.lag_seconds is None and sample.lag_basis is LagBasis.NONE
    assert sample.error == error


async def test_prometheus_garbage_and_empty_text(server: tuple[str, set[int]]) -> None:
    base, _ = server
    garbage = await poll(f"{base}/garbage", PROM, "lag")
    assert garbage.error is not None and garbage.error.startswith("not Prometheus text: ")
    empty = await poll(f"{base}/empty", PROM, "lag")
    assert empty.error == "no series lag"


async def test_http_failures(server: tuple[str, set[int]]) -> None:
    base, _ = server
    assert (await poll(f"{base}/error", PROM, "lag")).error == "HTTP 503"
    big = await poll(f"{base}/big", PROM, "lag", body_limit=64 * 1024)
    assert big.error == "body over 64 KiB"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    refused = await poll(f"http://127.0.0.1:{closed}/metrics", PROM, "lag")
    assert refused.error == "connection refused"


async def test_timeout_is_hard(server: tuple[str, set[int]]) -> None:
    base, _ = server
    started = time.monotonic()
    sample = await poll(f"{base}/slow", JSON, "lag")
    elapsed = time.monotonic() - started
    assert sample.error == "timeout after 0.5 s"
    assert sample.lag_seconds is None
    # The endpoint never answers in time: wide slack, so a busy machine cannot fail this.
    assert elapsed < TIMEOUT + 5.0


async def test_json_dotted_path_with_list_index(server: tuple[str, set[int]]) -> None:
    base, _ = server
    sample = await poll(f"{base}/json", JSON, "replication.links.0.lag_seconds")
    assert sample.error is None and sample.lag_seconds == 2.25
    assert sample.lag_basis is LagBasis.METRIC
    assert (await poll(f"{base}/json", JSON, "replication.links.1.lag_seconds")).lag_seconds == 31


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("replication.links.5.lag_seconds", "replication.links.5.lag_seconds missing (at '5')"),
        ("replication.lag", "replication.lag missing (at 'lag')"),
        (
            "replication.links.1.healthy",
            "replication.links.1.healthy is true, not a number of seconds",
        ),
        ("replication.links.1.note", 'replication.links.1.note is "slow", not a number of seconds'),
        (
            "replication.links.2.lag_seconds",
            "replication.links.2.lag_seconds is negative (-1.5 s): clock skew at the source?",
        ),
    ],
)
async def test_json_unusable_values(server: tuple[str, set[int]], path: str, error: str) -> None:
    base, _ = server
    sample = await poll(f"{base}/json", JSON, path)
    assert sample.lag_seconds is None
    assert sample.error == error


async def test_json_body_that_is_not_json(server: tuple[str, set[int]]) -> None:
    base, _ = server
    assert (await poll(f"{base}/notjson", JSON, "a")).error == "body is not JSON"


async def test_one_client_and_connection_across_polls(server: tuple[str, set[int]]) -> None:
    base, peers = server
    collector = MetricsLagCollector(
        spec(f"{base}/metrics", PROM, 'redis_replication_lag_seconds{target="bg"}'),
        timeout_seconds=TIMEOUT,
    )
    try:
        samples = [await collector.poll() for _ in range(3)]
    finally:
        await collector.aclose()
    assert [s.lag_seconds for s in samples] == [4.5, 4.5, 4.5]
    assert len(peers) == 1


def test_parse_selector() -> None:
    selector = parse_selector(' lag_seconds{target="bg",note="say \\"hi\\""} ')
    assert selector.name == "lag_seconds"
    assert selector.labels == {"target": "bg", "note": 'say "hi"'}
    assert str(selector) == 'lag_seconds{note="say \\"hi\\"",target="bg"}'
    assert parse_selector("up").labels == {}


@pytest.mark.parametrize("text", ["", "# comment", "lag{target=bg}", '{target="bg"}', "a b"])
def test_parse_selector_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="metric selector"):
        parse_selector(text)


def test_json_seconds_accepts_integers() -> None:
    assert json_seconds({"a": [0, {"b": 7}]}, "a.1.b") == 7.0


def test_constructor_rejects_bad_specs() -> None:
    with pytest.raises(ValueError, match="not a metrics kind"):
        MetricsLagCollector(spec("redis://x", ReplicationKind.REDIS, "lag"))
    with pytest.raises(ValueError, match="needs a metric"):
        MetricsLagCollector(spec("http://x", JSON, ""))
    with pytest.raises(ValueError, match="metric selector"):
        MetricsLagCollector(spec("http://x", PROM, "lag{bad}"))
