"""The demo estate's data: replication, suppression sync and deliverability counters.

Real servers throughout, read with noc's own collectors: each fault must change
what noc sees, and restore must undo it. The estate runs with test tuning (ticks
of a quarter second, a 2 s repl-timeout, ten times the demo's volume so short
samples are not noise); the config under test is the demo's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
import redis.asyncio as aioredis
from processes import alive
from redis.typing import EncodableT, FieldT
from test_simulator import redis_children
from textual.app import App
from textual.widgets import OptionList

from noc.audit import JsonlLog
from noc.clock import SystemClock
from noc.config import NocConfig, parse_config
from noc.failover import execute, gather_facts, plan_action, verify
from noc.model import (
    ActionKind,
    DeliverabilitySample,
    FailoverFlag,
    Fault,
    LinkState,
    ReplicationSample,
    SuppressionDivergence,
    SuppressionSample,
)
from noc.scheduler import Scheduler
from noc.simulator import DemoEstate, EndpointMode, TrafficTuning
from noc.simulator.threaded import ThreadedDemo
from noc_collectors.deliverability import EVENTS, KEY_PATTERN, DeliverabilityCollector, minute_key
from noc_collectors.dns_records import DnsRecordCollector, parse_resolver
from noc_collectors.dnsbl import DnsblCollector
from noc_collectors.email_auth import EmailAuthCollector
from noc_collectors.replication import RedisReplicationCollector
from noc_collectors.suppression import SuppressionCollector
from noc_widgets.fault_panel import FaultPanel

T = TypeVar("T")

TUNING = TrafficTuning(
    tick_seconds=0.25,
    sync_interval_seconds=0.5,
    sent_per_second=3000,
    # Enough history for a 5-minute window; more would only slow every start.
    prefill_minutes=6,
)
REPLICA_TIMEOUT = 2.0
# How stale a healthy sync may leave an entry: a sync round, plus a tick, plus slack.
IN_FLIGHT_SECONDS = 1.5


@pytest.fixture
async def estate() -> AsyncIterator[DemoEstate]:
    estate = DemoEstate(tuning=TUNING, replica_timeout_seconds=REPLICA_TIMEOUT, seed=7)
    yield estate
    await estate.stop()


def stores(config: NocConfig) -> dict[str, str]:
    return {r.id: r.redis_url for r in config.regions if r.redis_url}


@pytest.fixture
async def replication(
    estate: DemoEstate,
) -> AsyncIterator[Callable[[str], Awaitable[ReplicationSample]]]:
    """poll(target): one read of the suppression link into `target`, by noc's collector."""
    config = await estate.start()
    source = stores(config)[config.primary.id]
    collectors = {
        # settle_seconds=0: on Python 3.11 redis-py's internal wait_for can swallow
        # the cancellation that ends the settle wait, which then spins while a link
        # is partitioned. Without settling, a healthy lag reads the age of the last
        # heartbeat, a fraction of a second at these polling rates.
        link.target: RedisReplicationCollector(
            link.spec(), source_url=source, heartbeat_key=link.heartbeat_key, settle_seconds=0
        )
        for link in config.replication
        if link.data_class == "suppression"
    }

    async def poll(target: str) -> ReplicationSample:
        return await collectors[target].poll()

    yield poll
    for collector in collectors.values():
        await collector.aclose()


@pytest.fixture
async def suppression(estate: DemoEstate) -> AsyncIterator[SuppressionCollector]:
    config = await estate.start()
    # A minute back is all these tests look at; the demo's 600 s would only cost time.
    collector = SuppressionCollector(stores(config), lookback_seconds=60)
    yield collector
    await collector.aclose()


