"""Deliverability sums and rates over a window, from known counters in real redis-servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest
import redis

from noc.clock import FakeClock
from noc.model import DeliverabilityCounts, DeliverabilitySample
from noc.simulator import RedisServer
from noc_collectors.deliverability import KEY_PATTERN, DeliverabilityCollector, minute_key

Servers = Callable[..., list[RedisServer]]
# 03:00:30 UTC: a 60-minute window is 02:01 to 03:00 (the current minute, still filling).
NOW = datetime.fromisoformat("2026-11-23T03:00:30+00:00")


def at(hhmm: str) -> datetime:
    return datetime.fromisoformat(f"2026-11-23T{hhmm}:00+00:00")


def write(server: RedisServer, minute: str, **events: int | str) -> None:
    with redis.Redis(port=server.port) as client:
        for event, value in events.items():
            client.set(minute_key(KEY_PATTERN, event, at(minute)), value)


@asynccontextmanager
async def collector(
    servers: Mapping[str, RedisServer], **options: Any
) -> AsyncIterator[DeliverabilityCollector]:
    made = DeliverabilityCollector(
        {region: server.url for region, server in servers.items()},
        timeout_seconds=1.0,
        clock=FakeClock(start=NOW),
        **options,
    )
    try:
        yield made
    finally:
        await made.aclose()


@pytest.fixture
def stores(redis_servers: Servers) -> dict[str, RedisServer]:
    ro, bg = redis_servers(2)
    return {"ro": ro, "bg": bg}


def region(sample: DeliverabilitySample, region_id: str) -> Any:
    return next(r for r in sample.regions if r.region == region_id)


async def test_sums_and_rates_over_the_window(stores: dict[str, RedisServer]) -> None:
    ro, bg = stores["ro"], stores["bg"]
    write(ro, "03:00", sent=100, delivered=95, hard_bounce=2, soft_bounce=3, complaint=1)
    write(ro, "02:30", complaint=2)
    write(ro, "02:01", sent=50, delivered=50)  # the window's first minute
    write(ro, "02:00", sent=1000, complaint=9)  # one minute too old
    write(bg, "02:59", sent=200, delivered=190, hard_bounce=5, soft_bounce=5)
    async with collector(stores) as poller:
        sample = await poller.poll()
    assert sample.window_minutes == 60 and sample.window_start == at("02:01")
    ro_counts = region(sample, "ro").counts
    assert ro_counts == DeliverabilityCounts(150, 145, 2, 3, 3)
    assert ro_counts.bounce_rate == pytest.approx(5 / 150)
    assert ro_counts.complaint_rate == pytest.approx(3 / 145)
    assert sample.estate == DeliverabilityCounts(350, 335, 7, 8, 3)
    assert sample.estate.bounce_rate == pytest.approx(15 / 350)
    assert sample.estate.complaint_rate == pytest.approx(3 / 335)
    series = region(sample, "ro").complaint_series
    assert len(series) == 60 and series[29] == 2 and series[59] == 1 and sum(series) == 3
    assert sample.estate_complaint_series == series  # bg had no complaints
    assert sample.missing == ()


async def test_no_mail_means_no_rate_not_zero(stores: dict[str, RedisServer]) -> None:
    write(stores["bg"], "02:45", soft_bounce=1)  # a late bounce, nothing sent this window
    async with collector(stores) as poller:
        sample = await poller.poll()
    quiet = region(sample, "ro").counts
    assert quiet == DeliverabilityCounts()
    assert quiet.bounce_rate is None and quiet.complaint_rate is None
    assert region(sample, "bg").counts.bounce_rate is None
    regions_json = sample.as_json()["regions"]
    assert regions_json[0] == {
        "id": "ro",
        "sent": 0,
        "delivered": 0,
        "hard_bounce": 0,
        "soft_bounce": 0,
        "complaint": 0,
        "bounce_rate": None,
        "complaint_rate": None,
        "error": None,
    }


async def test_unreachable_region_is_missing_not_zero(stores: dict[str, RedisServer]) -> None:
    write(stores["ro"], "02:50", sent=10, delivered=10, complaint=1)
    stores["bg"].kill()
    async with collector(stores) as poller:
        sample = await poller.poll()
    down = region(sample, "bg")
    assert down.counts is None and down.error == "connection refused"
    assert down.complaint_series == ()
    assert sample.estate == DeliverabilityCounts(10, 10, 0, 0, 1)
    assert sample.missing == ("bg",)
    document = sample.as_json()
    assert document["window_minutes"] == 60
    assert document["estate"] == {
        "sent": 10,
        "delivered": 10,
        "hard_bounce": 0,
        "soft_bounce": 0,
        "complaint": 1,
        "bounce_rate": 0.0,
        "complaint_rate": 0.1,
        "missing_regions": ["bg"],
    }
    assert document["regions"][1]["sent"] is None
    assert document["regions"][1]["error"] == "connection refused"


async def test_every_region_down_gives_no_series(stores: dict[str, RedisServer]) -> None:
    for server in stores.values():
        server.kill()
    async with collector(stores) as poller:
        sample = await poller.poll()
    assert sample.missing == ("ro", "bg")
    assert sample.estate_complaint_series == ()


@pytest.mark.parametrize("value", ["abc", "1.5", "-3", "٣"])
async def test_garbage_counter_makes_the_region_unknown(
    stores: dict[str, RedisServer], value: str
) -> None:
    write(stores["ro"], "02:10", sent=value)
    async with collector(stores) as poller:
        sample = await poller.poll()
    broken = region(sample, "ro")
    assert broken.counts is None
    assert broken.error == f"deliverability:sent:202611230210 = {value!r}: not a count"


async def test_one_mget_per_region_of_window_times_events_keys(
    stores: dict[str, RedisServer],
) -> None:
    write(stores["ro"], "03:00", sent=1)
    write(stores["ro"], "02:55", sent=1)  # outside a 5-minute window
    with redis.Redis(port=stores["ro"].port) as client:
        client.config_resetstat()
    async with collector(stores, window_minutes=5) as poller:
        sample = await poller.poll()
    with redis.Redis(port=stores["ro"].port, decode_responses=True) as client:
        stats = client.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 1
    assert region(sample, "ro").counts.sent == 1
    assert sample.window_start == at("02:56")
    assert len(region(sample, "ro").complaint_series) == 5


async def test_key_pattern_is_configurable(stores: dict[str, RedisServer]) -> None:
    with redis.Redis(port=stores["ro"].port) as client:
        client.set("mta:ro:sent:202611230300", 7)
    pattern = "mta:ro:{event}:{minute}"
    async with collector(stores, key_pattern=pattern, window_minutes=1) as poller:
        sample = await poller.poll()
    assert region(sample, "ro").counts.sent == 7


def test_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="window_minutes"):
        DeliverabilityCollector({}, window_minutes=0)
    with pytest.raises(ValueError, match="must contain"):
        DeliverabilityCollector({}, key_pattern="deliverability:{event}")
