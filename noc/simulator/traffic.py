"""Simulated mail traffic in each demo region: deliverability counters and suppressions.

Every tick each region's sender adds what it sent since the last tick to its own
store, as the collectors expect to find it: per-minute counters
`deliverability:{event}:{yyyymmddHHMM}` (INCRBY) and new suppression entries
(hashed address, score = UTC epoch added) for the hard bounces, complaints and
unsubscribes among them. The active region sends `sent_per_second`, the others a
warm share of it; which region is active is read from each region's own failover
flag, as a real sender obeys the STOP flag, so traffic follows a demo failover.

The last `prefill_minutes` are written at start (already synced everywhere), so
rates and counts mean something at once. Counters expire and suppression entries
older than `retention_seconds` are trimmed, so memory stays bounded however long
the demo runs. `SuppressionSync` is the cross-region sync service: every
`sync_interval_seconds` it copies each store's new entries to every other store
(`ZADD NX`, keeping the score), except into regions whose sync is stalled.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import redis.asyncio as aioredis
from noc_collectors.deliverability import minute_key
from redis.exceptions import RedisError

__all__ = ["MailTraffic", "SuppressionSync", "TrafficTuning"]

# Shares of sent (bounces) and of delivered (unsubscribes): a healthy sender's figures.
HARD_BOUNCE_SHARE = 0.006
SOFT_BOUNCE_SHARE = 0.02
UNSUBSCRIBE_SHARE = 0.001
# A counter outlives its minute by this much: longer than any demo window reads.
COUNTER_TTL_SECONDS = 2 * 3600
# Entries a sync round reads per source, list and target: a long stall catches up
# over a few rounds instead of in one unbounded read.
SYNC_BATCH = 5000
# A sync round re-reads this far behind its watermark: an entry's score is taken
# just before its write, which may land after a round has read past that score.
SYNC_OVERLAP_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class TrafficTuning:
    """How much the demo sends and how fast it syncs; tests shorten the intervals."""

    tick_seconds: float = 2.0
    sent_per_second: float = 300.0  # in the active region
    warm_share: float = 0.15  # a passive region's volume, as a share of the active's
    complaint_rate: float = 0.00025  # of delivered: well under the 0.1 % warning
    complaint_spike_rate: float = 0.03  # a bad list import: 10x the 0.3 % limit
    sync_interval_seconds: float = 5.0
    retention_seconds: float = 3600.0
    prefill_minutes: int = 60


@dataclass(frozen=True, slots=True)
class _Sent:
    """What one region sent in one stretch of time: event counts, new suppressions per list."""

    counts: dict[str, int]
    suppressions: dict[str, int]


class MailTraffic:
    """The senders of every region, one store client each.

    spiking: the regions with a complaint spike, kept up to date by the caller.
    """

    def __init__(
        self,
        clients: Mapping[str, aioredis.Redis],
        *,
        primary: str,
        flag_key: str,
        counter_pattern: str,
        suppression_pattern: str,
        spiking: AbstractSet[str],
        tuning: TrafficTuning,
        rng: random.Random,
    ) -> None:
        self._spiking = spiking
        self._clients = clients
        self._flag_key = flag_key
        self._counter_pattern = counter_pattern
        self._suppression_pattern = suppression_pattern
        self._tuning = tuning
        self._rng = rng
        # Until a region's flag is read, the configured primary sends.
        self._active = dict.fromkeys(clients, primary)

    async def prefill(self) -> None:
        """Write the last prefill_minutes of traffic, identical suppressions everywhere."""
        now = time.time()
        current = _minute_start(now)
        minutes = [current - 60 * n for n in range(self._tuning.prefill_minutes, 0, -1)]
        counters: dict[str, list[tuple[str, int]]] = {region: [] for region in self._clients}
        entries: dict[str, dict[str, float]] = {}
        for region in self._clients:
            # The current minute is filled up to now; the ticks carry on from here.
            spans = [(start, 60.0) for start in minutes] + [(current, now - current)]
            for start, seconds in spans:
                sent = self._send(region, seconds)
                minute = datetime.fromtimestamp(start, UTC)
                counters[region] += [
                    (minute_key(self._counter_pattern, event, minute), count)
                    for event, count in sent.counts.items()
                ]
                for name, count in sent.suppressions.items():
                    scores = entries.setdefault(self._suppression_key(name), {})
                    for _ in range(count):
                        scores[self._address()] = round(start + self._rng.random() * seconds, 3)
        await asyncio.gather(
            *(self._write_prefill(region, counters[region], entries) for region in self._clients)
        )

    async def run(self) -> None:
        """Tick until cancelled."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(self._tuning.tick_seconds)
            # Volume follows the time that really passed, however late a tick runs.
            now = time.monotonic()
            ticks = (self._tick(region, now - last, time.time()) for region in self._clients)
            await asyncio.gather(*ticks)
            last = now

    async def _write_prefill(
        self,
        region: str,
        counters: Sequence[tuple[str, int]],
        entries: Mapping[str, Mapping[str, float]],
    ) -> None:
        async with self._clients[region].pipeline(transaction=False) as pipe:
            for key, count in counters:
                pipe.set(key, count, ex=COUNTER_TTL_SECONDS)
            for key, scores in entries.items():
                if scores:
                    pipe.zadd(key, dict(scores))
            await pipe.execute()

    async def _tick(self, region: str, seconds: float, now: float) -> None:
        sent = self._send(region, seconds)
        minute = datetime.fromtimestamp(now, UTC)
        score = round(now, 3)
        try:
            async with self._clients[region].pipeline(transaction=False) as pipe:
                # The flag read here decides the next tick's volume: one tick late,
                # as a real sender polling its flag would be.
                pipe.hget(self._flag_key, "active")
                for event, count in sent.counts.items():
                    key = minute_key(self._counter_pattern, event, minute)
                    pipe.incrby(key, count)
                    pipe.expire(key, COUNTER_TTL_SECONDS)
                for name, count in sent.suppressions.items():
                    if count:
                        key = self._suppression_key(name)
                        pipe.zadd(key, {self._address(): score for _ in range(count)})
                results = await pipe.execute()
        except (RedisError, OSError, TimeoutError):
            # A store that is down or hung (tests kill some): this tick's figures are
            # lost and the next tick carries on, as a sender's metrics would.
            return
        active = cast(str | None, results[0])
        if active:
            self._active[region] = active

    def _send(self, region: str, seconds: float) -> _Sent:
        """Draw what `region` sent in `seconds`: the counts of each event and suppression."""
        tuning = self._tuning
        share = 1.0 if self._active[region] == region else tuning.warm_share
        sent = self._poisson(tuning.sent_per_second * share * seconds)
        hard = self._poisson(sent * HARD_BOUNCE_SHARE)
        soft = self._poisson(sent * SOFT_BOUNCE_SHARE)
        delivered = max(0, sent - hard - soft)
        rate = tuning.complaint_spike_rate if region in self._spiking else tuning.complaint_rate
        complaint = self._poisson(delivered * rate)
        counts = {
            "sent": sent,
            "delivered": delivered,
            "hard_bounce": hard,
            "soft_bounce": soft,
            "complaint": complaint,
        }
        suppressions = {
            "hard_bounce": hard,
            "complaint": complaint,
            "unsubscribe": self._poisson(delivered * UNSUBSCRIBE_SHARE),
        }
        return _Sent(counts, suppressions)

    def _poisson(self, mean: float) -> int:
        if mean <= 0:
            return 0
        if mean > 50:
            # The normal approximation: exact enough here and O(1) for big volumes.
            return max(0, round(self._rng.gauss(mean, math.sqrt(mean))))
        # Knuth's method: multiply uniforms until the product drops below e^-mean.
        limit, count, product = math.exp(-mean), 0, self._rng.random()
        while product > limit:
            count += 1
            product *= self._rng.random()
        return count

    def _address(self) -> str:
        # What a suppression list holds: a SHA-1-sized hash of the address.
        return f"{self._rng.getrandbits(160):040x}"

    def _suppression_key(self, list_name: str) -> str:
        return self._suppression_pattern.format(list=list_name)


