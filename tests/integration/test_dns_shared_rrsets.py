"""A failover moves only the source region's values, against a real BIND and real stores.

The zone holds what real zones hold beside noc's values: a backup MX, a third
party's address, an AAAA beside the A, an alias. Each test reads the whole zone by
AXFR before and after, so "nothing else changed" is checked on every record, not on
the ones the test thought of.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import dns.query
import dns.rdatatype
import dns.zone
import pytest
from failover_support import DOMAIN, KEY, SMTP, Estate, failover_config
from named import NamedServer, Zone
from support import feed_round

from noc.audit import JsonlLog
from noc.clock import FakeClock
from noc.config import parse_config
from noc.model import ActionKind, FailoverRecordType, RecordChange
from noc.scheduler import Scheduler
from noc.simulator import RedisServer

SOA = "$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n"
HOSTS = "mx.ro A 192.0.2.10\nmx.bg A 192.0.2.20\nmx.pa A 192.0.2.30\n"
# ro is active; bg is its backup exchange; 203.0.113.9 is a third party's address
# (or a hijack: noc cannot tell); the AAAA is not a failover record here.
SHARED = (
    SOA
    + HOSTS
    + "smtp 60 A 192.0.2.10\nsmtp 60 A 203.0.113.9\nsmtp 60 AAAA 2001:db8::99\n"
    + f"@ 300 MX 10 mx.ro.{DOMAIN}.\n@ 300 MX 20 mx.bg.{DOMAIN}.\n"
)
DUAL_STACK = (
    SOA
    + HOSTS
    + "smtp 60 A 192.0.2.10\nsmtp 120 AAAA 2001:db8::10\nsmtp 120 AAAA 2001:db8:ffff::1\n"
    + f"@ 300 MX 10 mx.ro.{DOMAIN}.\n"
)
ALIASED = SOA + HOSTS + f"smtp 60 CNAME mx.ro.{DOMAIN}.\n@ 300 MX 10 mx.ro.{DOMAIN}.\n"
ALIASED_AWAY = (
    SOA + HOSTS + "smtp 60 CNAME lb.provider.example.\n" + (f"@ 300 MX 10 mx.ro.{DOMAIN}.\n")
)

Records = dict[tuple[str, str], tuple[int, tuple[str, ...]]]


def zone_records(named: NamedServer) -> Records:
    """Every RRset of the zone but the SOA (whose serial every update bumps), by AXFR."""
    zone = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", DOMAIN, port=named.port, timeout=5))
    found: Records = {}
    for name, rdataset in zone.iterate_rdatasets():
        if rdataset.rdtype == dns.rdatatype.SOA:
            continue
        key = (name.to_text(), dns.rdatatype.to_text(rdataset.rdtype))
        found[key] = (rdataset.ttl, tuple(sorted(r.to_text() for r in rdataset)))
    return found


@pytest.fixture
async def make_estate(
    named_servers: Callable[..., NamedServer],
    region_stores: dict[str, RedisServer],
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Estate]]:
    made: list[Scheduler] = []

    def make(zone_text: str, *, aaaa: bool = False, **failover: Any) -> Estate:
        named = named_servers([Zone(DOMAIN, zone_text, allow_update=True)], tsig=KEY)
        base = failover_config(named, region_stores, failover={"cooldown_seconds": 0, **failover})
        data = base.model_dump(mode="json")
        data["failover"]["dns"]["key_secret"] = KEY.secret  # the dump masks it
        if aaaa:
            data["dns"]["records"].append({"name": SMTP, "type": "AAAA"})
            for region, octet in zip(data["regions"], (10, 20, 30), strict=True):
                region["service_ips"].append(f"2001:db8::{octet}")
        config = parse_config(data)
        clock = FakeClock()
        scheduler = Scheduler(config, clock)
        made.append(scheduler)
        feed_round(scheduler.engine, clock)
        audit = JsonlLog(tmp_path / f"audit-{len(made)}.jsonl", clock)
        return Estate(config, scheduler, clock, audit, named, region_stores)

    yield make
    for scheduler in made:
        await scheduler.stop()


def described(changes: tuple[RecordChange, ...]) -> list[str]:
    return [c.describe() for c in changes]


async def test_a_backup_mx_and_a_third_partys_address_survive_failover_and_failback(
    make_estate: Callable[..., Estate],
) -> None:
    estate = make_estate(SHARED)
    start = zone_records(estate.named)
    plan = await estate.plan()
    assert plan.allowed, plan.refusal
    assert described(plan.blast.changes) == [
        f"{SMTP} A: 192.0.2.10, 203.0.113.9 -> 192.0.2.20, 203.0.113.9 (kept, no region)"
        " (TTL 60 s)",
        f"{DOMAIN} MX: 10 mx.ro.{DOMAIN}, 20 mx.bg.{DOMAIN} -> 10 mx.bg.{DOMAIN}, "
        f"20 mx.ro.{DOMAIN} (TTL 300 s)",
    ]
    finding = next(c for c in plan.checks if c.name == "DNS values of no region")
    assert not finding.blocking
    assert finding.detail.startswith(f"{SMTP}. A 203.0.113.9 belongs to no region")

    result = await estate.run(plan)
    assert result.success, result.summary
    moved = zone_records(estate.named)
    assert moved[("smtp", "A")] == (60, ("192.0.2.20", "203.0.113.9"))
    assert moved[("@", "MX")] == (300, ("10 mx.bg", "20 mx.ro"))  # relative to the zone
    untouched = {k: v for k, v in start.items() if k not in {("smtp", "A"), ("@", "MX")}}
    assert {k: moved[k] for k in untouched} == untouched  # the AAAA among them

    back = await estate.plan(ActionKind.FAILBACK, "ro")
    assert back.allowed, back.refusal
    assert described(back.blast.changes)[1] == (
        f"{DOMAIN} MX: 10 mx.bg.{DOMAIN}, 20 mx.ro.{DOMAIN} -> 10 mx.ro.{DOMAIN}, "
        f"20 mx.bg.{DOMAIN} (TTL 300 s)"
    )
    result = await estate.run(back)
    assert result.success, result.summary
    assert zone_records(estate.named) == start  # every RRset, preference and TTL
    assert estate.events() == ["executed", "verified", "executed", "verified"]


async def test_an_aaaa_the_regions_own_moves_with_the_a_and_keeps_its_own_ttl(
    make_estate: Callable[..., Estate],
) -> None:
    estate = make_estate(DUAL_STACK, aaaa=True)
    start = zone_records(estate.named)
    plan = await estate.plan()
    assert plan.allowed, plan.refusal
    aaaa = next(c for c in plan.blast.changes if c.rtype is FailoverRecordType.AAAA)
    assert (aaaa.old, aaaa.new, aaaa.foreign) == (
        ("2001:db8::10", "2001:db8:ffff::1"),
        ("2001:db8::20", "2001:db8:ffff::1"),
        ("2001:db8:ffff::1",),
    )
    assert (await estate.run(plan)).success
    moved = zone_records(estate.named)
    assert moved[("smtp", "A")] == (60, ("192.0.2.20",))
    assert moved[("smtp", "AAAA")] == (120, ("2001:db8::20", "2001:db8:ffff::1"))
    assert (await estate.run(await estate.plan(ActionKind.FAILBACK, "ro"))).success
    assert zone_records(estate.named) == start


async def test_a_cname_at_a_failover_name_is_reported_as_such_and_left_alone(
    make_estate: Callable[..., Estate],
) -> None:
    estate = make_estate(ALIASED)
    start = zone_records(estate.named)
    plan = await estate.plan()
    alias = next(c for c in plan.checks if c.name == "CNAME at a failover name")
    assert alias.detail == (
        f"{SMTP}. is a CNAME to mx.ro.{DOMAIN}: noc does not move CNAMEs; "
        "it ends at 192.0.2.10 of ro, where its traffic stays"
    )
    # Traffic through the alias would stay on ro: refused unless overridden.
    assert not alias.ok and alias.blocking and alias.forceable
    assert not plan.allowed and plan.needs_force
    assert not any("behind noc's back" in c.detail for c in plan.checks)
    assert [c.rtype for c in plan.blast.changes] == [FailoverRecordType.MX]
    forced = await estate.plan(force=True)
    assert forced.allowed, forced.refusal
    result = await estate.run(forced)
    assert result.success, result.summary
    moved = zone_records(estate.named)
    assert moved[("smtp", "CNAME")] == start[("smtp", "CNAME")]
    assert moved[("@", "MX")] == (300, ("10 mx.bg",))


async def test_a_cname_that_leads_elsewhere_is_only_a_warning(
    make_estate: Callable[..., Estate],
) -> None:
    estate = make_estate(ALIASED_AWAY)
    plan = await estate.plan()
    alias = next(c for c in plan.checks if c.name == "CNAME at a failover name")
    assert alias.detail == (f"{SMTP}. is a CNAME to lb.provider.example: noc does not move CNAMEs")
    assert not alias.blocking and plan.allowed, plan.refusal
    assert (await estate.run(plan)).success
    assert zone_records(estate.named)[("smtp", "CNAME")] == (60, ("lb.provider.example.",))


async def test_a_record_changed_between_plan_and_execute_fails_with_nothing_changed(
    make_estate: Callable[..., Estate],
) -> None:
    estate = make_estate(SHARED)
    plan = await estate.plan()
    assert plan.allowed, plan.refusal
    # Someone adds a third exchange after noc read the MX: the plan is stale.
    added = RecordChange(
        DOMAIN,
        FailoverRecordType.MX,
        (f"10 mx.ro.{DOMAIN}", f"20 mx.bg.{DOMAIN}"),
        (f"10 mx.ro.{DOMAIN}", f"20 mx.bg.{DOMAIN}", f"30 mx.pa.{DOMAIN}"),
        300,
    )
    assert await estate.updater().replace([added]) is None
    before = zone_records(estate.named)
    result = await estate.run(plan)
    assert result.aborted is not None and "prerequisite failed" in result.aborted
    assert f"{DOMAIN}. MX is no longer" in result.aborted
    assert zone_records(estate.named) == before  # the A change was not applied either
    assert all(estate.flag(r) == {} for r in ("ro", "bg", "pa"))


async def test_a_dns_rollback_puts_the_shared_rrsets_back_exactly(
    make_estate: Callable[..., Estate], tmp_path: Path
) -> None:
    script = tmp_path / "fail.py"
    script.write_text("import sys\nprint('traffic manager said no')\nsys.exit(3)\n")
    hook = f"{sys.executable} {script}"
    estate = make_estate(
        SHARED, actuators=["flag", "dns", "hook"], hooks={"run": hook, "undo": hook}
    )
    start = zone_records(estate.named)
    result = await estate.run(await estate.plan())
    assert result.aborted is not None and "rolled back" in result.aborted
    dns_undo = next(s for s in result.steps if s.rolled_back and s.actuator == "dns")
    assert dns_undo.ok, dns_undo.detail
    assert zone_records(estate.named) == start
