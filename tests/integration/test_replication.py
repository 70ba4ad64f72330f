"""The Redis replication collector against a real source and replica (REPLICAOF).

A FakeClock drives the heartbeat: noc writes and reads heartbeats with its own
clock, so advancing the fake clock ages the replica's heartbeat exactly as
wall time would, without sleeping.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis
from replication_fixtures import ReplicatedPair, replicated_pair_fixture, wait_for_link  # noqa: F401

from noc.clock import Clock, FakeClock, SystemClock
from noc.model import LagBasis, LinkState, ReplicationKind, ReplicationSample, ReplicationSpec
from noc.simulator import RedisServer
from noc_collectors.replication import HEARTBEAT_KEY, RedisReplicationCollector

TIMEOUT = 1.0
# A hung server never answers: a poll that ends well before "never" was cut by its
# timeout. The slack is wide so that a busy machine cannot fail the test.
HUNG_SLACK = 5.0


def spec(url: str, kind: ReplicationKind = ReplicationKind.REDIS) -> ReplicationSpec:
    return ReplicationSpec(
        data_class="suppression",
        source="ro",
        target="bg",
        kind=kind,
        url=url,
        threshold_seconds=60.0,
        sustain_seconds=60.0,
    )


@asynccontextmanager
async def collector(
    replica_url: str,
    source_url: str | None,
    clock: Clock,
    heartbeat_key: str | None = HEARTBEAT_KEY,
) -> AsyncIterator[RedisReplicationCollector]:
    made = RedisReplicationCollector(
        spec(replica_url),
        source_url=source_url,
        heartbeat_key=heartbeat_key,
        timeout_seconds=TIMEOUT,
        clock=clock,
    )
    try:
        yield made
    finally:
        await made.aclose()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_value(server: RedisServer, key: str, value: str) -> None:
    deadline = time.monotonic() + 5
    with redis.Redis(port=server.port, decode_responses=True) as client:
        while client.get(key) != value:
            assert time.monotonic() < deadline, f"{key} never became {value!r}"
            time.sleep(0.01)


@pytest.fixture
def pair(replicated_pair: ReplicatedPair) -> ReplicatedPair:
    return replicated_pair


async def test_healthy_link_reads_the_real_delay(pair: ReplicatedPair) -> None:
    async with collector(pair.replica.url, pair.source.url, SystemClock()) as poller:
        sample = await poller.poll()
    assert sample.error is None
    assert sample.link is LinkState.UP
    assert sample.lag_basis is LagBasis.HEARTBEAT
    assert not sample.lag_is_floor
    # The poll waited for the heartbeat it wrote: the delay of a loopback link (wide
    # slack for a busy machine), not the heartbeat age of a poll interval or more.
    assert sample.lag_seconds is not None and 0 <= sample.lag_seconds < HUNG_SLACK
    assert sample.offset_lag_bytes is not None and 0 <= sample.offset_lag_bytes < 1024
    assert sample.last_io_seconds is not None and sample.link_down_seconds is None


async def test_heartbeat_lands_on_the_source_and_reaches_the_replica(pair: ReplicatedPair) -> None:
    clock = FakeClock()
    async with collector(pair.replica.url, pair.source.url, clock) as poller:
        await poller.poll()
    expected = f"{clock.utcnow().timestamp():.6f}"
    for server in (pair.source, pair.replica):
        with redis.Redis(port=server.port, decode_responses=True) as client:
            assert client.get(HEARTBEAT_KEY) == expected


async def test_stopped_source_gives_link_down_and_a_growing_floor(pair: ReplicatedPair) -> None:
    clock = FakeClock()
    async with collector(pair.replica.url, pair.source.url, clock) as poller:
        assert (await poller.poll()).lag_seconds == 0.0
        pair.source.stop()
        wait_for_link(pair.replica, "down")
        clock.advance(30)
        first = await poller.poll()
        clock.advance(15)
        second = await poller.poll()
    for sample in (first, second):
        assert sample.link is LinkState.DOWN
        assert sample.lag_basis is LagBasis.LINK_DOWN and sample.lag_is_floor
        assert sample.link_down_seconds is not None
        assert sample.error is not None and sample.error.startswith("source: ")
        assert sample.offset_lag_bytes is None
    # A floor that keeps growing with the outage, never the last good value.
    assert first.lag_seconds == pytest.approx(30.0)
    assert second.lag_seconds == pytest.approx(45.0)


async def test_link_down_without_heartbeat_uses_the_down_time(pair: ReplicatedPair) -> None:
    pair.source.kill()
    wait_for_link(pair.replica, "down")
    async with collector(pair.replica.url, None, SystemClock()) as poller:
        sample = await poller.poll()
    assert sample.link is LinkState.DOWN
    assert sample.lag_is_floor and sample.lag_basis is LagBasis.LINK_DOWN
    assert sample.lag_seconds == sample.link_down_seconds
    assert sample.error is None


async def test_paused_writes_keep_the_link_up_while_lag_grows(pair: ReplicatedPair) -> None:
    clock = FakeClock()
    async with collector(pair.replica.url, pair.source.url, clock) as poller:
        assert (await poller.poll()).lag_seconds == 0.0
        with redis.Redis(port=pair.source.port) as client:
            client.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
        try:
            clock.advance(20)
            first = await poller.poll()
            clock.advance(10)
            second = await poller.poll()
        finally:
            with redis.Redis(port=pair.source.port) as client:
                client.execute_command("CLIENT", "UNPAUSE")
        clock.advance(5)
        recovered = await poller.poll()
    for sample in (first, second):
        # The replica still hears the source: only the heartbeat says data stopped.
        assert sample.link is LinkState.UP
        assert sample.lag_basis is LagBasis.HEARTBEAT and not sample.lag_is_floor
        assert sample.error == "source: timeout"
    assert first.lag_seconds == pytest.approx(20.0)
    assert second.lag_seconds == pytest.approx(30.0)
    assert recovered.lag_seconds == 0.0 and recovered.error is None


async def test_hung_source_keeps_the_link_up_while_lag_grows(pair: ReplicatedPair) -> None:
    clock = FakeClock()
    async with collector(pair.replica.url, pair.source.url, clock) as poller:
        await poller.poll()
        pair.source.pause()
        try:
            clock.advance(12)
            started = time.monotonic()
            first = await poller.poll()
            elapsed = time.monotonic() - started
            clock.advance(12)
            second = await poller.poll()
        finally:
            pair.source.resume()
    assert first.link is LinkState.UP and second.link is LinkState.UP
    assert first.lag_seconds == pytest.approx(12.0)
    assert second.lag_seconds == pytest.approx(24.0)
    # The hung source cost half the budget; the replica was still read.
    assert elapsed < TIMEOUT + HUNG_SLACK


async def test_read_only_mode_never_writes(pair: ReplicatedPair) -> None:
    async with collector(
        pair.replica.url, pair.source.url, SystemClock(), heartbeat_key=None
    ) as poller:
        assert not poller.writes_heartbeat
        sample = await poller.poll()
    with redis.Redis(port=pair.source.port) as client:
        assert client.dbsize() == 0
    assert sample.link is LinkState.UP
    assert sample.lag_basis is LagBasis.LAST_IO
    assert sample.lag_seconds == sample.last_io_seconds
    assert sample.offset_lag_bytes == 0
    assert sample.error is None


async def test_without_a_source_only_info_is_read(pair: ReplicatedPair) -> None:
    async with collector(pair.replica.url, None, SystemClock()) as poller:
        assert not poller.writes_heartbeat
        sample = await poller.poll()
    assert sample.lag_basis is LagBasis.LAST_IO
    assert sample.offset_lag_bytes is None


async def test_a_read_only_source_reports_the_failed_write(
    pair: ReplicatedPair,
) -> None:
    # Configured "source" that is itself a replica: the SET is refused, INFO still read.
    replica_url = pair.replica.url
    async with collector(replica_url, replica_url, SystemClock()) as poller:
        sample = await poller.poll()
    assert sample.error is not None and sample.error.startswith("heartbeat write: You can't write")
    assert sample.offset_lag_bytes == 0
    assert sample.link is LinkState.UP


async def test_a_heartbeat_that_is_not_a_time_is_not_used(pair: ReplicatedPair) -> None:
    with redis.Redis(port=pair.source.port) as client:
        client.set(HEARTBEAT_KEY, "inf")  # as a foreign writer might leave it
    wait_for_value(pair.replica, HEARTBEAT_KEY, "inf")
    # The replica as "source": noc's own write is refused, so "inf" stays.
    async with collector(pair.replica.url, pair.replica.url, SystemClock()) as poller:
        sample = await poller.poll()
    assert sample.error is not None
    assert sample.error.endswith(f"heartbeat {HEARTBEAT_KEY} is not a time")
    assert sample.lag_basis is LagBasis.LAST_IO


async def test_promoted_replica_is_not_a_link(pair: ReplicatedPair) -> None:
    with redis.Redis(port=pair.replica.port) as client:
        client.execute_command("REPLICAOF", "NO", "ONE")
    async with collector(pair.replica.url, pair.source.url, SystemClock()) as poller:
        sample = await poller.poll()
    assert sample.link is LinkState.UNKNOWN and sample.lag_seconds is None
    assert sample.error == "not a replica (role master)"


async def test_unreachable_replica(pair: ReplicatedPair) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    async with collector(url, pair.source.url, SystemClock()) as poller:
        sample = await poller.poll()
    assert sample.link is LinkState.UNKNOWN and sample.lag_seconds is None
    assert sample.error == "replica: connection refused"


async def test_hung_replica_costs_one_timeout(pair: ReplicatedPair) -> None:
    async with collector(pair.replica.url, pair.source.url, SystemClock()) as poller:
        pair.replica.pause()
        try:
            started = time.monotonic()
            sample = await poller.poll()
            elapsed = time.monotonic() - started
        finally:
            pair.replica.resume()
    assert sample.link is LinkState.UNKNOWN
    assert sample.error == "replica: timeout"
    assert elapsed < TIMEOUT + HUNG_SLACK


async def test_replica_that_never_connected() -> None:
    orphan = RedisServer(["--replicaof", "127.0.0.1", str(closed_port())])
    orphan.start()
    try:
        async with collector(orphan.url, None, SystemClock()) as poller:
            sample = await poller.poll()
    finally:
        orphan.stop()
    # Redis reports -1 for "down since": no figure at all beats an invented one.
    assert sample.link is LinkState.DOWN
    assert sample.lag_seconds is None and sample.link_down_seconds is None


def test_json_shape() -> None:
    sample = ReplicationSample(
        spec=spec("redis://:secret@replica.bg:6379/0"),
        at=1.0,
        wall=FakeClock().utcnow(),
        link=LinkState.DOWN,
        lag_seconds=42.0,
        lag_basis=LagBasis.LINK_DOWN,
        lag_is_floor=True,
    )
    assert sample.as_json() == {
        "data_class": "suppression",
        "source": "ro",
        "target": "bg",
        "kind": "redis",
        "lag_seconds": 42.0,
        "offset_lag_bytes": None,
        "threshold_seconds": 60.0,
        "link": "down",
        "error": None,
    }


def test_rejects_other_kinds() -> None:
    with pytest.raises(ValueError, match="not redis"):
        RedisReplicationCollector(spec("http://x/metrics", ReplicationKind.PROMETHEUS))
