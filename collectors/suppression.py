"""Suppression lists in every region's store, and how far each region lags the others.

Each region's store holds one sorted set per list (unsubscribe, hard_bounce,
complaint): member = an address or its hash, score = the UTC epoch second it was
added. A region honours an entry only once the entry is in its own store, so per
ordered pair (source -> target) and list the poll counts the entries the source
added within a lookback window that the target still lacks, and the age of the
oldest of them: the figure the 60 s suppression SLO is judged on.

The poll is incremental (see `SuppressionCollector`): per region and list a ledger of
score buckets, so a poll reads what changed, not the window. Every command is bounded
whatever the sets' sizes: ranges are read in keyset pages (`ZRANGEBYSCORE key low high
WITHSCORES LIMIT skip count`, each page starting at the last score seen so it costs
O(log N + page)), membership is checked a page at a time with `ZMSCORE`, counts are
`ZCOUNT` (O(log N)). Nothing here uses KEYS, SMEMBERS or an unbounded range.

`sync_missing()` is the sync-now action: it copies what a target lacks with
`ZADD NX`, keeping the source's score, so running it twice copies nothing twice.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from noc.clock import Clock, SystemClock
from noc.model import SuppressionCount, SuppressionDivergence, SuppressionSample, SyncResult
from noc_collectors.redis_common import open_redis, redis_error_text

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
# Entries a poll reads even when its reading time is already spent (a loaded machine).
_LEAST_READ = 1000


@dataclass(slots=True)
class _Deadline:
    """When a poll's reading must stop: at `at`, or once checking the entries read so
    far (at `cost` seconds each) would run past it."""

    at: float
    cost: float
    read: int = 0

    def passed(self, now: float) -> bool:
        # Whatever the clock says, a poll reads some: a rebuild always progresses.
        return self.read >= _LEAST_READ and now + self.read * self.cost > self.at


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


def _bucket(score: float, width: float) -> int:
    return math.floor(score / width)


def _contains(held: array[int], digest: int) -> bool:
    at = bisect_left(held, digest)
    return at < len(held) and held[at] == digest


@dataclass(frozen=True, slots=True)
class _Bucket:
    """What noc last read of one score bucket: 24 bytes an entry, never the members.

    count: what ZCOUNT answered when it was read (-1: it changed while read, read it
    again). members: the member hashes, sorted, for membership. scores and order: the
    scores ascending and the hashes in that order, so a later poll can find where the
    bucket changed and read only from there.
    """

    count: int
    members: array[int]
    scores: array[float]
    order: array[int]

    @classmethod
    def made(cls, count: int, entries: Sequence[tuple[int, float]]) -> _Bucket:
        ranked = sorted(entries, key=lambda entry: entry[1])
        return cls(
            count,
            array("q", sorted(digest for digest, _ in ranked)),
            array("d", (score for _, score in ranked)),
            array("q", (digest for digest, _ in ranked)),
        )

    def holds(self, digest: int) -> bool:
        return _contains(self.members, digest)

    def checkpoints(self, every: int) -> list[tuple[float, int]]:
        """(score, entries scored <= it) every `every` entries and at the top score."""
        at = list(range(every - 1, len(self.scores), every))
        if self.scores and (not at or at[-1] != len(self.scores) - 1):
            at.append(len(self.scores) - 1)
        return [(self.scores[i], bisect_right(self.scores, self.scores[i])) for i in at]


class _Ledger:
    """What noc last read of one region's list within the window, a score bucket at a time.

    Per bucket (scores [b * width, (b + 1) * width)) a `_Bucket`. A bucket whose
    ZCOUNT still matches is not read again; one whose count moved is read from the
    first checkpoint whose ZCOUNT moved (a bucket that only grew at its top: just the
    new entries).
    """

    __slots__ = ("below", "buckets", "low", "run_id", "sweep", "top")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.buckets: dict[int, _Bucket] = {}
        self.sweep = 0  # the bucket the verification sweep re-reads next
        # ZCOUNT of everything scored before the window's first bucket, and that bucket:
        # how noc knows nothing was added outside the window since the last poll.
        self.below: int | None = None
        self.low: int | None = None
        self.top: int | None = None  # the window's last bucket at the last poll

    def copy(self) -> _Ledger:
        # Buckets are replaced, never changed in place: a shallow copy stages a poll.
        made = _Ledger(self.run_id)
        made.buckets, made.sweep = dict(self.buckets), self.sweep
        made.below, made.low, made.top = self.below, self.low, self.top
        return made

    def covers(self, member: bytes, score: float, width: float) -> bool:
        held = self.buckets.get(_bucket(score, width))
        return held is not None and held.holds(hash(member))

    def holder(self, digest: int) -> int | None:
        return next((b for b, held in self.buckets.items() if held.holds(digest)), None)

    def complete(self, low: int, high: int) -> bool:
        return all(b in self.buckets for b in range(low, high + 1))

    def entries(self) -> int:
        return sum(len(held.members) for held in self.buckets.values())

    def known(self, low: int, high: int) -> int:
        return sum(len(self.buckets[b].members) for b in range(low, high + 1) if b in self.buckets)


@dataclass(slots=True)
class _PairState:
    """Per ordered pair and list: what the target lacks, and what it holds out of view.

    unsynced: source entries in the window the target lacks (member -> source score).
    held: source entries the target holds outside its own ledger (under another score,
    or in a bucket not read yet): re-checked every poll, since no ledger sees them go.
    Every other source entry is in the target's ledger, whose changes noc reads.
    pending: source buckets not yet checked in full against the target (a baseline).
    """

    unsynced: dict[bytes, float] = field(default_factory=dict)
    held: dict[bytes, float] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)


@dataclass(slots=True)
class _Survey:
    """One region's answer to the poll's first round trip: O(log N) commands only."""

    run_id: str
    sizes: dict[str, int]
    counts: dict[str, dict[int, int]]  # list -> bucket -> ZCOUNT
    above: dict[str, int]  # list -> entries scored past the last bucket (clock skew)
    below: dict[str, int]  # list -> entries scored before the window's first bucket


@dataclass(slots=True)
class _Stage:
    """One region's list as this poll read it, before anything is committed."""

    ledger: _Ledger
    reset: bool  # a new store (run_id) or noc's first look: every pair re-baselines
    counts: dict[int, int] = field(default_factory=dict)  # the survey's, per bucket
    read: dict[int, dict[bytes, float]] = field(default_factory=dict)  # bucket -> entries
    # Buckets read only above a score (the part that changed); absent: read whole.
    cuts: dict[int, float] = field(default_factory=dict)
    added: dict[bytes, float] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)  # hashes gone from re-read buckets
    lost: set[int] = field(default_factory=set)  # removed, or aged out of the ledger
    above: dict[bytes, float] = field(default_factory=dict)
    # Nothing came outside the window since the last poll (the count before it moved
    # only by the buckets that aged out, none past it): an entry the target lacked and
    # its ledger still does not hold is still lacking, no command needed to know.
    quiet: bool = False
    # A bucket whose count moved was left unread (out of time): a poll behind on it.
    behind: bool = False
    # Buckets that entered the window since the last poll (time moved on).
    entered: set[int] = field(default_factory=set)
    # Per bucket, the staged ledger's hashes as a set, built on first use in a poll:
    # checking a member against the target costs a set lookup, not a bisect.
    digest_sets: dict[int, set[int]] = field(default_factory=dict)

    def whole(self, b: int) -> bool:
        return b in self.read and b not in self.cuts

    def holds(self, member: bytes, score: float, width: float) -> bool:
        """The staged ledger holds `member` in the bucket of `score` (a set lookup)."""
        return hash(member) in self.digests(_bucket(score, width))

    def digests(self, b: int) -> set[int]:
        if b not in self.digest_sets:
            held = self.ledger.buckets.get(b)
            self.digest_sets[b] = set() if held is None else set(held.members)
        return self.digest_sets[b]


