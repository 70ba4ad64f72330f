"""Failover through every actuator against a real BIND 9 (TSIG updates) and real redis-servers.

The engine is fed health samples (regions are not what these tests are about); the
flag stores, the lock, the DNS server, its key and the hooks are all real.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from failover_support import (
    DOMAIN,
    KEY,
    LOCK_KEY,
    MOVED,
    ORIGINAL,
    SMTP,
    Estate,
    failover_config,
)
from named import NamedServer
from support import REFUSED, feed_round

from noc.audit import JsonlLog, read_jsonl
from noc.clock import FakeClock
from noc.config import ConfigError
from noc.failover import ack_cooldown, this_node
from noc.model import (
    ActionKind,
    FailoverRecordType,
    Interface,
    LagBasis,
    LinkState,
    LockHolder,
    RecordChange,
    ReplicationSample,
)
from noc.scheduler import Scheduler
from noc.simulator import RedisServer
from noc_collectors.dns_records import parse_resolver
from noc_collectors.dns_update import DnsUpdater
from noc_collectors.hooks import run_hook


@pytest.fixture
def make_estate(
    dns_primary: NamedServer, region_stores: dict[str, RedisServer], tmp_path: Path
) -> Callable[..., Estate]:
    named, stores = dns_primary, region_stores
    made: list[Scheduler] = []

    def make(**options: Any) -> Estate:
        config = failover_config(named, stores, **options)
        clock = FakeClock()
        scheduler = Scheduler(config, clock)
        made.append(scheduler)
        feed_round(scheduler.engine, clock)
        audit = JsonlLog(tmp_path / "audit.jsonl", clock)
        return Estate(config, scheduler, clock, audit, named, stores)

    return make


@pytest.fixture
async def estate(make_estate: Callable[..., Estate]) -> AsyncIterator[Estate]:
    made = make_estate()
    yield made
    await made.scheduler.stop()


async def test_failover_replaces_the_records_and_is_verified(estate: Estate) -> None:
    plan = await estate.plan()
    assert plan.allowed, plan.refusal
    assert [c.describe() for c in plan.blast.changes] == [
        f"{SMTP} A: 192.0.2.10 -> 192.0.2.20 (TTL 60 s)",
        f"{DOMAIN} MX: 10 mx.ro.{DOMAIN} -> 10 mx.bg.{DOMAIN} (TTL 300 s)",
    ]
    assert await estate.records() == ORIGINAL  # planning changed nothing
    result = await estate.run(plan)
    assert result.success, result.summary
    assert await estate.records() == MOVED  # TTLs kept
    assert {estate.flag(r)["active"] for r in ("ro", "bg", "pa")} == {"bg"}
    assert result.propagation is not None and result.propagation.done
    assert not result.propagation.ttl_expired
    assert result.propagation_text == "1/1 DNS servers on bg after 0 s"
    assert [event for event, _ in result.timeline] == [
        "confirmed",
        "executed",
        "authoritative_moved",
        "first_resolver_moved",
        "all_moved",
    ]
    assert estate.events() == ["executed", "verified"]
    verified = read_jsonl(estate.audit.path).records[-1]
    assert list(verified["timeline"]) == [event for event, _ in result.timeline]
    assert verified["after"] == {
        "active": "bg",
        f"{SMTP} A": ["192.0.2.20"],
        f"{DOMAIN} MX": [f"10 mx.bg.{DOMAIN}"],
    }
    assert all(estate.lock(r) is None for r in ("ro", "bg", "pa"))  # released


async def test_a_wrong_key_is_refused_before_anything_changes(
    make_estate: Callable[..., Estate],
) -> None:
    estate = make_estate(secret=base64.b64encode(secrets.token_bytes(32)).decode())
    try:
        plan = await estate.plan()
    finally:
        await estate.scheduler.stop()
    key_check = next(c for c in plan.checks if c.name == "DNS update key")
    assert not key_check.ok and "BADSIG" in key_check.detail
    assert not plan.allowed and not plan.needs_force  # no override can make a bad key work
    assert await estate.records() == ORIGINAL
    assert all(estate.flag(r) == {} for r in ("ro", "bg", "pa"))


async def test_a_record_changed_behind_nocs_back_fails_and_the_flag_is_rolled_back(
    estate: Estate,
) -> None:
    plan = await estate.plan()
    assert plan.allowed, plan.refusal
    someone = DnsUpdater(parse_resolver(estate.named.address), DOMAIN, KEY.name, KEY.secret)
    moved_by_hand = RecordChange(SMTP, FailoverRecordType.A, ("192.0.2.10",), ("203.0.113.9",), 60)
    assert await someone.replace([moved_by_hand]) is None
    result = await estate.run(plan)
    assert not result.success
    assert result.aborted is not None and "prerequisite failed" in result.aborted
    assert "rolled back: flag" in result.aborted
    # The other change in the same update was not applied either, and noc overwrote nothing.
    records = await estate.records()
    assert records["A"] == (("203.0.113.9",), 60) and records["MX"] == ORIGINAL["MX"]
    assert all(estate.flag(r) == {} for r in ("ro", "bg", "pa"))  # no flag before: none after
    rollback = next(s for s in result.steps if s.rolled_back)
    assert rollback.actuator == "flag" and rollback.ok
    assert estate.events() == ["rolled_back"]


async def test_a_failing_pre_hook_aborts_with_its_output(
    make_estate: Callable[..., Estate], tmp_path: Path
) -> None:
    script = tmp_path / "pre.py"
    script.write_text(
        "import os, sys\n"
        "print('change freeze until 06:00', os.environ['NOC_FROM'], os.environ['NOC_TO'])\n"
        "sys.exit(4)\n"
    )
    estate = make_estate(failover={"hooks": {"pre": f"{sys.executable} {script}"}})
    try:
        plan = await estate.plan()
        result = await estate.run(plan)
    finally:
        await estate.scheduler.stop()
    assert result.aborted is not None
    assert "exit 4: change freeze until 06:00 ro bg" in result.aborted
    assert await estate.records() == ORIGINAL
    assert all(estate.flag(r) == {} for r in ("ro", "bg", "pa"))
    assert all(estate.lock(r) is None for r in ("ro", "bg", "pa"))
    assert estate.events() == ["aborted"]


async def test_hooks_get_the_plan_and_a_hook_actuator_is_undone_on_a_later_failure(
    make_estate: Callable[..., Estate], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    log = tmp_path / "hooks.log"
    script = tmp_path / "hook.py"
    script.write_text(
        "import os, sys\n"
        f"with open({str(log)!r}, 'a') as out:\n"
        "    keys = ('NOC_ACTION', 'NOC_FROM', 'NOC_TO', 'NOC_REASON', 'NOC_OPERATOR')\n"
        "    secret = os.environ.get('NOC_FAILOVER__DNS__KEY_SECRET', 'no secret')\n"
        "    out.write(sys.argv[1] + ' ' + ' '.join(os.environ[k] for k in keys) + '\\n')\n"
        "    out.write(secret + '\\n')\n"
    )
    hook = f"{sys.executable} {script}"
    estate = make_estate(
        failover={
            "actuators": ["flag", "hook", "dns"],
            "hooks": {"pre": f"{hook} pre", "run": f"{hook} run", "undo": f"{hook} undo"},
        }
    )
    # The key as operators are told to give it, in the environment: no hook inherits it.
    monkeypatch.setenv("NOC_FAILOVER__DNS__KEY_SECRET", KEY.secret)
    try:
        plan = await estate.plan()
        someone = DnsUpdater(parse_resolver(estate.named.address), DOMAIN, KEY.name, KEY.secret)
        change = RecordChange(DOMAIN, FailoverRecordType.MX, (f"10 mx.ro.{DOMAIN}",), (), 300)
        assert await someone.replace([change]) is None
        result = await estate.run(plan, reason="region drill")
    finally:
        await estate.scheduler.stop()
    assert result.aborted is not None and "rolled back: hook, flag" in result.aborted
    assert log.read_text().splitlines() == [
        "pre failover ro bg region drill op@test",
        "no secret",
        "run failover ro bg region drill op@test",
        "no secret",
        "undo failover ro bg region drill op@test",
        "no secret",
    ]
    assert all(estate.flag(r) == {} for r in ("ro", "bg", "pa"))


async def test_the_cooldown_blocks_a_second_failover_until_acked(estate: Estate) -> None:
    first = await estate.run(await estate.plan(target="bg"))
    assert first.success, first.summary
    estate.clock.advance(30)
    second = await estate.plan(target="pa")
    cooldown = next(c for c in second.checks if c.name == "cooldown")
    assert not cooldown.ok and cooldown.forceable
    assert "by op@test" in cooldown.detail and "cooldown left" in cooldown.detail
    # Each interface names its own way to clear it; a record names the act.
    assert cooldown.said_for(Interface.CLI).endswith("`noc ack-cooldown` clears it")
    assert cooldown.said_for(Interface.DASHBOARD).endswith("c acks the cooldown")
    assert second.refusal is not None and "an ack of the cooldown clears it" in second.refusal
    assert "(c)" not in (second.refusal_for(Interface.CLI) or "")
    assert not second.allowed and second.needs_force
    await estate.scheduler.read_flags()
    cleared, text = await ack_cooldown(
        estate.scheduler.snapshot(),
        estate.scheduler.stores,
        estate.audit,
        estate.clock,
        {"operator": "lead@test"},
        "bg validated",
    )
    assert cleared, text
    third = await estate.plan(target="pa")
    assert third.allowed, third.refusal
    assert "cleared by lead@test" in next(c for c in third.checks if c.name == "cooldown").detail
    assert "cooldown_ack" in estate.events()


async def test_a_lock_held_elsewhere_refuses_and_names_the_holder(estate: Estate) -> None:
    plan = await estate.plan()
    other = LockHolder("alice@noc2", "a1b2c3", "2026-11-23T03:00:00Z", 4242)
    for region in ("ro", "bg"):
        taken, _, error = await estate.scheduler.stores[region].try_lock(LOCK_KEY, other, 60)
        assert taken, error
    # Planned before alice took it: the execution still refuses, naming her.
    result = await estate.run(plan)
    assert result.aborted == f"failover lock held by {other.describe()}"
    assert await estate.records() == ORIGINAL
    assert all(estate.flag(r) == {} for r in ("ro", "bg", "pa"))
    assert estate.lock("pa") is None  # what it took on pa was given back
    # Planned now: refused up front, and no override helps.
    fresh = await estate.plan(force=True)
    lock = next(c for c in fresh.checks if c.name == "failover lock")
    assert not lock.ok and "alice@noc2 pid 4242" in lock.detail
    assert not fresh.allowed


async def test_a_lock_left_by_a_dead_process_of_this_host_is_taken_over(estate: Estate) -> None:
    finished = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await finished.wait()  # its pid now names no process
    when = "2026-11-23T03:00:00Z"
    dead = LockHolder(f"op@{socket.gethostname()}", "dead01", when, finished.pid, this_node())
    for store in estate.scheduler.stores.values():
        await store.try_lock(LOCK_KEY, dead, 60)
    plan = await estate.plan()
    assert plan.allowed, plan.refusal
    result = await estate.run(plan)
    assert result.success, result.summary
    assert any("taken over" in s.detail for s in result.steps if s.actuator == "lock")


async def test_lag_over_the_rpo_refuses_unless_glass_is_broken(
    make_estate: Callable[..., Estate],
) -> None:
    def link(url: str) -> dict[str, Any]:
        return {"data_class": "subscribers", "source": "ro", "target": "bg", "url": url,
                "rpo_seconds": 30}  # fmt: skip

    estate = make_estate()
    await estate.scheduler.stop()
    estate = make_estate(replication=[link(estate.stores["bg"].url)])
    try:
        spec = estate.config.replication[0].spec()
        sample = ReplicationSample(
            spec, estate.clock.monotonic(), estate.clock.utcnow(), LinkState.UP, 95.0,
            LagBasis.HEARTBEAT,
        )  # fmt: skip
        estate.scheduler.engine.ingest_replication(spec_id := "subscribers:ro>bg", sample)
        plan = await estate.plan()
        rpo = next(c for c in plan.checks if c.name == "replication within RPO")
        assert not rpo.ok and rpo.forceable
        assert rpo.detail == "subscribers: 95.0 s (RPO 30 s)"
        assert plan.blast.data_at_risk[0].link == spec_id
        assert not plan.allowed
        forced = await estate.plan(force=True)
        assert forced.allowed and forced.overridden == ("replication within RPO",)
        result = await estate.run(forced)
    finally:
        await estate.scheduler.stop()
    assert result.success, result.summary
    assert await estate.records() == MOVED


async def active_active(make_estate: Callable[..., Estate]) -> Estate:
    """An active-active estate whose smtp record already sends to ro and bg."""
    estate = make_estate(estate={"name": "mail-aa", "topology": "active-active"})
    both = RecordChange(SMTP, FailoverRecordType.A, ("192.0.2.10",),
                        ("192.0.2.10", "192.0.2.20"), 60)  # fmt: skip
    assert await estate.updater().replace([both]) is None
    return estate


async def test_drain_and_restore_in_an_active_active_estate(
    make_estate: Callable[..., Estate],
) -> None:
    estate = await active_active(make_estate)
    try:
        drain = await estate.plan(ActionKind.DRAIN, "ro")
        assert drain.actuators == ("dns",)
        assert not drain.allowed  # the MX has only ro: draining it would leave it empty
        assert any(c.name == "never zero active" and not c.ok for c in drain.checks)
        grow = estate.updater()
        mx_both = RecordChange(
            DOMAIN, FailoverRecordType.MX, (f"10 mx.ro.{DOMAIN}",),
            (f"10 mx.ro.{DOMAIN}", f"10 mx.bg.{DOMAIN}"), 300,
        )  # fmt: skip
        assert await grow.replace([mx_both]) is None
        drain = await estate.plan(ActionKind.DRAIN, "ro")
        assert drain.allowed, drain.refusal
        drained = await estate.run(drain, reason="ro maintenance")
        assert drained.success, drained.summary
        # Said as what a drain did: ro taken out, not traffic sent "to" it.
        assert drained.summary.startswith("drain of ro verified: ")
        assert "dns: ro taken out of 2 RRset(s) in one signed update" in drained.summary
        assert drained.propagation_text is not None
        assert drained.propagation_text.startswith("1/1 DNS servers no longer answer ro after")
        assert await estate.records() == MOVED
        restore = await estate.plan(ActionKind.RESTORE, "ro")
        assert restore.allowed, restore.refusal
        restored = await estate.run(restore, reason="ro back")
        assert restored.success, restored.summary
        assert restored.summary.startswith("restore of ro verified: ")
        assert "dns: ro put back into 2 RRset(s)" in restored.summary
        assert "DNS servers answer ro again after" in restored.summary
    finally:
        await estate.scheduler.stop()
    records = await estate.records()
    assert records["A"] == (("192.0.2.10", "192.0.2.20"), 60)
    assert all(estate.flag(r) == {} for r in ("ro", "bg", "pa"))  # drain never moves the flag


async def test_a_plan_older_than_another_operators_failover_changes_nothing(
    estate: Estate,
) -> None:
    stale = await estate.plan(target="bg")
    other = await estate.run(await estate.plan(target="pa"), reason="the other operator")
    assert other.success, other.summary
    result = await estate.run(stale)
    assert result.aborted is not None
    assert "the failover flag changed since the plan: 3/3 stores now say pa" in result.aborted
    assert {estate.flag(r)["active"] for r in ("ro", "bg", "pa")} == {"pa"}
    records = await estate.records()
    assert records["A"] == (("192.0.2.30",), 60)


def test_a_bad_tsig_secret_is_named_but_never_shown(
    dns_primary: NamedServer, region_stores: dict[str, RedisServer]
) -> None:
    named, stores = dns_primary, region_stores
    with pytest.raises(ConfigError) as refused:
        failover_config(named, stores, secret="hunter2 is not base64!")
    problem = refused.value.problems[0]
    assert "failover.dns.key_secret: is not base64" in problem
    assert "hunter2" not in problem and "(hidden: it is a secret)" in problem
    # Wrapped as named.conf files often have it: the whitespace is not part of the key.
    wrapped = KEY.secret[:20] + "\n    " + KEY.secret[20:]
    config = failover_config(named, stores, secret=wrapped)
    assert config.failover.dns is not None
    assert config.failover.dns.key_secret.get_secret_value() == KEY.secret


async def test_a_drain_that_would_leave_only_an_unhealthy_region_is_refused(
    make_estate: Callable[..., Estate],
) -> None:
    estate = await active_active(make_estate)
    try:
        for _ in range(3):
            feed_round(estate.scheduler.engine, estate.clock, {"bg": REFUSED})
        drain = await estate.plan(ActionKind.DRAIN, "ro")
    finally:
        await estate.scheduler.stop()
    remains = next(c for c in drain.checks if c.name == "a healthy region remains")
    assert not remains.ok and f"{SMTP} A would point only at bg" in remains.detail
    assert not drain.allowed


async def test_a_hook_that_leaves_a_child_running_does_not_hold_the_failover() -> None:
    # The child keeps the output pipe open; the hook itself has ended, successfully.
    script = (
        "import subprocess, sys; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(5)']); "
        "print('traffic moved')"
    )
    outcome = await run_hook(f'{sys.executable} -c "{script}"', {}, timeout_seconds=4)
    assert outcome.ok, outcome.describe()
    assert outcome.describe() == "exit 0: traffic moved"


async def test_a_rollback_away_from_a_dead_store_is_complete(estate: Estate) -> None:
    """Failing away from ro whose store died with it: the flag written to bg and pa is
    rolled back there, and ro, never written, does not make the rollback a failure."""
    estate.stores["ro"].stop()
    plan = await estate.plan(target="bg")
    assert plan.allowed, plan.refusal
    someone = DnsUpdater(parse_resolver(estate.named.address), DOMAIN, KEY.name, KEY.secret)
    moved_by_hand = RecordChange(SMTP, FailoverRecordType.A, ("192.0.2.10",), ("203.0.113.9",), 60)
    assert await someone.replace([moved_by_hand]) is None
    result = await estate.run(plan)
    assert result.aborted is not None and not result.rollback_failed, result.summary
    assert "nothing left changed" in result.summary
    assert estate.flag("bg") == {} and estate.flag("pa") == {}


async def test_the_lock_is_renewed_before_each_step(
    make_estate: Callable[..., Estate], region_stores: dict[str, RedisServer], tmp_path: Path
) -> None:
    """Two hooks together outlast the lock's TTL; renewed before each step, it holds."""
    seen = tmp_path / "lock.seen"
    ro = region_stores["ro"].url
    check = (
        "import time, redis; time.sleep(1.2); "
        f"open({str(seen)!r}, 'w').write(str(redis.Redis.from_url({ro!r}).exists({LOCK_KEY!r})))"
    )
    estate = make_estate(
        failover={
            "actuators": ["flag", "hook", "dns"],
            "lock_ttl_seconds": 3.0,
            "hooks": {
                "timeout_seconds": 2.5,
                "pre": f"{sys.executable} -c 'import time; time.sleep(2)'",
                "run": f'{sys.executable} -c "{check}"',
            },
        }
    )
    try:
        result = await estate.run(await estate.plan())
    finally:
        await estate.scheduler.stop()
    assert result.success, result.summary
    assert seen.read_text() == "1"  # over 3 s after it was taken, the 3 s lock still held
