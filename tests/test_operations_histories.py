"""Histories over the operations layer, with real redis-server flag stores and real
health endpoints on loopback: plans, the world changing between plan and confirm (a
target going down, a store stopped or back empty, another process moving the flag),
confirmations, cancels, interrupts at random moments, kills after a step's intent,
and recoveries.

Invariants: no exception; no action executes on a plan a fresh plan would refuse;
every operator act is in the audit, and every confirmed act ends there; a cancel
never leaves an action interrupted; after a recovery the stores agree with the
record."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from support import REGIONS, estate_config

from noc.audit import JsonlLog, read_jsonl
from noc.clock import SystemClock
from noc.config import NocConfig, parse_config
from noc.failover import reconfirm
from noc.model import ActionKind, ActionPlan
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

IDS = [rid for rid, *_ in REGIONS]
OPERATOR = {"operator": "op@histories"}
OTHER = {"operator": "other@elsewhere"}
WORLD_CHANGES = ("nothing", "target down", "target up", "store stopped", "store back empty",
                 "other moves the flag")  # fmt: skip


class Killed(BaseException):
    """The process dies here: nothing after it runs (not an Exception: no handler of
    noc's catches it, as none can catch a SIGKILL)."""


class KillingAudit(JsonlLog):
    """The real audit log, which can stop the process at the n-th record of an event:
    after writing it (a kill after a step's intent) or before (a kill after the write
    but before its result is recorded)."""

    def __init__(self, path: Path, clock: SystemClock) -> None:
        super().__init__(path, clock)
        self.kill_at: tuple[str, int, bool] | None = None

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        if self.kill_at is not None and event == self.kill_at[0]:
            name, left, after = self.kill_at
            if left <= 0:
                self.kill_at = None
                if not after:
                    raise Killed(event)
                super().append(event, **fields)
                raise Killed(event)
            self.kill_at = (name, left - 1, after)
        return super().append(event, **fields)


def one_check_config(
    endpoints: dict[str, HealthEndpoint], stores: dict[str, RedisServer]
) -> NocConfig:
    data = estate_config({rid: s.url for rid, s in stores.items()}).model_dump(mode="json")
    for region in data["regions"]:
        region["checks"] = [{"url": endpoints[region["id"]].url, "body_contains": "healthy"}]
    data["failover"] = {"store_timeout_seconds": 0.5, "cooldown_seconds": 0}
    data["health"] = {"interval_seconds": 1, "failure_threshold": 1, "timeout_seconds": 1}
    return parse_config(data)


class OperationsHistories(RuleBasedStateMachine):
    stores: dict[str, RedisServer]
    state_dir: Path

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
        self.config = one_check_config(self.endpoints, self.stores)
        clock = SystemClock()
        self.audit = KillingAudit(self.audit_path, clock)
        self.scheduler = Scheduler(self.config, clock, single_round=True)
        self.ops = Operations(self.config, self.scheduler, self.audit, clock)
        # A second noc process on the same estate: its own stores' clients, same record.
        self.other_scheduler = Scheduler(self.config, clock, single_round=True)
        self.other = Operations(
            self.config, self.other_scheduler, JsonlLog(self.audit_path, clock), clock
        )
        self.expected_refusals: dict[str, str] = {}
        self.flags_before_refusal: dict[str, dict[str, dict[str, str]]] = {}
        self.killed = False

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
            await self.other_scheduler.stop()
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
            request = ActionRequest(kind, other, OTHER, reason="the other operator", force=True)
            await self.other.run_action(request, OperatorIO(confirm=_yes))

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
        """The process dies after a step's intent is recorded, or after the step ran but
        before its result is recorded."""
        self.audit.kill_at = (event, nth, event == "step_intent")
        request = ActionRequest(ActionKind.FAILOVER, to, OPERATOR, reason="killed", force=True)
        try:
            self.run(self.ops.run_action(request, OperatorIO(confirm=_yes)))
        except Killed:
            self.killed = True
        self.audit.kill_at = None

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
        if outcome.exit_code == 0 and every_store_up:
            # After a recovery the stores agree with each other and with the record.
            flags = self.flags()
            held = {f.get("action_id", "") for f in flags.values()}
            assert len(held) == 1, flags
            assert held == {self.record_says()}, (flags, self.record_says())

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
def test_operations_histories(region_stores: dict[str, RedisServer], tmp_path: Path) -> None:
    OperationsHistories.stores = region_stores
    OperationsHistories.state_dir = tmp_path
    run_state_machine_as_test(OperationsHistories)  # type: ignore[no-untyped-call]
