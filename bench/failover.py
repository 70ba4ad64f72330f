"""How long from the operator's confirmation to a failover verified in DNS?

Everything is real and on loopback: a BIND 9 `named` taking TSIG-signed RFC 2136
updates, three redis-servers holding the STOP flag and the lock, and three health
endpoints polled by the real scheduler. Each trial plans on fresh facts (the
RRsets read from BIND, the key proven with a prerequisite-only update, the lock
read), then times, from the moment of confirmation:

- executed: lock taken on a majority, flag written to every store and read back,
  one signed update applied, lock released;
- verified: every DNS server asked serves the new answers (here BIND itself; in
  production add the resolvers, whose caches add up to the record's TTL).

Trials alternate ro -> bg (failover) and bg -> ro (failback); the cooldown is off
so they can follow each other.

    python bench/failover.py [--trials 20]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from named import NamedServer, TsigKey, Zone

from noc.audit import JsonlLog
from noc.clock import SystemClock
from noc.config import parse_config
from noc.failover import execute, gather_facts, plan_action, verify
from noc.model import ActionKind
from noc.scheduler import Scheduler
from noc.simulator import HealthEndpoint, RedisServer

DOMAIN = "bench.test"
REGIONS = (("ro", "primary", "192.0.2.10"), ("bg", "secondary", "192.0.2.20"),
           ("pa", "secondary", "192.0.2.30"))  # fmt: skip
ZONE_TEXT = (
    "$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n"
    "smtp 60 A 192.0.2.10\n@ 300 MX 10 mx.ro.bench.test.\n"
    "mx.ro A 192.0.2.10\nmx.bg A 192.0.2.20\nmx.pa A 192.0.2.30\n"
)


async def run(trials: int, directory: Path) -> dict[str, list[float]]:
    key = TsigKey("noc-bench", base64.b64encode(secrets.token_bytes(32)).decode())
    named = NamedServer(directory, [Zone(DOMAIN, ZONE_TEXT, allow_update=True)], tsig=key)
    named.start()
    stores = [RedisServer() for _ in REGIONS]
    endpoints = [HealthEndpoint(rid) for rid, *_ in REGIONS]
    await asyncio.gather(*(s.astart() for s in stores), *(e.start() for e in endpoints))
    config = parse_config(
        {
            "estate": {"name": "bench"},
            "regions": [
                {
                    "id": rid,
                    "role": role,
                    "redis_url": store.url,
                    "service_ips": [ip],
                    "mx_host": f"mx.{rid}.{DOMAIN}.",
                    "checks": [{"url": endpoint.url}],
                }
                for (rid, role, ip), store, endpoint in zip(REGIONS, stores, endpoints, strict=True)
            ],
            "dns": {
                "resolvers": [named.address],
                "records": [
                    {"name": f"smtp.{DOMAIN}", "type": "A"},
                    {"name": DOMAIN, "type": "MX"},
                ],
            },
            "suppression": {"enabled": False},
            "deliverability": {"enabled": False},
            "failover": {
                "cooldown_seconds": 0,
                "dns": {
                    "server": named.address,
                    "zone": DOMAIN,
                    "key_name": key.name,
                    "key_secret": key.secret,
                },
            },
        }
    )
    clock = SystemClock()
    audit = JsonlLog(directory / "audit.jsonl", clock)
    figures: dict[str, list[float]] = {"plan": [], "executed": [], "verified": []}
    scheduler = Scheduler(config, clock, single_round=True)
    try:
        for trial in range(trials):
            kind, target = (
                (ActionKind.FAILOVER, "bg") if trial % 2 == 0 else (ActionKind.FAILBACK, "ro")
            )
            await scheduler.collect_once()
            started = clock.monotonic()
            facts = await gather_facts(config, scheduler.actuators, kind)
            plan = plan_action(
                scheduler.engine.snapshot(), config, kind, target, {"operator": "bench"}, facts
            )
            if not plan.allowed:
                raise SystemExit(f"trial {trial}: refused: {plan.refusal}")
            confirmed = clock.monotonic()
            figures["plan"].append(confirmed - started)
            result = await execute(
                plan, "bench", scheduler.actuators, audit, clock, confirmed_at=confirmed
            )
            final = await verify(
                result, scheduler.actuators, audit, clock, reason="bench", confirmed_at=confirmed
            )
            if not final.success:
                raise SystemExit(f"trial {trial}: {final.summary}")
            timeline = dict(final.timeline)
            figures["executed"].append(timeline["executed"])
            figures["verified"].append(timeline["all_moved"])
    finally:
        await scheduler.stop()
        await asyncio.gather(*(e.stop() for e in endpoints))
        for store in stores:
            store.stop()
        named.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="noc-bench-failover-") as directory:
        figures = asyncio.run(run(args.trials, Path(directory)))
    print(f"{args.trials} trials, loopback BIND 9 + 3 redis-servers")
    for name, values in figures.items():
        ordered = sorted(values)
        p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
        print(
            f"  {name:<9} median {statistics.median(values) * 1000:7.1f} ms   "
            f"p95 {p95 * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms"
        )
    print("  (plan: facts gathered and rules evaluated; executed and verified are")
    print("   counted from the confirmation, as the audit log's timeline records them)")


if __name__ == "__main__":
    main()
