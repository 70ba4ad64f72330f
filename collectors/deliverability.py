"""Deliverability counters from every region's store, summed over one window.

The sending side increments one counter per event and UTC minute in its region's
store: `deliverability:{event}:{yyyymmddHHMM}` for sent, delivered, hard_bounce,
soft_bounce and complaint. A poll reads the window's keys with one MGET per region
(window_minutes x 5 keys, so the work is bounded by configuration, not by
traffic); a missing key is a minute with no such event.

The window is the current UTC minute (still filling) and the window_minutes - 1
before it: the newest data counts at once, and sums change smoothly as minutes
roll. Rates and their "no data" cases are defined on noc.model.DeliverabilityCounts
(bounce_rate over sent, complaint_rate over delivered, None without a denominator).
Complaints trail their deliveries by minutes to days, so a short window's
complaint rate pairs today's complaints with today's deliveries: a trend, not an
exact ratio of the same messages.

A counter holding anything but a non-negative integer makes the region's figures
unknown (with the key named in the error) rather than silently wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import cast

from noc_collectors.redis_common import open_redis, redis_error_text
from redis.exceptions import RedisError

from noc.clock import Clock, SystemClock
from noc.model import DeliverabilityCounts, DeliverabilitySample, RegionDeliverability

__all__ = ["EVENTS", "KEY_PATTERN", "MAX_WINDOW_MINUTES", "DeliverabilityCollector", "minute_key"]

EVENTS = ("sent", "delivered", "hard_bounce", "soft_bounce", "complaint")
KEY_PATTERN = "deliverability:{event}:{minute}"
# A day: 7,200 keys in one MGET is still one quick round trip.
MAX_WINDOW_MINUTES = 24 * 60


def minute_key(pattern: str, event: str, minute: datetime) -> str:
    """The counter of one event in one UTC minute, as the senders name it."""
    return pattern.format(event=event, minute=minute.strftime("%Y%m%d%H%M"))


class DeliverabilityCollector:
    """stores: region id -> store URL; one Redis pool per region, read concurrently."""

    def __init__(
        self,
        stores: Mapping[str, str],
        *,
        window_minutes: int = 60,
        key_pattern: str = KEY_PATTERN,
        timeout_seconds: float = 2.0,
        clock: Clock | None = None,
    ) -> None:
        if not 1 <= window_minutes <= MAX_WINDOW_MINUTES:
            raise ValueError(f"window_minutes must be 1-{MAX_WINDOW_MINUTES}")
        if "{event}" not in key_pattern or "{minute}" not in key_pattern:
            raise ValueError(f"key pattern {key_pattern!r} must contain {{event}} and {{minute}}")
        self._window = window_minutes
        self._pattern = key_pattern
        self._timeout = timeout_seconds
        self._clock = clock or SystemClock()
        self._clients = {region: open_redis(url, timeout_seconds) for region, url in stores.items()}

    async def poll(self) -> DeliverabilitySample:
        at, wall = self._clock.monotonic(), self._clock.utcnow()
        current = wall.replace(second=0, microsecond=0)
        minutes = [current - timedelta(minutes=n) for n in range(self._window - 1, -1, -1)]
        keys = [minute_key(self._pattern, event, m) for m in minutes for event in EVENTS]
        regions = await asyncio.gather(*(self._read(region, keys) for region in self._clients))
        read = [(r.counts, r.complaint_series) for r in regions if r.counts is not None]
        estate = sum((counts for counts, _ in read), DeliverabilityCounts())
        series = [sum(minute) for minute in zip(*(s for _, s in read), strict=True)]
        return DeliverabilitySample(
            at=at,
            wall=wall,
            window_minutes=self._window,
            window_start=minutes[0],
            regions=tuple(regions),
            estate=estate,
            # No region read: no series at all, rather than a flat line of zeros.
            estate_complaint_series=tuple(series),
        )

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def _read(self, region: str, keys: Sequence[str]) -> RegionDeliverability:
        try:
            async with asyncio.timeout(self._timeout):
                # decode_responses=True: every value is a str or None.
                values = cast(list[str | None], await self._clients[region].mget(keys))
        except (RedisError, OSError, TimeoutError) as exc:
            return RegionDeliverability(region, None, error=redis_error_text(exc))
        totals = dict.fromkeys(EVENTS, 0)
        complaints: list[int] = []
        # Keys go minute by minute, EVENTS in order within each minute.
        for index, (key, raw) in enumerate(zip(keys, values, strict=True)):
            try:
                count = _count(raw)
            except ValueError:
                return RegionDeliverability(region, None, error=f"{key} = {raw!r:.40}: not a count")
            event = EVENTS[index % len(EVENTS)]
            totals[event] += count
            if event == "complaint":
                complaints.append(count)
        return RegionDeliverability(
            region, DeliverabilityCounts(**totals), complaint_series=tuple(complaints)
        )


def _count(raw: str | None) -> int:
    if raw is None:
        return 0
    # INCRBY writes plain integers; "1.0", "-3" or text mean something else wrote here.
    if not raw.isascii() or not raw.isdigit():
        raise ValueError(raw)
    return int(raw)
