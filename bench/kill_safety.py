"""Kill safety: SIGKILL `noc failover`/`noc failback` at random moments, then check.

Everything is real and on loopback: BIND 9 taking TSIG-signed updates, three
redis-servers holding the flag and the lock, three health endpoints. Each round
starts the CLI (`--yes`), kills it after a random delay spread over its whole run
(start-up, planning, execution, the DNS watch), and then checks:

- every audit line is whole (each one parses as JSON);
- the action either completed, never began to write, or is detectable from the
  record as interrupted; an interrupted one is settled by `noc recover --yes`, after
  which the flag stores agree and DNS serves the region the flag names;
- a lock left by the killed process never blocks the next action (its holder is
  dead: taken over), and a split the record does not show is counted (want: 0).

    python bench/kill_safety.py [--kills 100] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import random
import secrets
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import redis
from named import NamedServer, TsigKey, Zone

from noc_collectors.dns_records import parse_resolver, query
from noc.audit import read_jsonl
from noc.model import LockHolder
from noc.recovery import interrupted_actions
from noc.simulator import HealthEndpoint, RedisServer

DOMAIN = "kill.test"
REGIONS = (("ro", "primary", "192.0.2.10"), ("bg", "secondary", "192.0.2.20"),
           ("pa", "secondary", "192.0.2.30"))  # fmt: skip
IPS = {rid: ip for rid, _, ip in REGIONS}
ZONE_TEXT = (
    "$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n"
    "smtp 60 A 192.0.2.10\n"
)
FLAG_KEY, LOCK_KEY = "noc:failover", "noc:failover:lock"


def write_config(path: Path, named: NamedServer, key: TsigKey, stores: list[RedisServer],
                 endpoints: list[HealthEndpoint]) -> None:  # fmt: skip
    lines = [
        '[estate]\nname = "kill-bench"\n',
        "[health]\ninterval_seconds = 1\nfailure_threshold = 1\ntimeout_seconds = 1\n",
        "[failover]\nstore_timeout_seconds = 1\ncooldown_seconds = 0\n",
        f'[failover.dns]\nserver = "{named.address}"\nzone = "{DOMAIN}"\n'
        f'key_name = "{key.name}"\nkey_secret = "{key.secret}"\n',
        f'[dns]\nresolvers = ["{named.address}"]\n'
        f'[[dns.records]]\nname = "smtp.{DOMAIN}"\ntype = "A"\n',
    ]
    for (rid, role, ip), store, endpoint in zip(REGIONS, stores, endpoints, strict=True):
        lines.append(
            f'[[regions]]\nid = "{rid}"\nrole = "{role}"\nredis_url = "{store.url}"\n'
            f'service_ips = ["{ip}"]\n[[regions.checks]]\nurl = "{endpoint.url}"\n'
        )
    path.write_text("\n".join(lines))


async def noc(
    env: dict[str, str],
    *args: str,
    kill_after: float | None = None,
    after_confirmed: Path | None = None,
) -> int:
    """Run noc; SIGKILL it `kill_after` seconds after its start, or after the audit
    file `after_confirmed` grows a "confirmed" record (the execution window)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "noc", *args, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    if after_confirmed is not None and kill_after is not None:
        seen = confirmations(after_confirmed)
        while process.returncode is None:
            if confirmations(after_confirmed) > seen:
                await asyncio.sleep(kill_after)
                break
            await asyncio.sleep(0.002)
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
    elif kill_after is not None:
        try:
            await asyncio.wait_for(process.wait(), kill_after)
        except TimeoutError:
            process.send_signal(signal.SIGKILL)
    return await process.wait()


def confirmations(audit: Path) -> int:
    # A tight poll of a small file: no event tells when another process writes it.
    return audit.read_bytes().count(b'"confirmed"') if audit.exists() else 0


def flags(stores: list[RedisServer]) -> list[dict[str, str]]:
    found: list[Any] = []
    for store in stores:
        client = redis.Redis.from_url(store.url, decode_responses=True)
        try:
            found.append(client.hgetall(FLAG_KEY))
        finally:
            client.close()
    return found


def locks(stores: list[RedisServer]) -> list[str]:
    held = []
    for store in stores:
        client = redis.Redis.from_url(store.url, decode_responses=True)
        try:
            value = client.get(LOCK_KEY)
        finally:
            client.close()
        if value:
            held.append(str(value))
    return held


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def dns_answer(named: NamedServer) -> tuple[str, ...]:
    answer = await query(parse_resolver(named.address), f"smtp.{DOMAIN}", "A", 2.0)
    return tuple(sorted(r.to_text() for r in answer.records))


async def agreed(stores: list[RedisServer], named: NamedServer) -> bool:
    """The stores hold one flag and DNS serves the region it names (ro before any)."""
    held = {f.get("action_id", "") for f in flags(stores)}
    active = {f.get("active", "ro") for f in flags(stores)}
    return len(held) == 1 and len(active) == 1 and await dns_answer(named) == (IPS[active.pop()],)


