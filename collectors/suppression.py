"""Suppression lists in every region's store, and how far each region lags the others.

Each region's store holds one sorted set per list (unsubscribe, hard_bounce,
complaint): member = an address or its hash, score = the UTC epoch second it was
added. A region honours an entry only once the entry is in its own store, so per
ordered pair (source -> target) and list the poll counts the entries the source
added within a lookback window that the target still lacks, and the age of the
oldest of them: the figure the 60 s suppression SLO is judged on.

The work is bounded whatever the sets' sizes: only the window is read, in pages
(`ZRANGEBYSCORE key (since +inf WITHSCORES LIMIT offset count`, oldest first, each
page starting at the last score seen so it costs O(log N + page)), membership is
checked a page at a time with `ZMSCORE` on the target, and one budget caps the
entries read per poll across every scan; a scan that hits it says so (truncated).
Nothing here uses KEYS, SMEMBERS or an unbounded range.

`sync_missing()` is the sync-now action: it copies what a target lacks with
`ZADD NX`, keeping the source's score, so running it twice copies nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import redis.asyncio as aioredis
from noc_collectors.redis_common import open_redis, redis_error_text
from redis.exceptions import RedisError

from noc.clock import Clock, SystemClock
from noc.model import SuppressionCount, SuppressionDivergence, SuppressionSample, SyncResult

__all__ = [
    "DEFAULT_LISTS",
    "KEY_PATTERN",
    "SuppressionCollector",
    "sync_missing",
]

DEFAULT_LISTS = ("unsubscribe", "hard_bounce", "complaint")
KEY_PATTERN = "suppression:{list}"
# Members are addresses or hashes; an example longer than this is cut for the screen.
_EXAMPLE_CHARS = 80

_Entry = tuple[bytes, float]


class _Budget:
    """Entries that may still be read this poll, shared by every concurrent scan."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, wanted: int) -> int:
        granted = min(wanted, self.left)
        self.left -= granted
        return granted

    def give_back(self, unused: int) -> None:
        self.left += unused


class _Window:
    """One sorted set's entries scored after `since`, a page at a time, oldest first."""

    def __init__(
        self, client: aioredis.Redis, key: str, since: float, page_size: int, budget: _Budget
    ) -> None:
        self._client = client
        self._key = key
        self._since = since
        self._page_size = page_size
        self._budget = budget
        self.read = 0
        self.truncated = False  # stopped by the budget before the window's end

    async def pages(self) -> AsyncIterator[list[_Entry]]:
        low, skip = f"({self._since!r}", 0
        boundary: float | None = None
        while True:
            wanted = self._budget.take(self._page_size)
            if not wanted:
                self.truncated = True
                return
            # decode_responses=False and WITHSCORES: (member bytes, score float) pairs.
            page = cast(
                list[_Entry],
                await self._client.zrangebyscore(
                    self._key, low, "+inf", start=skip, num=wanted, withscores=True
                ),
            )
            self._budget.give_back(wanted - len(page))
            self.read += len(page)
            if page:
                yield page
            if len(page) < wanted:
                return
            # Keyset paging: the next page starts at the last score seen, skipping
            # the entries with that score already read (LIMIT offset counts only
            # those, never the whole window behind us). An entry removed at that
            # score mid-scan shifts the skip by one; suppressions are rarely removed,
            # and the next poll reads afresh.
            last = page[-1][1]
            at_last = 0
            for _, score in reversed(page):
                if score != last:
                    break
                at_last += 1
            # A page that began and ended on the boundary score adds to the skip.
            skip = skip + at_last if last == boundary else at_last
            boundary, low = last, repr(last)


@dataclass(slots=True)
class _Gap:
    """What one target lacks of one source's window, so far."""

    checked: int = 0
    unsynced: int = 0
    oldest: float | None = None
    examples: list[str] = field(default_factory=list)
    error: str | None = None

    def add(self, page: Sequence[_Entry], scores: Sequence[float | None], limit: int) -> None:
        self.checked += len(page)
        for (member, score), present in zip(page, scores, strict=True):
            if present is not None:
                continue
            self.unsynced += 1
            if self.oldest is None:  # pages come oldest first
                self.oldest = score
            if len(self.examples) < limit:
                self.examples.append(member.decode("utf-8", "replace")[:_EXAMPLE_CHARS])


