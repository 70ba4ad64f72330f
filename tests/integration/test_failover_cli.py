"""`noc failover` with the DNS actuator, as operators run it: real processes, real BIND
with TSIG, real redis-servers and real health endpoints on loopback."""

from __future__ import annotations

import asyncio
import base64
import secrets
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from named import NamedServer, TsigKey, Zone, named_servers  # noqa: F401
from test_cli import REGIONS, Estate, Run, act

from noc.audit import read_jsonl
from noc.model import FailoverRecordType, RecordChange
from noc.simulator import HealthEndpoint, RedisServer
from noc_collectors.dns_records import parse_resolver, query
from noc_collectors.dns_update import DnsUpdater

KEY = TsigKey("noc-cli", base64.b64encode(secrets.token_bytes(32)).decode())
DOMAIN = "cli.test"
ZONE_TEXT = (
    "$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n"
    "smtp 60 A 192.0.2.10\n"
)


@pytest.fixture
async def estate(
    tmp_path: Path,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
    redis_servers: Callable[..., list[RedisServer]],
    named_servers: Callable[..., NamedServer],  # noqa: F811
) -> Estate:
    named = named_servers([Zone(DOMAIN, ZONE_TEXT, allow_update=True)], tsig=KEY)
    endpoints = {rid: await health_endpoint(rid) for rid, *_ in REGIONS}
    stores = dict(zip([rid for rid, *_ in REGIONS], redis_servers(3), strict=True))
    pre = f"{sys.executable} -c 'import time; time.sleep(1.5)'"
    lines = [
        '[estate]\nname = "mail-test"\n',
        "[health]\ninterval_seconds = 1\nfailure_threshold = 3\ntimeout_seconds = 1\n",
        "[failover]\nstore_timeout_seconds = 1\n",
        f'[failover.dns]\nserver = "{named.address}"\nzone = "{DOMAIN}"\n'
        f'key_name = "{KEY.name}"\nkey_secret = "{KEY.secret}"\n',
        # Holds the lock long enough for a second operator to collide with it.
        f'[failover.hooks]\npre = "{pre}"\n',
        f'[dns]\nresolvers = ["{named.address}"]\n'
        f'[[dns.records]]\nname = "smtp.{DOMAIN}"\ntype = "A"\n',
    ]
    for index, (rid, role, (lat, lon)) in enumerate(REGIONS):
        lines.append(
            f'[[regions]]\nid = "{rid}"\nrole = "{role}"\nlocation = [{lat}, {lon}]\n'
            f'redis_url = "{stores[rid].url}"\nservice_ips = ["192.0.2.{10 * (index + 1)}"]\n'
            f'[[regions.checks]]\nurl = "{endpoints[rid].url}"\nbody_contains = "healthy"\n'
        )
    path = tmp_path / "noc.toml"
    path.write_text("\n".join(lines))
    return DnsEstate(path, tmp_path / "state", endpoints, stores, named)


@dataclass
class DnsEstate(Estate):
    named: NamedServer


async def smtp(estate: Estate) -> tuple[str, ...]:
    assert isinstance(estate, DnsEstate)
    answer = await query(parse_resolver(estate.named.address), f"smtp.{DOMAIN}", "A", 2.0)
    return tuple(r.to_text() for r in answer.records)


async def test_dry_run_shows_the_blast_radius_and_changes_nothing(estate: Estate) -> None:
    run = await act(estate, "failover", "bg", "--dry-run", reason="what if")
    assert run.code == 0, run.out + run.err
    assert f"dns smtp.{DOMAIN} A: 192.0.2.10 -> 192.0.2.20 (TTL 60 s)" in run.out
    assert "[ok  ] DNS update key:" in run.out
    assert "dry run: nothing was changed" in run.out
    assert await smtp(estate) == ("192.0.2.10",)
    assert all(estate.flag(r) == {} for r in estate.stores)
    assert estate.events() == ["planned"]
    assert read_jsonl(estate.audit_path).records[0]["blast_radius"]["changes"][0]["new"] == [
        "192.0.2.20"
    ]


async def test_a_real_failover_moves_dns_and_prints_the_timeline(estate: Estate) -> None:
    run = await act(estate, "failover", "bg", "--yes", reason="ro lost")
    assert run.code == 0, run.out + run.err
    assert await smtp(estate) == ("192.0.2.20",)
    assert "1/1 DNS servers on bg after" in run.out
    assert "timeline: confirmed 0.0 s, executed" in run.out
    assert estate.events() == ["planned", "confirmed", "executed", "verified"]


async def test_two_operators_racing_exactly_one_wins_and_the_other_names_the_holder(
    estate: Estate,
) -> None:
    first, second = await asyncio.gather(
        act(estate, "failover", "bg", "--yes", reason="alice: ro lost"),
        act(estate, "failover", "pa", "--yes", reason="bob: ro lost"),
    )
    runs: list[Run] = [first, second]
    assert sorted(r.code for r in runs) == [0, 1], [r.out + r.err for r in runs]
    loser = next(r for r in runs if r.code == 1)
    assert "failover lock" in loser.out + loser.err and "held by" in loser.out + loser.err
    winner = "bg" if first.code == 0 else "pa"
    assert {estate.flag(r)["active"] for r in estate.stores} == {winner}
    assert await smtp(estate) == ("192.0.2.20" if winner == "bg" else "192.0.2.30",)


async def test_dry_run_marks_what_it_keeps_and_names_a_value_of_no_region(
    estate: Estate,
) -> None:
    assert isinstance(estate, DnsEstate)
    # A third party's address (or a hijack) beside ro's, added by another hand.
    someone = DnsUpdater(parse_resolver(estate.named.address), DOMAIN, KEY.name, KEY.secret)
    shared = ("192.0.2.10", "203.0.113.9")
    a = FailoverRecordType.A
    assert (
        await someone.replace([RecordChange(f"smtp.{DOMAIN}", a, shared[:1], shared, 60)]) is None
    )
    run = await act(estate, "failover", "bg", "--dry-run", reason="what if")
    assert run.code == 0, run.out + run.err
    assert (
        f"dns smtp.{DOMAIN} A: 192.0.2.10, 203.0.113.9 -> 192.0.2.20, 203.0.113.9 "
        "(kept, no region) (TTL 60 s)"
    ) in run.out
    assert (
        f"[warn] DNS values of no region: smtp.{DOMAIN}. A 203.0.113.9 belongs to no region"
    ) in run.out
    assert sorted(await smtp(estate)) == list(shared)  # the dry run changed nothing