async def run(kills: int, seed: int, directory: Path) -> collections.Counter[str]:
    rng = random.Random(seed)
    key = TsigKey("noc-kill", base64.b64encode(secrets.token_bytes(32)).decode())
    named = NamedServer(directory, [Zone(DOMAIN, ZONE_TEXT, allow_update=True)], tsig=key)
    named.start()
    stores = [RedisServer() for _ in REGIONS]
    endpoints = [HealthEndpoint(rid) for rid, *_ in REGIONS]
    await asyncio.gather(*(s.astart() for s in stores), *(e.start() for e in endpoints))
    config = directory / "noc.toml"
    write_config(config, named, key, stores, endpoints)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOC_")}
    env["XDG_STATE_HOME"] = str(directory / "state")
    audit = directory / "state" / "noc" / "audit.jsonl"
    counts: collections.Counter[str] = collections.Counter()
    try:
        # How long one uninterrupted action takes here: the kills spread over it.
        started = asyncio.get_running_loop().time()
        assert await noc(env, "failover", "--config", str(config), "--to", "bg", "--reason",
                         "warm-up", "--yes") == 0  # fmt: skip
        span = asyncio.get_running_loop().time() - started
        back = await noc(
            env, "failback", "--config", str(config), "--to", "ro", "--reason", "w", "--yes"
        )
        assert back == 0
        for _ in range(kills):
            active = {f.get("active", "ro") for f in flags(stores)}
            going = "bg" if active == {"ro"} else "ro"
            kind = "failover" if going == "bg" else "failback"
            before = len(read_jsonl(audit).records)
            # Most kills land in the execution window (0-60 ms after "confirmed", where a
            # kill can split the estate); the rest anywhere in the run.
            in_window = rng.random() < 0.7
            delay = rng.uniform(0, 0.06) if in_window else rng.uniform(span * 0.3, span * 1.05)
            counts["aimed at the execution window" if in_window else "aimed anywhere"] += 1
            code = await noc(env, kind, "--config", str(config), "--to", going, "--reason",
                             "kill bench", "--yes", kill_after=delay,
                             after_confirmed=audit if in_window else None)  # fmt: skip
            counts["killed" if code == -signal.SIGKILL else f"ended first (exit {code})"] += 1
            # Every line whole.
            for line in audit.read_bytes().splitlines():
                try:
                    json.loads(line)
                except ValueError:
                    counts["torn audit lines"] += 1
            records = read_jsonl(audit).records
            events = [r["event"] for r in records[before:]]
            if any("failover lock" in str(r.get("refusal", "")) for r in records[before:]):
                counts["refused by a lock left behind (want 0)"] += 1
            left = locks(stores)
            if left:
                counts["locks left by the kill"] += 1
                holder = LockHolder.from_text(left[0])
                if pid_alive(holder.pid):
                    counts["locks left whose holder still runs (would block)"] += 1
            stuck = interrupted_actions(records)
            if stuck:
                counts["interrupted, detected from the record"] += 1
                if any(item.wrote_anything for item in stuck):
                    counts["  of which had begun to write"] += 1
                recovered = await noc(env, "recover", "--config", str(config), "--yes")
                counts[f"  noc recover exit {recovered}"] += 1
                if interrupted_actions(read_jsonl(audit).records):
                    counts["  STILL interrupted after noc recover"] += 1
            elif "executed" in events:
                counts["completed (executed recorded)"] += 1
            elif "confirmed" not in events:
                counts["killed before confirmation (nothing written)"] += 1
            else:
                counts["ended with nothing left changed"] += 1
            if not await agreed(stores, named):
                # Stores that disagree without an interrupted record: one more recover
                # (re-asserting the flag) must settle it; if not, that is a failure.
                counts["flag/DNS disagree after the round"] += 1
                await noc(env, "recover", "--config", str(config), "--yes")
                if not await agreed(stores, named):
                    counts["UNRECOVERABLE split (want 0)"] += 1
        final = await noc(env, "failback" if {f.get("active") for f in flags(stores)} == {"bg"}
                          else "failover", "--config", str(config), "--to",
                          "ro" if {f.get("active") for f in flags(stores)} == {"bg"} else "bg",
                          "--reason", "after the kills", "--yes")  # fmt: skip
        counts[f"a last action afterwards: exit {final}"] += 1
        counts["span of one action (ms)"] = round(span * 1000)
    finally:
        await asyncio.gather(*(e.stop() for e in endpoints))
        for store in stores:
            store.stop()
        named.stop()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="noc-bench-kill-") as directory:
        counts = asyncio.run(run(args.kills, args.seed, Path(directory)))
    print(f"{args.kills} rounds of SIGKILL at a random moment of noc failover/failback")
    for name, value in sorted(counts.items()):
        print(f"  {name}: {value}")


if __name__ == "__main__":
    main()
