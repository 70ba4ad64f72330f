"""Suppression divergence and sync-now against real redis-servers, one per region.

Entries are written with chosen scores relative to a FakeClock's now, so every
count and age below is known exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
from support import estate_config

from noc.clock import FakeClock
from noc.config import ConfigError, parse_config
from noc.model import SuppressionDivergence, SuppressionSample
from noc.simulator import RedisServer
from noc_collectors.suppression import SuppressionCollector, sync_missing
from noc_widgets.sync_summary import sync_words

Servers = Callable[..., list[RedisServer]]
CLOCK_START = FakeClock().utcnow().timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def regions(redis_servers: Servers) -> Iterator[dict[str, RedisServer]]:
    ro, bg, hk = redis_servers(3)
    yield {"ro": ro, "bg": bg, "hk": hk}


def add(server: RedisServer, list_name: str, entries: Mapping[str, float]) -> None:
    """Entries as (member, seconds before the fake clock's now)."""
    with redis.Redis(port=server.port) as client:
        client.zadd(
            f"suppression:{list_name}", {m: CLOCK_START - ago for m, ago in entries.items()}
        )


def members(server: RedisServer, list_name: str) -> dict[bytes, float]:
    with redis.Redis(port=server.port) as client:
        return dict(client.zrange(f"suppression:{list_name}", 0, -1, withscores=True))


@asynccontextmanager
async def collector(
    servers: Mapping[str, RedisServer], clock: FakeClock, **options: Any
) -> AsyncIterator[SuppressionCollector]:
    options.setdefault("timeout_seconds", 1.0)
    made = SuppressionCollector(
        {region: server.url for region, server in servers.items()}, clock=clock, **options
    )
    try:
        yield made
    finally:
        await made.aclose()


def pair(
    sample: SuppressionSample, source: str, target: str, list_name: str
) -> SuppressionDivergence:
    return next(
        p for p in sample.pairs if (p.source, p.target, p.list) == (source, target, list_name)
    )


async def test_known_gaps_and_ages(regions: dict[str, RedisServer], clock: FakeClock) -> None:
    two = {"ro": regions["ro"], "bg": regions["bg"]}
    add(two["ro"], "unsubscribe", {"a@x": 10, "b@x": 100, "c@x": 500, "old@x": 4000})
    add(two["bg"], "unsubscribe", {"a@x": 10})
    add(two["bg"], "complaint", {"d@x": 70})
    async with collector(two, clock) as poller:
        sample = await poller.poll()
    ro_bg = pair(sample, "ro", "bg", "unsubscribe")
    assert ro_bg.unsynced == 2
    assert ro_bg.oldest_unsynced_age_seconds == pytest.approx(500)
    assert ro_bg.examples == ("c@x", "b@x")  # oldest first; old@x is outside the window
    assert ro_bg.examined == 3 and not ro_bg.truncated and ro_bg.error is None
    assert pair(sample, "bg", "ro", "unsubscribe").unsynced == 0
    bg_ro = pair(sample, "bg", "ro", "complaint")
    assert bg_ro.unsynced == 1 and bg_ro.oldest_unsynced_age_seconds == pytest.approx(70)
    quiet = pair(sample, "ro", "bg", "hard_bounce")
    assert quiet.unsynced == 0 and quiet.oldest_unsynced_age_seconds is None
    # One entry per ordered pair and list.
    assert len(sample.pairs) == 2 * 3
    counts = {(c.region, c.list): c.count for c in sample.counts}
    assert counts[("ro", "unsubscribe")] == 4 and counts[("bg", "unsubscribe")] == 1
    assert counts[("bg", "complaint")] == 1 and counts[("ro", "hard_bounce")] == 0
    assert sample.examined == 3 + 1 + 1 and not sample.truncated  # every source's window
    assert sample.wall == clock.utcnow() and sample.lookback_seconds == 3600
    assert ro_bg.as_json() == {
        "source": "ro",
        "target": "bg",
        "list": "unsubscribe",
        "unsynced": 2,
        "oldest_unsynced_age_seconds": pytest.approx(500),
        "rebuilding": False,
    }


async def test_every_ordered_pair_of_three_regions(
    regions: dict[str, RedisServer], clock: FakeClock
) -> None:
    add(regions["hk"], "hard_bounce", {"h@x": 30})
    async with collector(regions, clock) as poller:
        sample = await poller.poll()
    assert len(sample.pairs) == 6 * 3
    assert {(p.source, p.target) for p in sample.pairs} == {
        (s, t) for s in regions for t in regions if s != t
    }
    assert pair(sample, "hk", "ro", "hard_bounce").unsynced == 1
    assert pair(sample, "hk", "bg", "hard_bounce").unsynced == 1
    # hk's window is read once and checked against both targets.
    assert sample.examined == 1


async def test_pages_across_equal_scores_see_each_entry_once(
    regions: dict[str, RedisServer], clock: FakeClock
) -> None:
    two = {"ro": regions["ro"], "bg": regions["bg"]}
    # Runs of equal scores longer than a page, across page edges.
    entries = {f"same{i}@x": 200 for i in range(8)}
    entries |= {f"pair{i}@x": 150 for i in range(2)}
    entries |= {f"step{i}@x": 100 - i for i in range(7)}
    add(two["ro"], "complaint", entries)
    present = {m: a for i, (m, a) in enumerate(entries.items()) if i % 3 == 0}
    add(two["bg"], "complaint", present)
    async with collector(two, clock, page_size=3) as poller:
        sample = await poller.poll()
    gap = pair(sample, "ro", "bg", "complaint")
    assert gap.examined == len(entries)
    assert gap.unsynced == len(entries) - len(present)
    assert gap.oldest_unsynced_age_seconds == pytest.approx(200)


async def test_a_baseline_over_the_cap_says_rebuilding_then_turns_exact(
    regions: dict[str, RedisServer], clock: FakeClock
) -> None:
    two = {"ro": regions["ro"], "bg": regions["bg"]}
    # 200 entries over 4 one-minute buckets (~50 each): a cap of 120 reads two a poll.
    add(two["ro"], "unsubscribe", {f"u{i}@x": 3000 - i for i in range(200)})
    async with collector(two, clock, page_size=20, max_examined=120, verify_buckets=0) as poller:
        first = await poller.poll()
        gap = pair(first, "ro", "bg", "unsubscribe")
        assert first.truncated and gap.rebuilding and gap.truncated
        assert 0 < first.examined <= 120
        # A lower bound meanwhile: buckets are read oldest first, so the oldest is found.
        assert gap.unsynced is not None and gap.unsynced < 200
        assert gap.oldest_unsynced_age_seconds == pytest.approx(3000)
        second = await poller.poll()
        done = pair(second, "ro", "bg", "unsubscribe")
        assert not done.rebuilding and not second.truncated
        assert done.unsynced == 200
        # Nothing changed since: the next poll reads no entry at all.
        third = await poller.poll()
        assert third.examined == 0 and pair(third, "ro", "bg", "unsubscribe").unsynced == 200


async def test_only_bounded_commands_reach_the_stores(
    regions: dict[str, RedisServer], clock: FakeClock
) -> None:
    two = {"ro": regions["ro"], "bg": regions["bg"]}
    add(two["ro"], "unsubscribe", {f"u{i}@x": i for i in range(25)})
    for server in two.values():
        with redis.Redis(port=server.port) as client:
            client.config_resetstat()
    async with collector(two, clock, page_size=10, verify_buckets=0) as poller:
        await poller.poll()
        await poller.poll()  # nothing changed: counts only
    with redis.Redis(port=two["ro"].port, decode_responses=True) as client:
        stats = client.info("commandstats")
    used = {name.removeprefix("cmdstat_") for name in stats}
    assert {"zrangebyscore", "zcount", "zcard"} <= used
    assert not used & {"keys", "smembers", "zrange", "scan", "sscan", "zscan", "zdiff"}
    # Pages of 10 over each non-empty one-minute bucket, read on the first poll only.
    buckets: dict[int, int] = {}
    for ago in range(25):
        index = math.floor((CLOCK_START - ago) / 60)
        buckets[index] = buckets.get(index, 0) + 1
    assert stats["cmdstat_zrangebyscore"]["calls"] == sum(n // 10 + 1 for n in buckets.values())


async def test_unreachable_region_marks_only_its_pairs(
    regions: dict[str, RedisServer], clock: FakeClock
) -> None:
    add(regions["ro"], "unsubscribe", {"a@x": 100})
    regions["hk"].kill()
    async with collector(regions, clock) as poller:
        sample = await poller.poll()
    healthy = pair(sample, "ro", "bg", "unsubscribe")
    assert healthy.unsynced == 1 and healthy.error is None
    to_hk = pair(sample, "ro", "hk", "unsubscribe")
    assert to_hk.unsynced is None and to_hk.error == "hk: connection refused"
    from_hk = pair(sample, "hk", "ro", "unsubscribe")
    assert from_hk.unsynced is None and from_hk.truncated
    assert from_hk.error == "hk: connection refused"
    hk_counts = [c for c in sample.counts if c.region == "hk"]
    assert all(c.count is None and c.error == "connection refused" for c in hk_counts)


async def test_hung_target_costs_one_command_timeout(
    regions: dict[str, RedisServer], clock: FakeClock
) -> None:
    add(regions["ro"], "unsubscribe", {"a@x": 100})
    async with collector(regions, clock, timeout_seconds=0.3) as poller:
        regions["bg"].pause()
        try:
            started = time.monotonic()
            sample = await poller.poll()
            elapsed = time.monotonic() - started
        finally:
            regions["bg"].resume()
    assert elapsed < 1.0
    # The other target of the same scan is still judged.
    assert pair(sample, "ro", "hk", "unsubscribe").unsynced == 1
    stuck = pair(sample, "ro", "bg", "unsubscribe")
    assert stuck.unsynced is None and stuck.error == "bg: timeout"


async def test_poll_deadline_cuts_every_scan_it_catches(
    regions: dict[str, RedisServer], clock: FakeClock
) -> None:
    add(regions["ro"], "unsubscribe", {"a@x": 100})
    async with collector(regions, clock, timeout_seconds=5.0, poll_timeout_seconds=0.3) as poller:
        regions["ro"].pause()
        try:
            started = time.monotonic()
            sample = await poller.poll()
            elapsed = time.monotonic() - started
        finally:
            regions["ro"].resume()
    assert elapsed < 1.0
    cut = pair(sample, "ro", "bg", "unsubscribe")
    assert cut.unsynced is None and cut.truncated
    assert cut.error == "poll deadline (0.3 s) reached"
    assert pair(sample, "bg", "hk", "unsubscribe").unsynced == 0
    assert all(c.count is None for c in sample.counts if c.region == "ro")


async def test_sync_missing_copies_exactly_the_missing_ones(
    regions: dict[str, RedisServer], clock: FakeClock
) -> None:
    ro, bg = regions["ro"], regions["bg"]
    add(ro, "hard_bounce", {"a@x": 10, "b@x": 100, "c@x": 500, "old@x": 4000})
    add(bg, "hard_bounce", {"a@x": 5})  # already there, with its own score
    result = await sync_missing(ro.url, bg.url, "hard_bounce", clock=clock)
    assert (result.examined, result.missing, result.copied) == (3, 2, 2)
    assert not result.truncated and result.errors == ()
    assert members(bg, "hard_bounce") == {
        b"a@x": CLOCK_START - 5,  # untouched
        b"b@x": CLOCK_START - 100,  # the source's score, kept
        b"c@x": CLOCK_START - 500,
    }
    again = await sync_missing(ro.url, bg.url, "hard_bounce", clock=clock)
    assert (again.missing, again.copied) == (0, 0)
    async with collector({"ro": ro, "bg": bg}, clock) as poller:
        sample = await poller.poll()
    assert pair(sample, "ro", "bg", "hard_bounce").unsynced == 0


async def test_sync_missing_is_bounded(regions: dict[str, RedisServer], clock: FakeClock) -> None:
    ro, bg = regions["ro"], regions["bg"]
    add(ro, "complaint", {f"c{i}@x": 1000 - i for i in range(30)})
    first = await sync_missing(
        ro.url, bg.url, "complaint", page_size=7, max_examined=20, clock=clock
    )
    assert (first.examined, first.copied, first.truncated) == (20, 20, True)
    second = await sync_missing(ro.url, bg.url, "complaint", page_size=7, clock=clock)
    assert (second.examined, second.missing, second.copied) == (30, 10, 10)
    assert not second.truncated


async def test_sync_missing_reports_instead_of_raising(
    regions: dict[str, RedisServer], clock: FakeClock
) -> None:
    ro, bg = regions["ro"], regions["bg"]
    add(ro, "complaint", {"c@x": 10})
    bg.kill()
    result = await sync_missing(ro.url, bg.url, "complaint", timeout_seconds=0.5, clock=clock)
    assert result.copied == 0 and result.truncated
    assert result.errors == ("target: connection refused",)
    ro.kill()
    result = await sync_missing(ro.url, bg.url, "complaint", timeout_seconds=0.5, clock=clock)
    assert result.errors == ("source: connection refused",)


async def test_key_pattern_is_configurable(
    regions: dict[str, RedisServer], clock: FakeClock
) -> None:
    two = {"ro": regions["ro"], "bg": regions["bg"]}
    with redis.Redis(port=two["ro"].port) as client:
        client.zadd("tenant7:sup:unsubscribe", {"z@x": CLOCK_START - 20})
    async with collector(two, clock, key_pattern="tenant7:sup:{list}") as poller:
        sample = await poller.poll()
    assert pair(sample, "ro", "bg", "unsubscribe").unsynced == 1


def test_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="must contain"):
        SuppressionCollector({}, key_pattern="suppression")
    with pytest.raises(ValueError, match="must be positive"):
        SuppressionCollector({}, max_examined=0)


def test_bucket_and_verify_keys_parse_and_are_validated() -> None:
    data = estate_config().model_dump(mode="json")
    data["suppression"] |= {"bucket_seconds": 30, "verify_buckets": 0}
    parsed = parse_config(data, "noc.toml").suppression
    assert (parsed.bucket_seconds, parsed.verify_buckets) == (30, 0)
    data["suppression"] |= {"bucket_seconds": 1}  # 3,600 buckets in an hour: too many
    with pytest.raises(ConfigError) as raised:
        parse_config(data, "noc.toml")
    (problem,) = raised.value.problems
    assert problem.startswith("noc.toml: suppression")
    assert "bucket_seconds" in problem and "at least 2.5" in problem
    data["suppression"] |= {"bucket_seconds": None, "verify_buckets": -1}
    with pytest.raises(ConfigError, match=r"noc.toml: suppression\.verify_buckets"):
        parse_config(data, "noc.toml")


async def test_a_replaced_store_is_rebuilt_then_counted_exactly(
    regions: dict[str, RedisServer], clock: FakeClock
) -> None:
    """A store replaced under noc (a new redis-server: new run_id) starts its pairs over."""
    two = {"ro": regions["ro"], "bg": regions["bg"]}
    # 300 entries over six one-minute buckets; bg lacks every tenth.
    entries = {f"r{i}@x": 1 + i for i in range(300)}
    add(two["ro"], "unsubscribe", entries)
    add(two["bg"], "unsubscribe", {m: ago for m, ago in entries.items() if int(m[1:-2]) % 10})
    # A cap of 100 entries a poll: each full read of the window takes several polls.
    async with collector(two, clock, page_size=20, max_examined=100, verify_buckets=0) as poller:
        sample = await poller.poll()
        while pair(sample, "ro", "bg", "unsubscribe").rebuilding:
            sample = await poller.poll()
        assert pair(sample, "ro", "bg", "unsubscribe").unsynced == 30

        # The replacement: a new server process on the same address, restored from a
        # backup that lacks every seventh entry instead.
        two["bg"].restart()
        with redis.Redis(port=two["bg"].port) as client:
            client.flushall()
        add(two["bg"], "unsubscribe", {m: ago for m, ago in entries.items() if int(m[1:-2]) % 7})
        clock.advance(1)
        # The pool's connections to the old process are closed: the first poll may say
        # so (the pair's error), the next connects afresh.
        rebuilt = await poller.poll()
        gap = pair(rebuilt, "ro", "bg", "unsubscribe")
        if gap.error is not None:
            rebuilt = await poller.poll()
            gap = pair(rebuilt, "ro", "bg", "unsubscribe")
        assert gap.rebuilding and 0 <= gap.rebuild_progress < 1
        assert "rebuilding" in sync_words(rebuilt, 60).plain
        progress = [gap.rebuild_progress]
        while gap.rebuilding:
            rebuilt = await poller.poll()
            gap = pair(rebuilt, "ro", "bg", "unsubscribe")
            progress.append(gap.rebuild_progress)
        # Progress only goes up, and the count is exact once the rebuild is done.
        assert progress == sorted(progress) and len(progress) > 1
        assert gap.unsynced == len([i for i in range(300) if i % 7 == 0])
        assert "rebuilding" not in sync_words(rebuilt, 60).plain


async def test_a_rebuild_is_spread_over_polls_by_the_reading_time(
    regions: dict[str, RedisServer], clock: FakeClock
) -> None:
    """With the reading time always spent, each poll reads its least and stops there."""
    two = {"ro": regions["ro"], "bg": regions["bg"]}
    # 4,000 entries, 1,000 a one-minute bucket; bg lacks every fifth.
    entries = {f"s{i}@x": 1 + (i // 1000) * 60 + (i % 1000) * 0.05 for i in range(4000)}
    add(two["ro"], "unsubscribe", entries)
    add(two["bg"], "unsubscribe", {m: ago for m, ago in entries.items() if int(m[1:-2]) % 5})
    async with collector(two, clock, read_seconds=1e-9, verify_buckets=0) as poller:
        polls = [await poller.poll()]
        while pair(polls[-1], "ro", "bg", "unsubscribe").rebuilding:
            assert len(polls) < 20
            polls.append(await poller.poll())
    gaps = [pair(p, "ro", "bg", "unsubscribe") for p in polls]
    assert len(polls) >= 3  # no single poll read the whole window
    assert all(p.examined < 4000 * 2 for p in polls)  # both stores, a bucket or two each
    progress = [g.rebuild_progress for g in gaps[:-1]]
    assert progress == sorted(progress) and progress[-1] < 1
    assert gaps[-1].unsynced == 800 and not gaps[-1].truncated