async def eventually(
    read: Callable[[], Awaitable[T]], ok: Callable[[T], bool], within: float = 30.0
) -> T:
    """Read until ok(value), returning that value; fails with the last value seen."""
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"still not there after {within:g} s: {value!r}"
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def store(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def write_flag(url: str, key: str, flag: FailoverFlag) -> int:
    async with store(url) as client:
        mapping: dict[FieldT, EncodableT] = {k: v for k, v in flag.as_mapping().items()}
        return await client.hset(key, mapping=mapping)


async def replication_info(url: str) -> dict[str, Any]:
    async with store(url) as client:
        return await client.info("replication")


async def score_of(url: str, key: str, member: str) -> float | None:
    async with store(url) as client:
        return await client.zscore(key, member)


def pair(sample: SuppressionSample, source: str, target: str) -> list[SuppressionDivergence]:
    return [p for p in sample.pairs if (p.source, p.target) == (source, target)]


def oldest_unsynced(sample: SuppressionSample, source: str, target: str) -> float:
    """The oldest entry `source` has that `target` lacks, over every list (0: none)."""
    ages = [p.oldest_unsynced_age_seconds or 0.0 for p in pair(sample, source, target)]
    assert all(p.error is None for p in sample.pairs), sample.pairs
    return max(ages)


def complaint_rate(sample: DeliverabilitySample, region: str) -> float:
    (counts,) = [r.counts for r in sample.regions if r.region == region]
    assert counts is not None, sample
    # None: nothing delivered yet in a minute only just begun.
    return counts.complaint_rate or 0.0


async def minute_counts(url: str, minute: datetime) -> dict[str, int]:
    keys = [minute_key(KEY_PATTERN, event, minute) for event in EVENTS]
    async with store(url) as client:
        values = cast(list[str | None], await client.mget(keys))
    return {event: int(value or 0) for event, value in zip(EVENTS, values, strict=True)}


async def sent_in(url: str, seconds: float) -> dict[str, int]:
    """What a region's counters gained over `seconds`, within one UTC minute."""
    while True:
        minute = datetime.now(UTC).replace(second=0, microsecond=0)
        before = await minute_counts(url, minute)
        await asyncio.sleep(seconds)
        if datetime.now(UTC).replace(second=0, microsecond=0) == minute:
            after = await minute_counts(url, minute)
            return {event: after[event] - before[event] for event in EVENTS}


async def test_the_demo_config_describes_the_data_it_serves(estate: DemoEstate) -> None:
    config = await estate.start()
    # Whatever the estate hands the app must survive a round trip through validation
    # (in Python mode: JSON mode masks the TSIG secret, as it should).
    assert parse_config(config.model_dump(), "round trip") == config
    assert "**" in config.model_dump(mode="json")["failover"]["dns"]["key_secret"]
    links = {link.link_id: link for link in config.replication}
    assert list(links) == [
        "suppression:ro>bg",
        "suppression:ro>pa",
        "subscribers:ro>bg",
        "subscribers:ro>pa",
    ]
    for link in config.replication:
        assert link.kind == "redis"
        assert link.url == estate.replica(link.target).url
        assert link.url not in stores(config).values()
    suppression_link, subscribers_link = links["suppression:ro>bg"], links["subscribers:ro>bg"]
    assert (suppression_link.threshold_seconds, suppression_link.sustain_seconds) == (10, 10)
    assert suppression_link.interval_seconds == 2
    assert (subscribers_link.threshold_seconds, subscribers_link.sustain_seconds) == (20, 15)
    assert suppression_link.heartbeat_key != subscribers_link.heartbeat_key
    assert (
        config.suppression.slo_seconds,
        config.suppression.lookback_seconds,
        config.suppression.interval_seconds,
    ) == (20, 600, 3)
    assert (config.deliverability.window_minutes, config.deliverability.interval_seconds) == (5, 5)


async def test_replicas_follow_the_primary_and_region_stores_stay_writable(
    estate: DemoEstate,
) -> None:
    config = await estate.start()
    for target in ("bg", "pa"):
        info = await eventually(
            partial(replication_info, estate.replica(target).url),
            lambda i: i.get("master_link_status") == "up",
            within=20,
        )
        assert info["role"] == "slave"
    # Each region's failover flag lives in its own store: none may be a read-only replica.
    flag = FailoverFlag("ro", None, "test", "writable", "2026-01-01T00:00:00Z")
    for url in stores(config).values():
        assert await write_flag(url, config.failover.flag_key, flag) == 6


async def test_suppression_entries_reach_every_region(
    estate: DemoEstate, suppression: SuppressionCollector
) -> None:
    config = await estate.start()
    key = "suppression:hard_bounce"
    async with store(stores(config)["ro"]) as ro:
        newest = cast(list[tuple[str, float]], await ro.zrange(key, -1, -1, withscores=True))
    ((member, score),) = newest
    assert score > time.time() - 5  # written by the running traffic, not the prefill
    for region in ("bg", "pa"):
        synced = await eventually(
            partial(score_of, stores(config)[region], key, member),
            lambda found: found is not None,
            within=15,
        )
        assert synced == score  # the sync keeps the time the entry was added
    sample = await suppression.poll()
    assert all(c.count for c in sample.counts), sample.counts
    for source in ("ro", "bg", "pa"):
        for target in {"ro", "bg", "pa"} - {source}:
            assert oldest_unsynced(sample, source, target) < IN_FLIGHT_SECONDS


async def test_deliverability_counters_fill_the_current_minute(estate: DemoEstate) -> None:
    config = await estate.start()
    await asyncio.sleep(TUNING.tick_seconds * 2)
    now = DeliverabilityCollector(stores(config), window_minutes=1)
    window = DeliverabilityCollector(stores(config), window_minutes=5)
    try:
        current, recent = await now.poll(), await window.poll()
    finally:
        await now.aclose()
        await window.aclose()
    for read in current.regions:
        assert read.counts is not None and read.counts.sent > 0, read
    counts = {r.region: r.counts for r in recent.regions if r.counts is not None}
    assert set(counts) == {"ro", "bg", "pa"}
    # The prefill: the window's four full minutes of the primary's volume (the current
    # minute may have just begun, and the volume varies around its mean), a warm share
    # elsewhere.
    assert counts["ro"].sent > 0.9 * 4 * 60 * TUNING.sent_per_second
    for region in ("bg", "pa"):
        assert 0.1 < counts[region].sent / counts["ro"].sent < 0.2
    for region_counts in counts.values():
        assert region_counts.complaint_rate is not None
        assert region_counts.complaint_rate < config.deliverability.complaint_warn_rate
        assert 0.96 < region_counts.delivered / region_counts.sent < 0.99


async def test_traffic_follows_the_failover_flag(estate: DemoEstate) -> None:
    config = await estate.start()
    urls = stores(config)
    flag = FailoverFlag("bg", "ro", "test", "failover", "2026-01-01T00:00:00Z")
    for url in urls.values():
        await write_flag(url, config.failover.flag_key, flag)
    await asyncio.sleep(TUNING.tick_seconds * 2)  # senders read the flag once a tick
    bg, ro = await asyncio.gather(sent_in(urls["bg"], 1.0), sent_in(urls["ro"], 1.0))
    assert bg["sent"] > 3 * ro["sent"] > 0


async def test_break_replication_grows_lag_then_drops_the_link_and_restore_heals(
    estate: DemoEstate, replication: Callable[[str], Awaitable[ReplicationSample]]
) -> None:
    def healthy(sample: ReplicationSample) -> bool:
        lag = sample.lag_seconds
        return sample.link is LinkState.UP and lag is not None and lag < 0.5

    await eventually(lambda: replication("bg"), healthy)

    await estate.inject("bg", Fault.BREAK_REPLICATION)
    assert estate.active_faults("bg") == (Fault.BREAK_REPLICATION,)
    # A partition first shows as lag over a link that still looks up...
    lagging = await eventually(
        lambda: replication("bg"), lambda s: s.lag_seconds is not None and s.lag_seconds > 0.8
    )
    assert lagging.link is LinkState.UP and lagging.lag_seconds is not None
    # ...until the replica's repl-timeout gives up on its source.
    down = await eventually(lambda: replication("bg"), lambda s: s.link is LinkState.DOWN)
    assert down.lag_is_floor and down.lag_seconds is not None
    assert down.lag_seconds > lagging.lag_seconds
    await eventually(lambda: replication("pa"), healthy, within=10)

    await estate.inject("bg", Fault.RESTORE)
    healed = await eventually(lambda: replication("bg"), healthy)
    assert healed.error is None


async def test_break_replication_on_the_primary_partitions_every_link(
    estate: DemoEstate, replication: Callable[[str], Awaitable[ReplicationSample]]
) -> None:
    for target in ("bg", "pa"):
        await eventually(partial(replication, target), lambda s: s.link is LinkState.UP)
    await estate.inject("ro", Fault.BREAK_REPLICATION)

    def lags(sample: ReplicationSample) -> bool:
        return sample.lag_seconds is not None and sample.lag_seconds > 0.8

    for target in ("bg", "pa"):
        await eventually(partial(replication, target), lags)
    # Restoring a target does not heal a path its source has cut.
    await estate.inject("bg", Fault.RESTORE)
    await asyncio.sleep(0.5)
    assert lags(await replication("bg"))

    await estate.inject("ro", Fault.RESTORE)
    for target in ("bg", "pa"):
        await eventually(
            partial(replication, target),
            lambda s: s.lag_seconds is not None and s.lag_seconds < 0.5,
        )


async def test_stall_sync_leaves_entries_unsynced_until_restore(
    estate: DemoEstate, suppression: SuppressionCollector
) -> None:
    await estate.inject("pa", Fault.STALL_SYNC)
    first = await eventually(suppression.poll, lambda s: oldest_unsynced(s, "ro", "pa") > 1.0)
    assert sum(p.unsynced or 0 for p in pair(first, "ro", "pa")) > 0
    await asyncio.sleep(1.0)
    later = await suppression.poll()
    # The backlog only ages; other regions keep syncing.
    assert oldest_unsynced(later, "ro", "pa") >= oldest_unsynced(first, "ro", "pa") + 0.9
    assert oldest_unsynced(later, "ro", "bg") < IN_FLIGHT_SECONDS

    await estate.inject("pa", Fault.RESTORE)
    caught_up = await eventually(
        suppression.poll, lambda s: oldest_unsynced(s, "ro", "pa") < IN_FLIGHT_SECONDS
    )
    assert oldest_unsynced(caught_up, "bg", "pa") < IN_FLIGHT_SECONDS


async def test_complaint_spike_crosses_the_critical_rate_until_restore(
    estate: DemoEstate,
) -> None:
    config = await estate.start()
    critical = config.deliverability.complaint_critical_rate
    # The current minute alone, so the spike shows in seconds rather than minutes.
    minute = DeliverabilityCollector(stores(config), window_minutes=1)
    window = DeliverabilityCollector(stores(config), window_minutes=5)

    try:
        await estate.inject("ro", Fault.COMPLAINT_SPIKE)
        await eventually(minute.poll, lambda s: complaint_rate(s, "ro") > critical, within=45)
        others = await window.poll()
        assert complaint_rate(others, "bg") < critical and complaint_rate(others, "pa") < critical
    finally:
        await minute.aclose()
        await window.aclose()

    await estate.inject("ro", Fault.RESTORE)
    await asyncio.sleep(TUNING.tick_seconds * 2)
    # The window keeps the spike until its minutes roll out; the counters show the
    # senders back at the normal rate at once.
    gained = await sent_in(stores(config)["ro"], 1.0)
    assert gained["delivered"] > 1000
    assert gained["complaint"] / gained["delivered"] < config.deliverability.complaint_warn_rate


async def test_faults_stack_and_restore_clears_them_all(estate: DemoEstate) -> None:
    await estate.start()
    for fault in (Fault.SLOW, Fault.STALL_SYNC, Fault.COMPLAINT_SPIKE, Fault.DOWN):
        await estate.inject("bg", fault)
    # One health fault at a time (down replaced slow); data faults add up.
    assert estate.active_faults("bg") == (Fault.STALL_SYNC, Fault.COMPLAINT_SPIKE, Fault.DOWN)
    assert estate.current_fault("bg") is Fault.DOWN
    assert estate.endpoint("bg").mode is EndpointMode.DOWN
    await estate.inject("bg", Fault.STALL_SYNC)  # again: moves to the end, not doubled
    assert estate.active_faults("bg") == (Fault.COMPLAINT_SPIKE, Fault.DOWN, Fault.STALL_SYNC)
    assert estate.active_faults("pa") == ()

    await estate.inject("bg", Fault.RESTORE)
    assert estate.active_faults("bg") == ()
    assert estate.current_fault("bg") is None
    assert estate.endpoint("bg").mode is EndpointMode.HEALTHY


class PanelApp(App[None]):
    def __init__(self, panel: FaultPanel) -> None:
        super().__init__()
        self.panel = panel
        self.choice: tuple[str, Fault] | None = None

    def on_mount(self) -> None:
        self.push_screen(self.panel, self._chosen)

    def _chosen(self, choice: tuple[str, Fault] | None) -> None:
        self.choice = choice


def option_prompts(options: OptionList) -> dict[str, str | None]:
    """The fault panel's lines: each option's words and its id ("bg:slow")."""
    return {
        str(options.get_option_at_index(i).prompt): options.get_option_at_index(i).id
        for i in range(options.option_count)
    }


async def test_fault_panel_offers_data_faults_and_shows_every_active_one(
    estate: DemoEstate,
) -> None:
    await estate.start()
    await estate.inject("bg", Fault.SLOW)
    await estate.inject("bg", Fault.STALL_SYNC)
    app = PanelApp(FaultPanel(estate))
    async with app.run_test(size=(100, 50)) as pilot:
        await pilot.pause()
        options = app.panel.query_one(OptionList)
        prompts = option_prompts(options)
        assert "bg now: slow, stall sync" in prompts
        assert "ro now: healthy" in prompts
        ids = set(prompts.values())
        for region in ("ro", "bg", "pa"):
            for fault in (Fault.BREAK_REPLICATION, Fault.STALL_SYNC, Fault.COMPLAINT_SPIKE):
                assert f"{region}:{fault.value}" in ids
        options.highlighted = next(
            i
            for i in range(options.option_count)
            if options.get_option_at_index(i).id == "pa:complaint spike"
        )
        await pilot.press("enter")
        await pilot.pause()
    assert app.choice == ("pa", Fault.COMPLAINT_SPIKE)


def test_threaded_demo_starts_and_leaves_no_server_behind() -> None:
    """How fast it starts is bench/startup.py's to measure, never a limit in a test."""
    before = set(redis_children())
    demo = ThreadedDemo()
    config = demo.start()
    # Only the demo's own servers count: this process adopts other tests' orphans
    # (tests/processes.py), and one of those may end (or be adopted) at any moment.
    started_servers = set(redis_children()) - before
    try:
        # Three region stores and a replica per secondary.
        assert len(started_servers) == 5
        assert len(config.replication) == 4
    finally:
        demo.stop()
    assert not [pid for pid in started_servers if alive(pid)]


async def test_dns_faults_reach_noc_dns_collectors(estate: DemoEstate) -> None:
    """The demo's own DNS server: a hijack answers an address of no region; a listing
    puts a region's sending IP on the blocklist; restore undoes both."""
    config = await estate.start()
    resolver = parse_resolver(config.dns.resolvers[0])
    records = [r.record() for r in config.dns.records]
    dns = DnsRecordCollector()
    dnsbl = DnsblCollector(resolver, config.email.dnsbl_zones)
    auth = EmailAuthCollector(resolver)

    async def smtp_answers() -> tuple[str, ...]:
        return (await dns.collect(records[:1], [resolver]))[0].answers

    async def listed() -> dict[str, bool | None]:
        return {s.region: s.listed for s in await dnsbl.check(config.sending_ips())}

    assert await smtp_answers() == ("192.0.2.10",)
    assert set((await listed()).values()) == {False}
    passing = await auth.check(
        config.email.domain, config.sending_ips(), config.email.dkim_selectors
    )
    assert all(s.spf.ok and s.dkim.ok and s.dmarc.ok and s.ptr.ok for s in passing)
    await estate.inject("pa", Fault.DNS_HIJACK)
    await estate.inject("bg", Fault.BLOCKLIST)
    assert await smtp_answers() == ("198.18.0.66",)
    assert await listed() == {"ro": False, "bg": True, "pa": False}
    await estate.inject("pa", Fault.RESTORE)
    await estate.inject("bg", Fault.RESTORE)
    assert await smtp_answers() == ("192.0.2.10",)
    assert set((await listed()).values()) == {False}


async def test_a_demo_failover_moves_the_demos_dns_with_its_own_key(
    estate: DemoEstate, tmp_path: Path
) -> None:
    """The demo's config carries a TSIG key made for this run; the failover signs with it."""
    config = await estate.start()
    assert config.failover.chain == ("flag", "dns")
    clock = SystemClock()
    scheduler = Scheduler(config, clock, single_round=True)
    try:
        await scheduler.collect_once()
        facts = await gather_facts(config, scheduler.actuators, ActionKind.FAILOVER)
        assert facts.dns_key_error is None
        plan = plan_action(
            scheduler.engine.snapshot(), config, ActionKind.FAILOVER, "bg", {"operator": "t"}, facts
        )
        assert plan.allowed, plan.refusal
        audit = JsonlLog(tmp_path / "audit.jsonl", clock)
        at = clock.monotonic()
        result = await execute(plan, "demo", scheduler.actuators, audit, clock, confirmed_at=at)
        final = await verify(
            result, scheduler.actuators, audit, clock, reason="demo", confirmed_at=at
        )
        assert final.success, final.summary
        smtp = await DnsRecordCollector().collect(
            [r.record() for r in config.dns.records], [parse_resolver(config.dns.resolvers[0])]
        )
    finally:
        await scheduler.stop()
    bg = config.region("bg")
    assert bg is not None
    assert smtp[0].answers == tuple(str(ip) for ip in bg.service_ips)
    assert smtp[1].answers == (f"10 {(bg.mx_host or '').rstrip('.')}",)
