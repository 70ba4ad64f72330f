"""Replication read through a real redis_exporter in front of a real primary and replica.

redis_exporter (Debian's prometheus-redis-exporter) publishes the replica's view of
its link: `redis_master_link_up` 1/0, and `redis_master_last_io_seconds_ago`, which
is -1 once the link is down. noc must read that as "link down" (critical, exactly
as the native Redis collector would), never as a negative lag; and a series that
vanishes from a page that still parses means the link is gone. The link is cut three
ways: black-holed (a relay that stops passing bytes), the replica killed, the primary
killed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiohttp import web
from named import free_port
from support import estate_config, feed_round

from noc.clock import FakeClock
from noc.config import ConfigError, parse_config
from noc.engine import Engine
from noc.model import LinkState, ReplicationKind, ReplicationSample, ReplicationSpec, Severity
from noc.simulator import RedisServer
from noc.simulator.relay import TcpRelay
from noc_collectors.metrics import (
    MetricsLagCollector,
    SeriesMissing,
    link_selector_for,
    parse_selector,
)
from noc_collectors.metrics import prometheus_reading as reading_of

EXPORTER = shutil.which("prometheus-redis-exporter") or shutil.which("redis_exporter")
needs_exporter = pytest.mark.skipif(
    EXPORTER is None and not os.environ.get("NOC_REQUIRE_EXPORTER"),
    reason="apt-get install prometheus-redis-exporter",
)
LAST_IO = "redis_master_last_io_seconds_ago"
DEADLINE = 20.0


class Exporter:
    """One redis_exporter process scraping one Redis server, on a free loopback port."""

    def __init__(self, redis_port: int) -> None:
        assert EXPORTER is not None, "prometheus-redis-exporter is not installed"
        self.port = free_port()
        self._process = subprocess.Popen(
            [
                EXPORTER,
                "-redis.addr", f"redis://127.0.0.1:{redis_port}",
                "-web.listen-address", f"127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                httpx.get(self.url, timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    self.stop()
                    raise AssertionError("redis_exporter did not start") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def spec(url: str, metric: str = LAST_IO, link_metric: str | None = None) -> ReplicationSpec:
    return ReplicationSpec(
        data_class="suppression",
        source="ro",
        target="bg",
        kind=ReplicationKind.PROMETHEUS,
        url=url,
        metric=metric,
        link_metric=link_metric,
        threshold_seconds=60,
        sustain_seconds=0,
    )


async def poll_until_down(collector: MetricsLagCollector) -> ReplicationSample:
    deadline = time.monotonic() + DEADLINE
    while True:
        sample = await collector.poll()
        if sample.link is LinkState.DOWN:
            return sample
        assert time.monotonic() < deadline, f"the link never read down: {sample}"
        await asyncio.sleep(0.2)


def judged(sample: ReplicationSample) -> dict[str, Severity]:
    """The alerts an engine fires for this sample, as the native collector's would."""
    clock = FakeClock()
    data = estate_config().model_dump(mode="json")
    data["replication"] = [
        {"data_class": "suppression", "source": "ro", "target": "bg", "kind": "prometheus",
         "url": sample.spec.url, "metric": sample.spec.metric, "sustain_seconds": 0},
    ]  # fmt: skip
    engine = Engine(parse_config(data), clock, single_round=True)
    feed_round(engine, clock)
    engine.ingest_replication("suppression:ro>bg", sample)
    engine.evaluate_alerts()
    return {a.rule: a.severity for a in engine.snapshot().alerts}


class Estate:
    def __init__(self) -> None:
        self.primary = RedisServer()
        self.primary.start()
        self.relay = TcpRelay(self.primary.port)
        self.replica: RedisServer | None = None
        self.exporter: Exporter | None = None

    async def link(self) -> None:
        await self.relay.start()
        # repl-timeout 2: a black-holed link is declared down in seconds, not 60.
        self.replica = RedisServer(
            ["--replicaof", "127.0.0.1", str(self.relay.port), "--repl-timeout", "2"]
        )
        self.replica.start()
        self.exporter = Exporter(self.replica.port)

    def collector(self, **options: str) -> MetricsLagCollector:
        assert self.exporter is not None
        return MetricsLagCollector(spec(self.exporter.url, **options), timeout_seconds=2)

    async def close(self) -> None:
        if self.exporter is not None:
            self.exporter.stop()
        if self.replica is not None:
            self.replica.stop()
        await self.relay.stop()
        self.primary.stop()


@pytest.fixture
async def estate() -> AsyncIterator[Estate]:
    built = Estate()
    try:
        await built.link()
        yield built
    finally:
        await built.close()


async def link_up(collector: MetricsLagCollector) -> ReplicationSample:
    deadline = time.monotonic() + DEADLINE
    while True:
        sample = await collector.poll()
        if sample.link is LinkState.UP and sample.lag_seconds is not None:
            return sample
        assert time.monotonic() < deadline, f"the link never read up: {sample}"
        await asyncio.sleep(0.1)


