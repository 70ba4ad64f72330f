"""Histories over the operations layer, with real redis-server flag stores, real
health endpoints on loopback and a real BIND taking the DNS actuator's signed
updates: plans, the world changing between plan and confirm (a target going down, a
store stopped or back empty, another noc process moving the flag), confirmations,
cancels, interrupts at random moments, SIGKILLs of another noc process after a
step's intent or after its write (its lock stays behind, as after a real kill), and
recoveries.

Invariants: no exception; no action executes on a plan a fresh plan would refuse;
every operator act is in the audit, and every confirmed act ends there unless its
process was killed; a cancel never leaves an action interrupted; after a recovery
that says so, the stores agree with each other, with the record, and DNS serves the
region the flag names."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from failover_support import DOMAIN, KEY, SMTP
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from named import NamedServer
from paths import TESTS
from support import REGIONS, estate_config

from noc.audit import JsonlLog, read_jsonl
from noc.clock import SystemClock
from noc.config import parse_config
from noc.failover import reconfirm
from noc.model import ActionKind, ActionPlan, FailoverRecordType, RecordChange
from noc.operations import (
    EXIT_INTERRUPTED,
    EXIT_NOTHING_CHANGED,
    ActionRequest,
    Confirmation,
    Operations,
    OperatorIO,
    Outcome,
    RecoveryOptions,
)
from noc.recovery import Choice, Decision, FlagSplit, Interrupted, interrupted_actions
from noc.scheduler import Scheduler
from noc.simulator import HealthEndpoint, RedisServer
from noc.simulator.health_endpoint import EndpointMode
from noc_collectors.dns_records import parse_resolver, query
from noc_collectors.dns_update import DnsUpdater

IDS = [rid for rid, *_ in REGIONS]
OPERATOR = {"operator": "op@histories"}
OTHER = {"operator": "other@elsewhere"}
WORLD_CHANGES = ("nothing", "target down", "target up", "store stopped", "store back empty",
                 "other moves the flag")  # fmt: skip


SERVICE_IP = {"ro": "192.0.2.10", "bg": "192.0.2.20", "pa": "192.0.2.30"}
PROCESS = TESTS / "ops_process.py"


def estate_data(
    endpoints: dict[str, HealthEndpoint], stores: dict[str, RedisServer], named: NamedServer
) -> dict[str, Any]:
    """The estate as the config file would say it (also handed to the other process):
    one real health check per region, real stores, and the DNS actuator on BIND."""
    data = estate_config({rid: s.url for rid, s in stores.items()}).model_dump(mode="json")
    for region in data["regions"]:
        region["checks"] = [{"url": endpoints[region["id"]].url, "body_contains": "healthy"}]
        region["service_ips"] = [SERVICE_IP[region["id"]]]
    dns = {"server": named.address, "zone": DOMAIN, "key_name": KEY.name,
           "key_secret": KEY.secret, "timeout_seconds": 1}  # fmt: skip
    data["failover"] = {"store_timeout_seconds": 0.5, "cooldown_seconds": 0, "dns": dns}
    data["dns"] = {"resolvers": [named.address], "records": [{"name": SMTP, "type": "A"}]}
    data["health"] = {"interval_seconds": 1, "failure_threshold": 1, "timeout_seconds": 1}
    return data


class OperationsHistories(RuleBasedStateMachine):
    stores: dict[str, RedisServer]
    state_dir: Path
    named: NamedServer

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.Runner()
        for server in self.stores.values():
            if not server.running:
                server.start()
            client = redis.Redis.from_url(server.url)
            client.flushall()
            client.close()
        self.audit_path = self.state_dir / f"audit-{id(self)}.jsonl"
        self.audit_path.unlink(missing_ok=True)
        self.endpoints = self.run(self._endpoints())
        self.data = estate_data(self.endpoints, self.stores, self.named)
        self.config = parse_config(self.data)
        self.run(self._reset_dns())
        clock = SystemClock()
        self.audit = JsonlLog(self.audit_path, clock)
        self.scheduler = Scheduler(self.config, clock, single_round=True)
        self.ops = Operations(self.config, self.scheduler, self.audit, clock)
        self.expected_refusals: dict[str, str] = {}
        self.flags_before_refusal: dict[str, dict[str, dict[str, str]]] = {}
        self.killed = False

    async def _reset_dns(self) -> None:
        """Each history starts with smtp on ro, whatever the last one left."""
        updater = DnsUpdater(parse_resolver(self.named.address), DOMAIN, KEY.name, KEY.secret)
        now = await self.smtp()
        if now != (SERVICE_IP["ro"],):
            change = RecordChange(SMTP, FailoverRecordType.A, now, (SERVICE_IP["ro"],), 60)
            assert await updater.replace([change]) is None

    async def smtp(self) -> tuple[str, ...]:
        answer = await query(parse_resolver(self.named.address), SMTP, "A", 2.0)
        return tuple(sorted(r.to_text() for r in answer.records))

    async def other_process(
        self, kind: ActionKind, to: str, reason: str, kill_at: tuple[str, int, bool] | None
    ) -> int:
        """One action by another noc process (its own pid), SIGKILLed at `kill_at`."""
        args = {"config": self.data, "audit": str(self.audit_path), "kind": kind.value,
                "to": to, "operator": OTHER if kill_at is None else OPERATOR,
                "reason": reason, "force": True, "kill_at": kill_at}  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(PROCESS), json.dumps(args),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        if kill_at is None or process.returncode != -9:
            assert process.returncode == 0, err.decode()
            assert "Traceback" not in err.decode()
        return process.returncode

    def run(self, work: Any) -> Any:
        return self.loop.run(work)

    async def _endpoints(self) -> dict[str, HealthEndpoint]:
        endpoints = {rid: HealthEndpoint(rid) for rid in IDS}
        for endpoint in endpoints.values():
            await endpoint.start()
        return endpoints

    def teardown(self) -> None:
        async def stop() -> None:
            await self.scheduler.stop()
            for endpoint in self.endpoints.values():
                await endpoint.stop()

        try:
            self.run(stop())
        finally:
            self.loop.close()

    # --- the world -----------------------------------------------------------------

    def flags(self) -> dict[str, dict[str, str]]:
        found: dict[str, Any] = {}
        for rid, server in self.stores.items():
            if not server.running:
                continue
            client = redis.Redis.from_url(server.url, decode_responses=True)
            try:
                found[rid] = client.hgetall("noc:failover")
            finally:
                client.close()
        return found

    async def change_world(self, change: str, target: str, other: str) -> None:
        if change == "target down":
            await self.endpoints[target].set_mode(EndpointMode.DOWN)
        elif change == "target up":
            await self.endpoints[target].set_mode(EndpointMode.HEALTHY)
        elif change == "store stopped":
            self.stores[other].stop()
        elif change == "store back empty":
            self.stores[other].stop()
            self.stores[other].start()
        elif change == "other moves the flag":
            kind = ActionKind.FAILBACK if other == "ro" else ActionKind.FAILOVER
            await self.other_process(kind, other, "the other operator", None)

    def records(self) -> list[dict[str, Any]]:
        return read_jsonl(self.audit_path).records

    # --- rules ---------------------------------------------------------------------

    @rule(
        kind=st.sampled_from([ActionKind.FAILOVER, ActionKind.FAILBACK]),
        to=st.sampled_from(IDS),
        change=st.sampled_from(WORLD_CHANGES),
        other=st.sampled_from(IDS),
        force=st.booleans(),
        answer=st.sampled_from(["yes", "yes", "no"]),
    )
    def act(
        self, kind: ActionKind, to: str, change: str, other: str, force: bool, answer: str
    ) -> None:
        target = to

        async def confirm(plan: ActionPlan) -> Confirmation | None:
            await self.change_world(change, target, other)
            if answer == "no":
                return None
            # What a fresh plan says now, before the layer decides: the oracle.
            fresh = await self.ops.plan(kind, target, OPERATOR, force=force)
            _, refusal = reconfirm(plan, fresh)
            if refusal is not None:
                self.expected_refusals[plan.action_id] = refusal
                self.flags_before_refusal[plan.action_id] = self.flags()
            return Confirmation("history", force, "typed")

        request = ActionRequest(kind, target, OPERATOR, reason="history", force=force)
        outcome: Outcome = self.run(self.ops.run_action(request, OperatorIO(confirm=confirm)))
        plan = outcome.plan
        assert plan is not None
        if plan.action_id in self.expected_refusals:
            # No action executes on a plan a fresh plan would refuse; nothing written.
            assert outcome.stage == "refused", outcome
            assert outcome.exit_code == EXIT_NOTHING_CHANGED
            events = [r["event"] for r in self.records() if r.get("action_id") == plan.action_id]
            assert "executed" not in events and "step_intent" not in events
            assert self.flags() == self.flags_before_refusal[plan.action_id]

    @rule(delay=st.floats(0, 0.4), to=st.sampled_from(IDS))
    def interrupt(self, delay: float, to: str) -> None:
        """Ctrl-C (the task cancelled) at a random moment of a confirmed failover."""

        async def go() -> Outcome:
            request = ActionRequest(ActionKind.FAILOVER, to, OPERATOR, reason="cut", force=True)
            task = asyncio.ensure_future(self.ops.run_action(request, OperatorIO(confirm=_yes)))
            await asyncio.sleep(delay)
            task.cancel()
            return await task

        outcome = self.run(go())
        executed = any(
            r["event"] == "executed"
            and outcome.plan
            and r.get("action_id") == outcome.plan.action_id
            for r in self.records()
        )
        if outcome.stage == "interrupted":
            assert outcome.exit_code == (EXIT_INTERRUPTED if executed else EXIT_NOTHING_CHANGED)
        # An interrupt is held through execution: it never leaves an action half done.
        if not self.killed:
            assert interrupted_actions(self.records()) == []

    @rule(
        event=st.sampled_from(["step_intent", "step_result"]),
        nth=st.integers(0, 1),
        to=st.sampled_from(IDS),
    )
    def kill(self, event: str, nth: int, to: str) -> None:
        """Another noc process is SIGKILLed after a step's intent is recorded, or after
        the step ran but before its result is recorded: its lock stays behind."""
        kind = ActionKind.FAILBACK if to == "ro" else ActionKind.FAILOVER
        kill_at = (event, nth, event == "step_intent")
        code = self.run(self.other_process(kind, to, "killed", kill_at))
        if code == -9:
            self.killed = True

    @rule(choice=st.sampled_from(list(Choice)))
    def recover(self, choice: Choice) -> None:
        async def choose(item: Interrupted, options: RecoveryOptions) -> Decision | None:
            return Decision(choice)

        async def reassert(split: FlagSplit) -> bool:
            return True

        outcome = self.run(self.ops.recover(OPERATOR, choose, reassert))
        left = interrupted_actions(self.records())
        if not left:
            self.killed = False
        every_store_up = all(s.running for s in self.stores.values())
        if outcome.exit_code == 0:
            # "Recovered" is said only when nothing is left open.
            assert not left, (outcome, left)
        if outcome.exit_code == 0 and every_store_up:
            # After a recovery the stores agree with each other, with the record, and
            # DNS serves the region the flag names.
            flags = self.flags()
            held = {f.get("action_id", "") for f in flags.values()}
            assert len(held) == 1, flags
            assert held == {self.record_says()}, (flags, self.record_says())
            actives = {f.get("active", "ro") for f in flags.values()}
            assert len(actives) == 1, flags
            assert self.run(self.smtp()) == (SERVICE_IP[actives.pop()],), (outcome, flags)

    @precondition(lambda self: not all(s.running for s in self.stores.values()))
    @rule()
    def stores_come_back(self) -> None:
        for server in self.stores.values():
            if not server.running:
                server.start()

    @rule(
        region=st.sampled_from(IDS), mode=st.sampled_from([EndpointMode.HEALTHY, EndpointMode.DOWN])
    )
    def health_changes(self, region: str, mode: EndpointMode) -> None:
        self.run(self.endpoints[region].set_mode(mode))

    # --- invariants ----------------------------------------------------------------

    def record_says(self) -> str:
        """The action id the record says the flag holds now."""
        active = ""
        for record in self.records():
            event = record.get("event")
            if event == "executed" and isinstance(record.get("after"), dict):
                flag = record["after"].get("flag")
                if isinstance(flag, dict):
                    active = flag.get("action_id", active)
            elif event == "recovered" and record.get("ok"):
                active = record.get("active_action_id", active)
            elif event == "flag_reasserted" and record.get("ok"):
                active = record.get("action_id", active)
        return active

    @invariant()
    def every_act_is_recorded_and_every_confirmed_act_ends(self) -> None:
        records = self.records()
        planned = {r["action_id"] for r in records if r["event"] == "planned"}
        confirmed = {r["action_id"] for r in records if r["event"] == "confirmed"}
        assert confirmed <= planned
        open_ids = {i.action_id for i in interrupted_actions(records)}
        if not self.killed:
            assert not open_ids


async def _yes(plan: ActionPlan) -> Confirmation:
    return Confirmation("history", plan.forced, "--yes")


# The long profile (NOC_LONG_HISTORIES=1) runs far past the default per-test timeout.
@pytest.mark.timeout(0 if os.environ.get("NOC_LONG_HISTORIES") else 300)
def test_operations_histories(
    region_stores: dict[str, RedisServer], dns_primary: NamedServer, tmp_path: Path
) -> None:
    OperationsHistories.stores = region_stores
    OperationsHistories.state_dir = tmp_path
    OperationsHistories.named = dns_primary
    # Every kill and every other operator is a noc process of its own (~1 s each):
    # the bounded profile stays short; NOC_LONG_HISTORIES=1 runs the long one.
    bounded = (
        None
        if os.environ.get("NOC_LONG_HISTORIES")
        else settings(max_examples=5, stateful_step_count=10, deadline=None)
    )
    run_state_machine_as_test(OperationsHistories, settings=bounded)  # type: ignore[no-untyped-call]
