"""The incremental suppression core against a brute-force set difference.

A Hypothesis history of adds (fresh entries, and sync copies that keep an older
score), removals, flushes, noc restarts and the clock moving, over three real
redis-servers. After every poll, each pair that does not say `rebuilding` must
report exactly what a full read of both stores finds. The verification sweep is
off (verify_buckets=0) so the exactness comes from the ledgers alone; a change that
keeps a bucket's count (an add and a removal in one bucket between two polls) is
the one case left to the sweep, and the history never makes one (see `_keeps_count`);
nor the like before the window, where noc keeps one count a region.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import redis
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from noc.clock import FakeClock
from noc.simulator import RedisServer
from noc_collectors.suppression import SuppressionCollector

REGIONS = ("ro", "bg", "hk")
KEY = "suppression:unsubscribe"
LOOKBACK = 600.0
WIDTH = 60.0
MEMBERS = [f"m{n}@x".encode() for n in range(40)]


def brute_force(clients: dict[str, redis.Redis], now: float) -> dict[tuple[str, str], set[bytes]]:
    sets = {r: dict(c.zrange(KEY, 0, -1, withscores=True)) for r, c in clients.items()}
    return {
        (s, t): {m for m, score in sets[s].items() if score > now - LOOKBACK} - sets[t].keys()
        for s in REGIONS
        for t in REGIONS
        if s != t
    }


def test_incremental_counts_equal_a_brute_force_difference(
    redis_servers: Callable[..., list[RedisServer]],
) -> None:
    servers = dict(zip(REGIONS, redis_servers(3), strict=True))

    class History(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = FakeClock()
            self.loop = asyncio.new_event_loop()
            self.clients = {r: redis.Redis(port=s.port) for r, s in servers.items()}
            for client in self.clients.values():
                client.flushall()
            self.collector = self._collector()
            # Per region and bucket, what changed since the last poll: (added, removed).
            self.touched: dict[tuple[str, int], list[int]] = {}

        def _collector(self) -> SuppressionCollector:
            return SuppressionCollector(
                {r: s.url for r, s in servers.items()},
                lists=["unsubscribe"],
                lookback_seconds=LOOKBACK,
                bucket_seconds=WIDTH,
                verify_buckets=0,
                # Small pages and checkpoints every 3 entries: a changed bucket is read
                # from a checkpoint inside it, across equal scores and page edges.
                page_size=4,
                checkpoint_every=3,
                clock=self.clock,
            )

        def _now(self) -> float:
            return self.clock.utcnow().timestamp()

        def _touch(self, region: str, score: float, added: int, removed: int) -> None:
            mark = self.touched.setdefault((region, math.floor(score / WIDTH)), [0, 0])
            mark[0] += added
            mark[1] += removed

        def _keeps_count(self) -> bool:
            if any(a and a == r for a, r in self.touched.values()):
                return True
            # Before the window noc counts one figure a region: adds and removals in
            # different buckets there can keep it as well.
            low = math.floor((self._now() - LOOKBACK) / WIDTH)
            below: dict[str, list[int]] = {}
            for (region, b), (a, r) in self.touched.items():
                if b < low:
                    mark = below.setdefault(region, [0, 0])
                    mark[0] += a
                    mark[1] += r
            return any(a and a == r for a, r in below.values())

        @rule(
            region=st.sampled_from(REGIONS), member=st.sampled_from(MEMBERS), ago=st.floats(0, 900)
        )
        def add(self, region: str, member: bytes, ago: float) -> None:
            # Whole seconds: equal scores are common, so ties meet page and checkpoint edges.
            score = float(round(self._now() - ago))
            client = self.clients[region]
            before = client.zscore(KEY, member)
            client.zadd(KEY, {member: score})
            if before is not None:
                self._touch(region, before, 0, 1)
            self._touch(region, score, 1, 0)

        @rule(source=st.sampled_from(REGIONS), into=st.sampled_from(REGIONS))
        def sync_copy(self, source: str, into: str) -> None:
            """The sync service: ZADD NX of the source's entries, keeping their scores."""
            entries = dict(self.clients[source].zrange(KEY, 0, -1, withscores=True))
            present = self.clients[into].zmscore(KEY, list(entries)) if entries else []
            missing = {
                m: s for (m, s), p in zip(entries.items(), present, strict=True) if p is None
            }
            if source != into and missing:
                self.clients[into].zadd(KEY, missing, nx=True)
                for score in missing.values():
                    self._touch(into, score, 1, 0)

        @rule(region=st.sampled_from(REGIONS), member=st.sampled_from(MEMBERS))
        def remove(self, region: str, member: bytes) -> None:
            score = self.clients[region].zscore(KEY, member)
            if score is not None:
                self.clients[region].zrem(KEY, member)
                self._touch(region, score, 0, 1)

        @rule(region=st.sampled_from(REGIONS))
        def flush(self, region: str) -> None:
            client = self.clients[region]
            for _, score in client.zrange(KEY, 0, -1, withscores=True):
                self._touch(region, score, 0, 1)
            client.flushall()

        @rule()
        def restart_noc(self) -> None:
            self.loop.run_until_complete(self.collector.aclose())
            self.collector = self._collector()

        @rule(seconds=st.floats(1, 400))
        def time_passes(self, seconds: float) -> None:
            self.clock.advance(seconds)

        @rule()
        def poll(self) -> None:
            ambiguous = self._keeps_count()
            sample = self.loop.run_until_complete(self.collector.poll())
            self.touched.clear()
            if ambiguous:
                return
            truth = brute_force(self.clients, self._now())
            for pair in sample.pairs:
                assert pair.error is None
                if pair.rebuilding:
                    continue
                assert pair.unsynced == len(truth[(pair.source, pair.target)]), pair

        @invariant()
        def bounded(self) -> None:
            held = self.collector.state_entries()
            assert held["ledger_hashes"] <= len(REGIONS) * len(MEMBERS)

        def teardown(self) -> None:
            self.loop.run_until_complete(self.collector.aclose())
            self.loop.close()
            for client in self.clients.values():
                client.close()

    run_state_machine_as_test(History)