async def _zmscore(
    client: aioredis.Redis, key: str, members: Sequence[bytes]
) -> list[float | None] | str:
    """Scores (None: absent) of `members` in `key`, or why the target could not say."""
    try:
        # redis-py annotates members as str; bytes go to the server verbatim.
        scores: list[float | None] = await client.zmscore(key, cast(list[str], list(members)))
    except (RedisError, OSError, TimeoutError) as exc:
        return redis_error_text(exc)
    return scores


class SuppressionCollector:
    """Polls every region's suppression lists; one Redis pool per region.

    stores: region id -> store URL. timeout_seconds bounds each command;
    poll_timeout_seconds the whole poll (a scan cut by it reports truncated).
    """

    def __init__(
        self,
        stores: Mapping[str, str],
        *,
        lists: Sequence[str] = DEFAULT_LISTS,
        key_pattern: str = KEY_PATTERN,
        lookback_seconds: float = 3600.0,
        page_size: int = 1000,
        max_examined: int = 100_000,
        example_limit: int = 5,
        timeout_seconds: float = 2.0,
        poll_timeout_seconds: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        _check_options(key_pattern, lookback_seconds, page_size, max_examined)
        self._lists = tuple(lists)
        self._key_pattern = key_pattern
        self._lookback = lookback_seconds
        self._page_size = page_size
        self._max_examined = max_examined
        self._example_limit = example_limit
        self._poll_timeout = poll_timeout_seconds
        self._clock = clock or SystemClock()
        # Raw bytes: members go back to the target verbatim, whatever their encoding.
        self._clients = {
            region: open_redis(url, timeout_seconds, decode=False) for region, url in stores.items()
        }

    async def poll(self) -> SuppressionSample:
        at, wall = self._clock.monotonic(), self._clock.utcnow()
        now = wall.timestamp()
        deadline = asyncio.get_running_loop().time() + self._poll_timeout
        budget = _Budget(self._max_examined)
        counts, scans = await asyncio.gather(
            asyncio.gather(*(self._count(region, deadline) for region in self._clients)),
            asyncio.gather(
                *(
                    self._scan(source, name, now, budget, deadline)
                    for source in self._clients
                    for name in self._lists
                )
            ),
        )
        return SuppressionSample(
            at=at,
            wall=wall,
            lookback_seconds=self._lookback,
            counts=tuple(c for region in counts for c in region),
            pairs=tuple(p for scan in scans for p in scan[0]),
            examined=sum(read for _, read, _ in scans),
            truncated=any(truncated for _, _, truncated in scans),
        )

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    def _key(self, list_name: str) -> str:
        return self._key_pattern.format(list=list_name)

    async def _count(self, region: str, deadline: float) -> list[SuppressionCount]:
        try:
            async with asyncio.timeout_at(deadline):
                async with self._clients[region].pipeline(transaction=False) as pipe:
                    for name in self._lists:
                        pipe.zcard(self._key(name))
                    sizes: list[int] = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            error = redis_error_text(exc)
            return [SuppressionCount(region, name, None, error) for name in self._lists]
        return [
            SuppressionCount(region, n, size) for n, size in zip(self._lists, sizes, strict=True)
        ]

    async def _scan(
        self, source: str, list_name: str, now: float, budget: _Budget, deadline: float
    ) -> tuple[list[SuppressionDivergence], int, bool]:
        """Read the source's window once, checking each page against every other region."""
        key = self._key(list_name)
        targets = [region for region in self._clients if region != source]
        if not targets:
            return [], 0, False
        gaps = {target: _Gap() for target in targets}
        window = _Window(self._clients[source], key, now - self._lookback, self._page_size, budget)
        source_error = None
        try:
            async with asyncio.timeout_at(deadline):
                async for page in window.pages():
                    live = [t for t in targets if gaps[t].error is None]
                    if not live:
                        break
                    members = [member for member, _ in page]
                    answers = await asyncio.gather(
                        *(_zmscore(self._clients[t], key, members) for t in live)
                    )
                    for target, answer in zip(live, answers, strict=True):
                        if isinstance(answer, str):
                            gaps[target].error = f"{target}: {answer}"
                        else:
                            gaps[target].add(page, answer, self._example_limit)
        except TimeoutError:
            source_error = f"poll deadline ({self._poll_timeout:g} s) reached"
        except (RedisError, OSError) as exc:
            source_error = f"{source}: {redis_error_text(exc)}"
        # A scan cut short by an error has not seen the whole window either.
        cut = window.truncated or source_error is not None
        pairs = [
            _divergence(source, target, list_name, gaps[target], now, cut, source_error)
            for target in targets
        ]
        return pairs, window.read, cut


def _divergence(
    source: str,
    target: str,
    list_name: str,
    gap: _Gap,
    now: float,
    cut: bool,
    source_error: str | None,
) -> SuppressionDivergence:
    error = source_error or gap.error
    known = gap.checked > 0 or error is None
    return SuppressionDivergence(
        source=source,
        target=target,
        list=list_name,
        unsynced=gap.unsynced if known else None,
        # An entry stamped ahead of noc's clock (skew) is brand new, not negative-aged.
        oldest_unsynced_age_seconds=None if gap.oldest is None else max(0.0, now - gap.oldest),
        examined=gap.checked,
        truncated=cut or gap.error is not None,
        examples=tuple(gap.examples),
        error=error,
    )


def _check_options(key_pattern: str, lookback: float, page_size: int, max_examined: int) -> None:
    if "{list}" not in key_pattern:
        raise ValueError(f"key pattern {key_pattern!r} must contain {{list}}")
    if lookback <= 0 or page_size < 1 or max_examined < 1:
        raise ValueError("lookback_seconds, page_size and max_examined must be positive")


async def sync_missing(
    source_url: str,
    target_url: str,
    list_name: str,
    *,
    key_pattern: str = KEY_PATTERN,
    lookback_seconds: float = 3600.0,
    page_size: int = 1000,
    max_examined: int = 100_000,
    timeout_seconds: float = 2.0,
    deadline_seconds: float = 30.0,
    clock: Clock | None = None,
) -> SyncResult:
    """Copy the entries of the source's window that the target lacks, keeping their scores.

    `ZADD NX`: an entry that reached the target meanwhile (by the regular sync, with
    its own score) is left alone, and a repeat run copies nothing. Bounded like a
    poll: max_examined source entries, pages of page_size, deadline_seconds in all;
    `truncated` says to run it again. Never raises for a store that is down.
    """
    _check_options(key_pattern, lookback_seconds, page_size, max_examined)
    clock = clock or SystemClock()
    at, wall = clock.monotonic(), clock.utcnow()
    key = key_pattern.format(list=list_name)
    source = open_redis(source_url, timeout_seconds, decode=False)
    target = open_redis(target_url, timeout_seconds, decode=False)
    window = _Window(
        source, key, wall.timestamp() - lookback_seconds, page_size, _Budget(max_examined)
    )
    missing = copied = 0
    errors: list[str] = []
    try:
        async with asyncio.timeout(deadline_seconds):
            async for page in window.pages():
                scores = await _zmscore(target, key, [member for member, _ in page])
                if isinstance(scores, str):
                    errors.append(f"target: {scores}")
                    break
                absent = {m: s for (m, s), p in zip(page, scores, strict=True) if p is None}
                missing += len(absent)
                if absent:
                    try:
                        # With NX (and no INCR) ZADD answers how many it added.
                        copied += cast(int, await target.zadd(key, absent, nx=True))
                    except (RedisError, OSError) as exc:
                        errors.append(f"target: {redis_error_text(exc)}")
                        break
    except TimeoutError:
        errors.append(f"deadline ({deadline_seconds:g} s) reached")
    except (RedisError, OSError) as exc:
        errors.append(f"source: {redis_error_text(exc)}")
    finally:
        await source.aclose()
        await target.aclose()
    return SyncResult(
        list=list_name,
        at=at,
        wall=wall,
        examined=window.read,
        missing=missing,
        copied=copied,
        truncated=window.truncated or bool(errors),
        errors=tuple(errors),
    )