class SuppressionSync:
    """Copies new suppression entries between every pair of stores.

    stalled: the regions that receive nothing, kept up to date by the caller.

    Each (source, target, list) keeps a watermark: the newest score it has copied.
    A round reads the source from a little before the watermark and copies with
    NX, so re-reading is harmless. A stalled target's watermarks stay put, so on
    restore the backlog is copied from where it stopped.
    """

    def __init__(
        self,
        clients: Mapping[str, aioredis.Redis],
        *,
        key_pattern: str,
        lists: Sequence[str],
        stalled: AbstractSet[str],
        tuning: TrafficTuning,
    ) -> None:
        self._stalled = stalled
        self._clients = clients
        self._keys = [key_pattern.format(list=name) for name in lists]
        self._tuning = tuning
        # Prefilled entries are in every store already.
        start = time.time()
        self._watermarks = {
            (source, target, key): start
            for source in clients
            for target in clients
            if source != target
            for key in self._keys
        }

    async def run(self) -> None:
        """Sync every sync_interval_seconds until cancelled."""
        while True:
            await asyncio.sleep(self._tuning.sync_interval_seconds)
            await self._sync_round()

    async def _sync_round(self) -> None:
        await asyncio.gather(
            *(self._copy(*link) for link in self._watermarks if link[1] not in self._stalled),
            *(self._trim(region) for region in self._clients),
        )

    async def _copy(self, source: str, target: str, key: str) -> None:
        link = (source, target, key)
        since = self._watermarks[link] - SYNC_OVERLAP_SECONDS
        try:
            entries = cast(
                list[tuple[str, float]],
                await self._clients[source].zrangebyscore(
                    key, since, "+inf", start=0, num=SYNC_BATCH, withscores=True
                ),
            )
            if entries:
                await self._clients[target].zadd(key, dict(entries), nx=True)
        except (RedisError, OSError, TimeoutError):
            return  # the watermark stays, so the next round copies this round's entries too
        if entries:
            self._watermarks[link] = max(self._watermarks[link], entries[-1][1])

    async def _trim(self, region: str) -> None:
        cutoff = time.time() - self._tuning.retention_seconds
        try:
            async with self._clients[region].pipeline(transaction=False) as pipe:
                for key in self._keys:
                    pipe.zremrangebyscore(key, "-inf", f"({cutoff!r}")
                await pipe.execute()
        except (RedisError, OSError, TimeoutError):
            return  # trimming can wait for the next round


def _minute_start(epoch: float) -> float:
    return epoch - epoch % 60