@needs_exporter
async def test_black_holed_link_is_down_and_critical(estate: Estate) -> None:
    collector = estate.collector()
    try:
        up = await link_up(collector)
        assert up.error is None and up.lag_seconds is not None and up.lag_seconds >= 0
        estate.relay.partition()
        down = await poll_until_down(collector)
    finally:
        await collector.aclose()
    assert down.lag_seconds is None
    assert "negative" not in (down.error or "")
    alerts = judged(down)
    assert alerts.get("replication_link_down") is Severity.CRITICAL
    assert "replication_lag" not in alerts and "source_unreachable" not in alerts


@needs_exporter
async def test_killed_replica_is_a_link_down(estate: Estate) -> None:
    collector = estate.collector()
    try:
        await link_up(collector)
        assert estate.replica is not None
        estate.replica.kill()
        down = await poll_until_down(collector)
    finally:
        await collector.aclose()
    assert "redis_up 0" in (down.error or "")
    assert judged(down).get("replication_link_down") is Severity.CRITICAL


@needs_exporter
async def test_killed_primary_is_a_link_down(estate: Estate) -> None:
    collector = estate.collector()
    try:
        await link_up(collector)
        estate.primary.kill()
        down = await poll_until_down(collector)
    finally:
        await collector.aclose()
    assert down.lag_seconds is None
    assert judged(down).get("replication_link_down") is Severity.CRITICAL


@needs_exporter
async def test_a_configured_link_metric_reads_the_same(estate: Estate) -> None:
    """Another exporter's link series, configured by name: here the same one, explicitly,
    beside a lag series that is not redis_master_* (so nothing is implied)."""
    collector = estate.collector(
        metric="redis_uptime_in_seconds", link_metric="redis_master_link_up"
    )
    try:
        assert (await link_up(collector)).link is LinkState.UP
        estate.primary.kill()
        down = await poll_until_down(collector)
    finally:
        await collector.aclose()
    assert down.error == "redis_master_link_up is 0"


PAGE = """\
redis_up 1
redis_master_last_io_seconds_ago{master_host="10.0.0.1",master_port="6379"} 3
redis_master_link_up{master_host="10.0.0.1",master_port="6379"} 1
"""


def test_the_exporters_minus_one_is_a_down_link_not_a_negative_lag() -> None:
    selector = parse_selector(LAST_IO)
    link = link_selector_for(selector, None)
    assert link is not None and link.name == "redis_master_link_up"
    up = reading_of(PAGE, selector, link)
    assert (up.lag_seconds, up.link) == (3.0, LinkState.UP)
    cut = PAGE.replace("} 3", "} -1").replace("} 1", "} 0")
    assert reading_of(cut, selector, link).link is LinkState.DOWN
    # -1 alone (an exporter that does not publish link_up) is already a down link.
    only_io = "\n".join(line for line in cut.splitlines() if "link_up" not in line) + "\n"
    assert reading_of(only_io, selector, link).link is LinkState.DOWN
    # Outside the exporter's own series a negative value stays what it was: skew.
    with pytest.raises(ValueError, match="negative"):
        reading_of("lag_seconds -1\n", parse_selector("lag_seconds"))
    with pytest.raises(SeriesMissing):
        reading_of("redis_up 1\n", selector, link)


@pytest.fixture
async def changing_page() -> AsyncIterator[tuple[str, list[str]]]:
    """A metrics page whose text the test sets."""
    body = [PAGE]

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=body[0])

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/metrics", body
    finally:
        await runner.cleanup()


async def test_a_vanished_series_means_the_link_is_gone(
    changing_page: tuple[str, list[str]],
) -> None:
    url, body = changing_page
    metric = 'replica_lag_seconds{replica="bg"}'
    body[0] = 'replica_lag_seconds{replica="bg"} 2\n'
    collector = MetricsLagCollector(spec(url, metric), timeout_seconds=2)
    never_seen = MetricsLagCollector(spec(url, metric), timeout_seconds=2)
    try:
        assert (await collector.poll()).lag_seconds == 2.0
        body[0] = 'replica_lag_seconds{replica="pa"} 2\n'
        gone = await collector.poll()
        # A series never seen is a configuration question, not an outage.
        unseen = await never_seen.poll()
        body[0] = "<html>bad gateway</html>\n"
        garbage = await collector.poll()
    finally:
        await collector.aclose()
        await never_seen.aclose()
    assert gone.link is LinkState.DOWN and "link is gone" in (gone.error or "")
    assert judged(gone).get("replication_link_down") is Severity.CRITICAL
    assert unseen.link is LinkState.UNKNOWN and unseen.error is not None
    assert judged(unseen).get("source_unreachable") is not None
    # A page that does not parse says nothing about the link.
    assert garbage.link is LinkState.UNKNOWN


def test_link_metric_is_for_prometheus_sources() -> None:
    data = estate_config().model_dump(mode="json")
    data["replication"] = [
        {"data_class": "s", "source": "ro", "target": "bg", "kind": "json",
         "url": "http://127.0.0.1:1/x", "metric": "a.b", "link_metric": "up"},
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="link_metric"):
        parse_config(data)


@pytest.fixture(autouse=True)
def _no_leftover_exporters() -> Iterator[None]:
    yield
    if EXPORTER is not None:
        left = subprocess.run(["pgrep", "-f", f"{EXPORTER} -redis.addr"], capture_output=True)
        assert not left.stdout.strip(), "a redis_exporter was left running"