@dataclass(frozen=True, slots=True)
class _Job:
    """One bucket to read this poll: whole, or (changed) above its first moved checkpoint."""

    first: int  # 0: steady work (always read); 1: a rebuild's new bucket; 2: its re-read
    bucket: int
    name: str
    whole: bool


class SuppressionCollector:
    """Polls every region's suppression lists; one Redis pool per region.

    Incremental: per region and list a ledger of score buckets (count, member hashes
    and scores) and per ordered pair the entries the target lacks. A poll asks each
    store one ZCOUNT per bucket (O(log N) each, one round trip); for a bucket whose
    count moved, one ZCOUNT per checkpoint (every `checkpoint_every` entries it held)
    finds where it changed, and only the entries above the last unchanged checkpoint
    are read (a bucket that only grew: just the new entries). `verify_buckets` unchanged
    buckets a poll are re-read whole, round robin, for a change that kept a count.
    Only new entries, the known gap and what a target lost are checked against the
    targets, and an entry the target's own ledger holds needs no command at all.

    Bounded: every range is read in keyset pages of `page_size` (never an offset that
    walks the set), ZMSCORE in batches of `page_size`; reading stops for the poll after
    `read_seconds` or `max_examined` entries and goes on where it stopped next poll. The
    first poll (or a store with a new run_id: flushed, replaced) has to read the whole
    window, so it takes several polls: until then the pairs say `rebuilding`, with the
    share read so far, and count a lower bound. stores: region id -> store URL.
    timeout_seconds bounds each command; poll_timeout_seconds the whole poll (a poll
    cut by it commits nothing).
    """

    def __init__(
        self,
        stores: Mapping[str, str],
        *,
        lists: Sequence[str] = DEFAULT_LISTS,
        key_pattern: str = KEY_PATTERN,
        lookback_seconds: float = 3600.0,
        page_size: int = 250,
        max_examined: int = 100_000,
        example_limit: int = 5,
        timeout_seconds: float = 2.0,
        poll_timeout_seconds: float = 10.0,
        bucket_seconds: float | None = None,
        verify_buckets: int = 2,
        read_seconds: float = 0.4,
        checkpoint_every: int = 256,
        clock: Clock | None = None,
    ) -> None:
        _check_options(key_pattern, lookback_seconds, page_size, max_examined)
        if read_seconds <= 0 or checkpoint_every < 1 or verify_buckets < 0:
            raise ValueError("read_seconds, checkpoint_every must be positive, verify_buckets >= 0")
        self._lists = tuple(lists)
        self._key_pattern = key_pattern
        self._lookback = lookback_seconds
        self._page_size = page_size
        self._max_examined = max_examined
        self._example_limit = example_limit
        self._poll_timeout = poll_timeout_seconds
        # About 60 buckets a window: the survey stays one small round trip, and a
        # change re-reads a sixtieth of the window at most.
        self._width = bucket_seconds or lookback_seconds / 60
        self._verify = verify_buckets
        self._read_seconds = read_seconds
        self._checkpoint_every = checkpoint_every
        # Seconds the checks cost per entry read (measured each poll; a first guess).
        self._check_cost = 5e-6
        self._clock = clock or SystemClock()
        # Raw bytes: members go back to the target verbatim, whatever their encoding.
        self._clients = {
            region: open_redis(url, timeout_seconds, decode=False) for region, url in stores.items()
        }
        self._ledgers: dict[tuple[str, str], _Ledger] = {}
        self._pairs: dict[tuple[str, str, str], _PairState] = {}
        self._errors: dict[str, str] = {}  # this poll's stores that did not answer

    def state_entries(self) -> dict[str, int]:
        """What the incremental state holds: ledger hashes, gap and held entries."""
        return {
            "ledger_hashes": sum(ledger.entries() for ledger in self._ledgers.values()),
            "unsynced": sum(len(p.unsynced) for p in self._pairs.values()),
            "held": sum(len(p.held) for p in self._pairs.values()),
        }

    async def poll(self) -> SuppressionSample:
        at, wall = self._clock.monotonic(), self._clock.utcnow()
        now = wall.timestamp()
        since = now - self._lookback
        low, high = _bucket(since, self._width), _bucket(now, self._width) + 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._poll_timeout
        budget = _Budget(self._max_examined)
        surveys: dict[str, _Survey | str] = {}
        pairs: list[SuppressionDivergence] = []
        examined = 0
        try:
            async with asyncio.timeout_at(deadline):
                # A store that hangs must not cost the others their poll: the survey
                # (the one round trip every store answers) gets half the poll's time.
                survey_deadline = loop.time() + self._poll_timeout / 2
                answers = await asyncio.gather(
                    *(self._survey(region, low, high, survey_deadline) for region in self._clients)
                )
                surveys = dict(zip(self._clients, answers, strict=True))
                self._errors = {r: s for r, s in surveys.items() if isinstance(s, str)}
                stages = self._plan(surveys, low, high)
                # Reading stops here for this poll; what is unread waits for the next.
                # Reading stops at read_seconds, or sooner when checking what was read
                # (at the cost per entry the last polls measured) would not fit either.
                read_until = _Deadline(loop.time() + self._read_seconds, self._check_cost)
                examined += await self._read(stages, surveys, low, high, budget, read_until)
                examined += await self._read_lost(stages, budget, _Deadline(math.inf, 0.0))
                checking = loop.time()
                judged = await asyncio.gather(
                    *(
                        self._judge(s, t, name, stages, since, low, high)
                        for s in self._clients
                        for t in self._clients
                        if s != t
                        for name in self._lists
                    )
                )
        except TimeoutError:
            error = f"poll deadline ({self._poll_timeout:g} s) reached"
            surveys = {r: s for r, s in surveys.items() if not isinstance(s, str)}
            pairs = [
                _failed(s, t, name, error)
                for s in self._clients
                for t in self._clients
                if s != t
                for name in self._lists
            ]
            counts = [
                SuppressionCount(r, name, None, error)
                for r in self._clients
                for name in self._lists
            ]
            return SuppressionSample(at, wall, self._lookback, tuple(counts), tuple(pairs), 0, True)
        if examined >= 1000:  # enough to measure: checking cost an entry, smoothed
            measured = (asyncio.get_running_loop().time() - checking) / examined
            # Clamped: a slow poll (a loaded machine) must not stop a rebuild's progress.
            self._check_cost = min(1e-5, 0.7 * self._check_cost + 0.3 * measured)
        # Nothing awaits from here on: the poll's reads are committed all at once.
        for (region, name), stage in stages.items():
            self._ledgers[(region, name)] = stage.ledger
        for key, state, divergence in judged:
            if state is None:
                self._pairs.pop(key, None)
            else:
                self._pairs[key] = state
            pairs.append(divergence)
        counts = [
            SuppressionCount(r, name, None, survey.removeprefix(f"{r}: "))
            if isinstance(survey, str)
            else SuppressionCount(r, name, survey.sizes[name])
            for r, survey in surveys.items()
            for name in self._lists
        ]
        return SuppressionSample(
            at=at,
            wall=wall,
            lookback_seconds=self._lookback,
            counts=tuple(counts),
            pairs=tuple(pairs),
            examined=examined,
            truncated=any(p.truncated for p in pairs),
        )

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    def _key(self, list_name: str) -> str:
        return self._key_pattern.format(list=list_name)

    def _edge(self, bucket: int) -> float:
        return bucket * self._width

    async def _survey(self, region: str, low: int, high: int, deadline: float) -> _Survey | str:
        """ZCARD, one ZCOUNT per bucket and one past them per list, and the run_id."""
        try:
            async with (
                asyncio.timeout_at(deadline),
                self._clients[region].pipeline(transaction=False) as pipe,
            ):
                pipe.info("server")
                for name in self._lists:
                    key = self._key(name)
                    pipe.zcard(key)
                    for b in range(low, high + 1):
                        pipe.zcount(key, self._edge(b), f"({self._edge(b + 1)!r}")
                    pipe.zcount(key, self._edge(high + 1), "+inf")
                    pipe.zcount(key, "-inf", f"({self._edge(low)!r}")
                replies: list[Any] = await pipe.execute()
        except TimeoutError:
            return f"poll deadline ({self._poll_timeout:g} s) reached"
        except (RedisError, OSError) as exc:
            return f"{region}: {redis_error_text(exc)}"
        info, rest = replies[0], iter(replies[1:])
        survey = _Survey(str(info.get("run_id", "")), {}, {}, {}, {})
        for name in self._lists:
            survey.sizes[name] = int(next(rest))
            survey.counts[name] = {b: int(next(rest)) for b in range(low, high + 1)}
            survey.above[name] = int(next(rest))
            survey.below[name] = int(next(rest))
        return survey

    def _plan(
        self, surveys: Mapping[str, _Survey | str], low: int, high: int
    ) -> dict[tuple[str, str], _Stage]:
        stages: dict[tuple[str, str], _Stage] = {}
        for region, survey in surveys.items():
            if isinstance(survey, str):
                continue
            for name in self._lists:
                old = self._ledgers.get((region, name))
                reset = old is None or old.run_id != survey.run_id
                ledger = _Ledger(survey.run_id) if old is None or reset else old.copy()
                stage = _Stage(ledger, reset, dict(survey.counts[name]))
                expected = ledger.below
                for b in [b for b in ledger.buckets if b < low]:
                    aged = ledger.buckets.pop(b)
                    stage.lost.update(aged.members)
                    if expected is not None:
                        # A bucket read while it changed has no trustworthy size.
                        expected = None if aged.count < 0 else expected + aged.count
                stage.quiet = (
                    not reset
                    and ledger.low is not None
                    and ledger.low <= low
                    and expected == survey.below[name]
                    and not survey.above[name]
                )
                stage.entered = set(range(max(low, (ledger.top or high) + 1), high + 1))
                ledger.below, ledger.low, ledger.top = survey.below[name], low, high
                stages[(region, name)] = stage
        return stages

    def _wanted(
        self, region: str, name: str, stages: Mapping[tuple[str, str], _Stage], low: int, high: int
    ) -> list[_Job]:
        """The buckets to read: changed counts, unchecked pairs' buckets, the sweep."""
        stage = stages[(region, name)]
        counts, ledger = stage.counts, stage.ledger
        window = range(low, high + 1)
        changed = {
            b for b in window if b not in ledger.buckets or counts[b] != ledger.buckets[b].count
        }
        whole = {b for b in changed if b not in ledger.buckets or not counts[b]}
        rebuild: set[int] = set(window) if stage.reset else set()
        for t in self._clients:
            state = self._pairs.get((region, t, name))
            target = stages.get((t, name))
            if t == region:
                continue
            if state is None or (target is not None and target.reset):
                rebuild.update(window)  # the pair starts over: every bucket, once
            else:
                rebuild.update(b for b in state.pending if low <= b <= high)
        whole |= rebuild
        steady = [b for b in window if b not in whole and b not in changed and counts[b]]
        if steady and self._verify:
            start = bisect_left(steady, ledger.sweep)
            turn = (steady[start:] + steady[:start])[: self._verify]
            whole.update(turn)
            ledger.sweep = turn[-1] + 1
        # A rebuild's reads come last and are cut by the poll's reading time; what
        # changed (a bucket that moved, or the minute that just entered the window)
        # is steady work, always read.
        moved = {b for b in changed if b in ledger.buckets} | stage.entered
        later = {b for b in rebuild if stage.reset or b not in moved}
        # Within a rebuild, buckets never read come first: the ledgers fill every poll,
        # and a bucket read again only to check it against a target comes after.
        return [
            _Job(0 if b not in later else 1 if b not in ledger.buckets else 2, b, name, b in whole)
            for b in sorted(whole | changed)
        ]

    async def _read(
        self,
        stages: dict[tuple[str, str], _Stage],
        surveys: Mapping[str, _Survey | str],
        low: int,
        high: int,
        budget: _Budget,
        until: _Deadline,
    ) -> int:
        """Read what needs it, steady work first, then the baseline oldest first."""
        plan: dict[str, list[_Job]] = {}
        for region, name in stages:
            for job in self._wanted(region, name, stages, low, high):
                if not stages[(region, name)].counts[job.bucket] and job.whole:
                    stages[(region, name)].read[job.bucket] = {}  # empty: known at once
                else:
                    plan.setdefault(region, []).append(job)
        read = await asyncio.gather(
            *(
                self._read_region(
                    region, sorted(jobs, key=lambda j: (j.first, j.bucket)), stages, budget, until
                )
                for region, jobs in plan.items()
            )
        )
        for (region, name), stage in stages.items():
            survey = surveys[region]
            assert not isinstance(survey, str)
            if survey.above[name]:
                stage.above = (
                    await self._range(
                        region,
                        name,
                        repr(self._edge(high + 1)),
                        "+inf",
                        _Budget(10**9),
                        _Deadline(math.inf, 0.0),
                    )
                    or {}
                )
            self._apply(stage)
            stage.behind = any(
                held.count != stage.counts[b]
                for b, held in stage.ledger.buckets.items()
                if low <= b <= high
            )
        return sum(read)

    async def _read_region(
        self,
        region: str,
        jobs: list[_Job],
        stages: dict[tuple[str, str], _Stage],
        budget: _Budget,
        until: _Deadline,
    ) -> int:
        cuts = await self._localize(region, [j for j in jobs if not j.whole], stages)
        read = 0
        for job in jobs:
            stage = stages[(region, job.name)]
            cut = None if job.whole else cuts.get((job.name, job.bucket))
            start = repr(self._edge(job.bucket)) if cut is None else f"({cut!r}"
            count = stage.counts[job.bucket]
            if cut is not None:
                count -= bisect_right(stage.ledger.buckets[job.bucket].scores, cut)
            # Steady work (buckets the ledger knows: what changed since the last poll)
            # costs what changed and is always read; only a rebuild is cut by the time.
            limit = until if job.first else _Deadline(math.inf, 0.0)
            entries = await self._range(
                region, job.name, start, f"({self._edge(job.bucket + 1)!r}", budget, limit, count
            )
            if entries is not None and not job.first:
                until.read += len(entries)
            if entries is None:  # out of time or budget: the rest waits for the next poll
                break
            read += len(entries)
            stage.read[job.bucket] = entries
            if cut is not None:
                stage.cuts[job.bucket] = cut
        return read

    async def _localize(
        self, region: str, jobs: list[_Job], stages: Mapping[tuple[str, str], _Stage]
    ) -> dict[tuple[str, int], float]:
        """Per changed bucket, the highest checkpoint score below which nothing moved.

        One ZCOUNT per checkpoint, one pipeline per region: a bucket that only grew
        at its top keeps every checkpoint, and only the entries above it are read.
        """
        asked: list[tuple[str, int, list[tuple[float, int]]]] = []
        async with self._clients[region].pipeline(transaction=False) as pipe:
            for job in jobs:
                held = stages[(region, job.name)].ledger.buckets[job.bucket]
                points = held.checkpoints(self._checkpoint_every)
                asked.append((job.name, job.bucket, points))
                for score, _ in points:
                    pipe.zcount(self._key(job.name), self._edge(job.bucket), repr(score))
            replies: list[Any] = await pipe.execute() if asked else []
        answers = iter(replies)
        cuts: dict[tuple[str, int], float] = {}
        for name, b, points in asked:
            got = [int(next(answers)) for _ in points]
            for (score, expected), count in zip(points, got, strict=True):
                if count != expected:
                    break
                cuts[(name, b)] = score
        return cuts

    async def _range(
        self,
        region: str,
        name: str,
        low: str,
        high: str,
        budget: _Budget,
        until: _Deadline,
        expect: int | None = None,
    ) -> dict[bytes, float] | None:
        """Every entry scored from `low` to `high` (Redis range syntax), in keyset pages.

        Each page starts at the last score seen, skipping the entries with that score
        already read: O(log N + page) a command wherever the page is. `expect`: the
        count ZCOUNT gave; reading stops there (an entry added since shows as a count
        change next poll). None: the poll's reading time was spent before it began, or
        the budget ran out (what was read is dropped, read again).
        """
        entries: dict[bytes, float] = {}
        skip, boundary = 0, None
        loop = asyncio.get_running_loop()
        while True:
            if expect is not None and len(entries) >= expect:
                return entries
            page_size = (
                self._page_size if expect is None else min(self._page_size, expect - len(entries))
            )
            wanted = budget.take(page_size)
            # Time is checked before a range only: one begun is finished (a bucket), so
            # concurrent readers cannot each stop the other short, every poll, forever.
            if not wanted or (not entries and until.passed(loop.time())):
                budget.give_back(wanted)
                return None
            page = cast(
                list[_Entry],
                await self._clients[region].zrangebyscore(
                    self._key(name), low, high, start=skip, num=wanted, withscores=True
                ),
            )
            budget.give_back(wanted - len(page))
            until.read += len(page)
            entries.update(page)
            if len(page) < wanted:
                return entries
            last = page[-1][1]
            at_last = 0
            for _, score in reversed(page):
                if score != last:
                    break
                at_last += 1
            skip = skip + at_last if last == boundary else at_last
            boundary, low = last, repr(last)

    def _apply(self, stage: _Stage) -> None:
        """Fold what was read into the staged ledger: what came, what went."""
        ledger = stage.ledger
        for b, entries in stage.read.items():
            before = ledger.buckets.get(b)
            cut = stage.cuts.get(b)
            digests = {hash(m): (m, s) for m, s in entries.items()}
            kept: list[tuple[int, float]] = []
            if before is None:
                stage.added.update(entries)
            else:
                # A read above a cut keeps the entries at or below it as they were.
                keep = 0 if cut is None else bisect_right(before.scores, cut)
                kept = list(zip(before.order[:keep], before.scores[:keep], strict=True))
                old = set(before.order[keep:])
                stage.added.update(ms for d, ms in digests.items() if d not in old)
                gone = old - digests.keys()
                stage.removed |= gone
                stage.lost |= gone
            kept.extend((d, s) for d, (_, s) in digests.items())
            count = stage.counts.get(b, -1)
            # A bucket that changed while it was read is read again next poll.
            ledger.buckets[b] = _Bucket.made(count if len(kept) == count else -1, kept)

    async def _read_lost(
        self, stages: dict[tuple[str, str], _Stage], budget: _Budget, until: _Deadline
    ) -> int:
        """Entries a target lost that a source holds unread: read their source buckets."""
        read = 0
        for (source, name), stage in stages.items():
            lost = set().union(
                *(st.lost for (t, n), st in stages.items() if n == name and t != source)
            )
            if not lost:
                continue
            buckets = {stage.ledger.holder(d) for d in lost} - {None}
            for b in sorted(b for b in buckets if b is not None and not stage.whole(b)):
                entries = await self._range(
                    source, name, repr(self._edge(b)), f"({self._edge(b + 1)!r}", budget, until
                )
                if entries is None:
                    stage.ledger.buckets.pop(b)  # unknown now: the pair says rebuilding
                    continue
                stage.read[b] = entries
                stage.cuts.pop(b, None)
                read += len(entries)
        return read

    async def _judge(
        self,
        source: str,
        target: str,
        name: str,
        stages: Mapping[tuple[str, str], _Stage],
        since: float,
        low: int,
        high: int,
    ) -> tuple[tuple[str, str, str], _PairState | None, SuppressionDivergence]:
        key = (source, target, name)
        s_stage, t_stage = stages.get((source, name)), stages.get((target, name))
        if s_stage is None or t_stage is None:
            # Not judged: forget the pair, it re-baselines once both stores answer.
            down = self._errors.get(source if s_stage is None else target, "unreachable")
            return key, None, _failed(source, target, name, down)
        old = self._pairs.get(key)
        fresh = old is None or s_stage.reset or t_stage.reset
        state = (
            _PairState(pending=set(range(low, high + 1)))
            if fresh or old is None
            else _PairState(dict(old.unsynced), dict(old.held), set(old.pending))
        )
        above = self._edge(high + 1)
        t_ledger = t_stage.ledger
        # Still lacking without asking: the target's ledger is whole and current, and
        # nothing was added to the target outside the window.
        settled = t_stage.quiet and not t_stage.behind and t_ledger.complete(low, high)
        check: dict[bytes, float] = {}
        carried: dict[bytes, float] = {}
        for kept in (state.unsynced, state.held):
            for member, score in list(kept.items()):
                if score <= since or score >= above or hash(member) in s_stage.removed:
                    del kept[member]
                elif settled and kept is state.unsynced:
                    carried[member] = score
                else:
                    check[member] = score
        # A new entry in a bucket still pending for this pair is checked with its
        # bucket, below, once the target's bucket is known too: asking the target now
        # would only find it held out of view, to ask again every poll.
        width = self._width
        check.update(
            (m, s)
            for m, s in s_stage.added.items()
            if s > since and _bucket(s, width) not in state.pending
        )
        check.update((m, s) for m, s in s_stage.above.items() if s > since)
        baseline = 0  # source entries found in the target's ledger in bulk
        ready = [
            b for b in state.pending if b < low or (s_stage.whole(b) and b in t_ledger.buckets)
        ]
        for b in ready:
            state.pending.discard(b)
            # Entries read from bucket b score in it: the target holds them iff its
            # bucket b holds the hash. Only the others go on to ZMSCORE.
            held = t_stage.digests(b)
            window = [(m, s) for m, s in s_stage.read.get(b, {}).items() if s > since]
            missing = [(m, s) for m, s in window if hash(m) not in held]
            baseline += sum(1 for m, _ in window if m not in check and hash(m) in held)
            check.update(missing)
        for entries in s_stage.read.values():
            check.update(
                (m, s) for m, s in entries.items() if s > since and hash(m) in t_stage.lost
            )
        # What the target's own ledger holds (as read this poll) is there: no command.
        # Only a bucket the target read this poll can have come to hold one of them.
        changed = t_stage.read.keys()
        still = {
            m: s
            for m, s in carried.items()
            if m not in check and not (_bucket(s, width) in changed and t_stage.holds(m, s, width))
        }
        members = [m for m, s in check.items() if s >= above or not t_stage.holds(m, s, width)]
        answers: list[float | None] = []
        for start in range(0, len(members), self._page_size):
            answer = await _zmscore(
                self._clients[target], self._key(name), members[start : start + self._page_size]
            )
            if isinstance(answer, str):
                return key, None, _failed(source, target, name, f"{target}: {answer}")
            answers.extend(answer)
        state.unsynced = still
        state.held.clear()
        for member, present in zip(members, answers, strict=True):
            if present is None:
                state.unsynced[member] = check[member]
            elif not t_ledger.covers(member, present, self._width) or present >= above:
                state.held[member] = check[member]
        rebuilding = bool(state.pending) or not (
            s_stage.ledger.complete(low, high) and t_ledger.complete(low, high)
        )
        progress = 1.0
        if rebuilding:
            total = sum(s_stage.counts.values()) + sum(t_stage.counts.values())
            checked = sum(
                len(held.members)
                for b, held in s_stage.ledger.buckets.items()
                if low <= b <= high and b not in state.pending
            )
            known = checked + t_ledger.known(low, high)
            # Never 100 % while rebuilding: empty windows and races round up otherwise.
            progress = min(0.99, max(0.0, known / total)) if total else 0.0
        examined = baseline + len(check) + len(carried)
        divergence = self._divergence(key, state, examined, rebuilding)
        # A changed bucket left unread this poll: the count is a poll behind on it.
        truncated = rebuilding or s_stage.behind or t_stage.behind
        return key, state, replace(divergence, rebuild_progress=progress, truncated=truncated)

    def _divergence(
        self, key: tuple[str, str, str], state: _PairState, checked: int, rebuilding: bool
    ) -> SuppressionDivergence:
        now = self._clock.utcnow().timestamp()
        oldest = heapq.nsmallest(
            self._example_limit, state.unsynced.items(), key=lambda item: item[1]
        )
        return SuppressionDivergence(
            source=key[0],
            target=key[1],
            list=key[2],
            unsynced=len(state.unsynced),
            # An entry stamped ahead of noc's clock (skew) is brand new, not negative-aged.
            oldest_unsynced_age_seconds=max(0.0, now - oldest[0][1]) if oldest else None,
            examined=checked,
            truncated=rebuilding,
            examples=tuple(m.decode("utf-8", "replace")[:_EXAMPLE_CHARS] for m, _ in oldest),
            rebuilding=rebuilding,
        )


def _failed(source: str, target: str, list_name: str, error: str) -> SuppressionDivergence:
    return SuppressionDivergence(source, target, list_name, None, None, truncated=True, error=error)


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
