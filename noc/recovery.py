"""Interrupted actions, found in the audit record and finished or undone.

Every actuator step of an action is recorded before it writes (`step_intent`, with
the values about to be written) and after (`step_result`). A process killed in
between leaves an action that was confirmed but never reached `executed`,
`aborted`, `rolled_back` or a later `recovered`: `interrupted_actions()` finds it
from the record alone, and `settle()` drives every actuator of that action to one
side, the plan's target ("complete") or the state before it ("roll_back").

Settling works from the state of the world, not from how far the record got: each
store and RRset is read, and only what is not yet on the chosen side is written,
compare-and-set, so settling twice (or after a kill while settling) is harmless,
and a value someone else wrote meanwhile is never overwritten.

`flag_disagreement()`/`reassert_flag()` clear a split that no action left: a store
that came back empty, or holding an older flag, gets the majority's flag again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from noc.clock import Clock, iso_utc
from noc.codes import Choice as Choice  # re-exported: how an interrupted action is settled
from noc.failover import (
    Actuators,
    change_from_json,
    holder_is_dead,
    hook_environment,
    release_lock,
    secret_variables,
    take_lock,
    this_node,
)
from noc.model import (
    ActionKind,
    ActionPlan,
    ActuatorStep,
    FailoverFlag,
    FailoverRecord,
    FlagSample,
    Health,
    LockHolder,
    RecordChange,
)
from noc_collectors.dns_update import PREREQUISITE_FAILED
from noc_collectors.hooks import run_hook

# The audit events that end an action once it was confirmed: nothing is in flight.
ENDING_EVENTS = frozenset(
    {"executed", "aborted", "rolled_back", "refused", "cancelled", "recovered"}
)
# The per-step records of point 8: before (intent) and after (result) each write.
STEP_EVENTS = frozenset({"step_intent", "step_result"})


@dataclass(frozen=True)
class Interrupted:
    """An action the record shows confirmed and never ended."""

    action_id: str
    kind: str
    source: str | None
    target: str
    operator: Mapping[str, str]
    reason: str
    confirmed_ts: str
    actuators: tuple[str, ...]
    # Actuators whose write was announced, and those whose result came back (ok or not).
    started: tuple[str, ...]
    finished: Mapping[str, bool]
    flag: FailoverFlag | None
    previous_flag: FailoverFlag | None
    changes: tuple[RecordChange, ...]
    last_event: str
    pid: int = 0
    node: str = ""
    rollback_started: bool = False

    @property
    def wrote_anything(self) -> bool:
        return bool(self.started)

    @property
    def in_flight(self) -> tuple[str, ...]:
        """Steps announced without a result: the kill landed inside these."""
        return tuple(a for a in self.started if a not in self.finished)

    def describe(self) -> str:
        where = (
            f"stopped inside {', '.join(self.in_flight)}"
            if self.in_flight
            else (
                f"after {', '.join(self.started)}" if self.started else "before any actuator wrote"
            )
        )
        return (
            f"{self.kind} {self.source or '?'} -> {self.target} (action {self.action_id}, "
            f"confirmed {self.confirmed_ts} by {self.operator.get('operator', '?')}): "
            f"interrupted {where}; last record: {self.last_event}"
        )

    def process_alive(self) -> bool:
        """The process that confirmed it still runs (it may be waiting for a drain)."""
        if not self.pid or not self.node or self.node != this_node():
            return False
        holder = LockHolder("", self.action_id, "", self.pid, self.node)
        return not holder_is_dead(holder) and self.pid != os.getpid()


def interrupted_actions(records: Iterable[Mapping[str, Any]]) -> list[Interrupted]:
    """Every action the record shows confirmed (or with a step announced) and not ended,
    oldest first. Pure: reads the records only."""
    by_action: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        action_id = record.get("action_id")
        if isinstance(action_id, str) and action_id:
            by_action.setdefault(action_id, []).append(record)
    found: list[Interrupted] = []
    for action_id, history in by_action.items():
        events = [str(r.get("event", "")) for r in history]
        starts = [i for i, e in enumerate(events) if e in ("confirmed", "step_intent")]
        if not starts:
            continue
        first = starts[0]
        if any(e in ENDING_EVENTS for e in events[first:]):
            continue
        found.append(_interrupted(action_id, history, history[first]))
    return found


def _interrupted(
    action_id: str, history: Sequence[Mapping[str, Any]], first: Mapping[str, Any]
) -> Interrupted:
    confirmed = next((r for r in history if r.get("event") == "confirmed"), first)
    started: list[str] = []
    finished: dict[str, bool] = {}
    previous = _flag(confirmed.get("previous_flag"))
    flag: FailoverFlag | None = None
    changes = tuple(change_from_json(c) for c in confirmed.get("changes") or ())
    rollback = False
    for record in history:
        actuator = str(record.get("actuator", ""))
        if record.get("rollback"):
            rollback = rollback or record.get("event") == "step_intent"
            continue
        if record.get("event") == "step_intent":
            started.append(actuator)
            if actuator == "flag":
                flag = _flag(record.get("flag")) or flag
                previous = _flag(record.get("previous_flag")) or previous
            if actuator == "dns" and record.get("changes"):
                changes = tuple(change_from_json(c) for c in record["changes"])
        elif record.get("event") == "step_result":
            finished[actuator] = bool(record.get("ok"))
    operator = {k: str(v) for k, v in confirmed.items() if k in ("operator", "ssh_client") and v}
    return Interrupted(
        action_id=action_id,
        kind=str(confirmed.get("action", "failover")),
        source=confirmed.get("from"),
        target=str(confirmed.get("to", "")),
        operator=operator,
        reason=str(confirmed.get("reason", "")),
        confirmed_ts=str(confirmed.get("ts", "?")),
        actuators=tuple(str(a) for a in confirmed.get("actuators") or started),
        started=tuple(started),
        finished=finished,
        flag=flag,
        previous_flag=previous,
        changes=changes,
        last_event=str(history[-1].get("event", "?")),
        pid=int(confirmed.get("pid") or 0),
        node=str(confirmed.get("node") or ""),
        rollback_started=rollback,
    )


def _flag(raw: object) -> FailoverFlag | None:
    if not isinstance(raw, Mapping):
        return None
    return FailoverFlag.from_mapping({str(k): str(v) for k, v in raw.items()})


def recommended(item: Interrupted) -> Choice:
    """Forward when part of the move already landed (the incident goes on: finish it),
    back when nothing was written or a rollback had begun."""
    if item.rollback_started or not item.wrote_anything:
        return Choice.ROLL_BACK
    return Choice.COMPLETE


@dataclass
class Settled:
    """What settling an interrupted action did, actuator by actuator."""

    item: Interrupted
    choice: Choice
    steps: list[ActuatorStep] = field(default_factory=list)
    refusal: str | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None and all(s.ok for s in self.steps)

    @property
    def changed_anything(self) -> bool:
        return any(s.ok and "already" not in s.detail for s in self.steps)

    def summary(self) -> str:
        verb = "completed" if self.choice is Choice.COMPLETE else "rolled back"
        if self.refusal is not None:
            return f"action {self.item.action_id} NOT {verb}: {self.refusal}"
        state = verb if self.ok else f"{verb} only in part (see the steps)"
        parts = "; ".join(f"{s.actuator}: {s.detail}" for s in self.steps)
        return f"{self.item.kind} {self.item.action_id} {state}: {parts or 'nothing to do'}"


async def settle(
    item: Interrupted,
    choice: Choice,
    actuators: Actuators,
    clock: Clock,
    operator: Mapping[str, str],
    *,
    dry_run: bool = False,
) -> Settled:
    """Drive every actuator of `item` to the chosen side, under the failover lock.
    With `dry_run`, read only and say what would be written."""
    settled = Settled(item, choice)
    if choice is Choice.COMPLETE and not item.wrote_anything:
        settled.refusal = (
            "nothing was written before it stopped: there is nothing to complete; "
            f"plan it again (noc {item.kind} ...) or roll it back to close the record"
        )
        return settled
    holder = LockHolder(
        operator.get("operator", "?"),
        item.action_id,
        iso_utc(clock.utcnow()),
        os.getpid(),
        this_node(),
    )
    if not dry_run:
        refusal, step = await take_lock(actuators, holder)
        if refusal is not None:
            settled.refusal = refusal
            return settled
        if step is not None:
            settled.steps.append(step)
    try:
        for actuator in item.actuators:
            if actuator == "flag" and ActionKind(item.kind).moves_flag:
                settled.steps.append(await _settle_flag(item, choice, actuators, clock, dry_run))
            elif actuator == "dns":
                settled.steps.append(await _settle_dns(item, choice, actuators, dry_run))
            elif actuator == "hook":
                step = await _settle_hook(item, choice, actuators, dry_run)
                if step is not None:
                    settled.steps.append(step)
    finally:
        if not dry_run:
            await release_lock(actuators, holder)
    return settled


def _wanted_flag(item: Interrupted, clock: Clock) -> FailoverFlag:
    if item.flag is not None:
        return item.flag
    return FailoverFlag(
        active=item.target,
        previous=item.source,
        operator=item.operator.get("operator", ""),
        reason=item.reason,
        at=iso_utc(clock.utcnow()),
        action_id=item.action_id,
    )


async def _settle_flag(
    item: Interrupted, choice: Choice, actuators: Actuators, clock: Clock, dry_run: bool
) -> ActuatorStep:
    stores = actuators.stores
    ours = item.action_id
    before = item.previous_flag.action_id if item.previous_flag else ""
    wanted = _wanted_flag(item, clock) if choice is Choice.COMPLETE else item.previous_flag
    wanted_id = wanted.action_id if wanted else ""
    # Only the two sides of this action may be replaced: ours and what it replaced
    # (or an empty store, which a write realigns).
    replaceable = {ours, before, ""} - {wanted_id}
    samples = dict(
        zip(stores, await asyncio.gather(*(s.read() for s in stores.values())), strict=True)
    )
    todo: list[tuple[str, str]] = []
    already: list[str] = []
    problems: list[str] = []
    for region, sample in samples.items():
        if not sample.reachable:
            problems.append(f"{region} unreachable ({sample.error})")
            continue
        current = sample.flag.action_id if sample.flag else ""
        if current == wanted_id:
            already.append(region)
        elif current in replaceable:
            todo.append((region, current))
        else:
            seen = sample.flag.active if sample.flag else "?"
            problems.append(
                f"{region} holds another action's flag ({current}: {seen}): not touched"
            )
    name = wanted.active if wanted else "no flag"
    if dry_run:
        return ActuatorStep(
            "flag",
            True,
            f"would write {name} on {', '.join(r for r, _ in todo) or 'no store'}"
            f"; already on {len(already)}/{len(stores)}"
            + (f"; {'; '.join(problems)}" if problems else ""),
        )
    outcomes = await asyncio.gather(*(stores[r].replace_if(current, wanted) for r, current in todo))
    for (region, _), outcome in zip(todo, outcomes, strict=True):
        if outcome.replaced:
            already.append(region)
        else:
            problems.append(f"{region}: {outcome.error or 'changed meanwhile: not overwritten'}")
    majority = len(already) > len(stores) / 2
    conflicts = [p for p in problems if "unreachable" not in p]
    detail = f"{name} on {len(already)}/{len(stores)} stores ({', '.join(sorted(already))})"
    if not todo:
        detail = "already " + detail
    if problems:
        detail += "; " + "; ".join(problems)
    return ActuatorStep(
        "flag", majority and not conflicts, detail, rolled_back=choice is Choice.ROLL_BACK
    )


async def _settle_dns(
    item: Interrupted, choice: Choice, actuators: Actuators, dry_run: bool
) -> ActuatorStep:
    back = choice is Choice.ROLL_BACK
    changes = [c.reverse() if back else c for c in item.changes if c.changed]
    if not changes:
        return ActuatorStep("dns", True, "already as wanted: the action changed no record")
    updater, error = await actuators.dns()
    if updater is None:
        return ActuatorStep("dns", False, error or "no DNS updater")
    now = await updater.read([FailoverRecord(c.name, c.rtype) for c in changes])
    todo: list[RecordChange] = []
    problems: list[str] = []
    for change, rrset in zip(changes, now, strict=True):
        label = f"{change.name} {change.rtype.value}"
        if rrset.error is not None:
            problems.append(f"{label}: {rrset.error}")
        elif set(rrset.values) == set(change.new):
            continue
        elif set(rrset.values) == set(change.old):
            todo.append(change)
        else:
            problems.append(
                f"{label} holds {', '.join(rrset.values) or '(none)'}, neither side of this "
                "action: changed behind noc's back, not touched"
            )
    if dry_run:
        words = "; ".join(c.describe() for c in todo) or "nothing to change"
        return ActuatorStep(
            "dns", not problems, f"would apply: {words}" + "".join(f"; {p}" for p in problems)
        )
    if todo:
        error = await updater.replace(todo)
        if error is not None:
            detail = error if PREREQUISITE_FAILED not in error else f"changed meanwhile: {error}"
            return ActuatorStep("dns", False, detail, rolled_back=back)
    done = f"{len(todo)} RRset(s) replaced" if todo else "already as wanted"
    return ActuatorStep(
        "dns", not problems, done + "".join(f"; {p}" for p in problems), rolled_back=back
    )


async def _settle_hook(
    item: Interrupted, choice: Choice, actuators: Actuators, dry_run: bool
) -> ActuatorStep | None:
    hooks = actuators.config.failover.hooks
    ran = item.finished.get("hook")
    if choice is Choice.COMPLETE:
        if ran:
            return ActuatorStep("hook", True, "already ran")
        command = hooks.run
    else:
        if "hook" not in item.started:
            return None
        command = hooks.undo
        if not command:
            return ActuatorStep(
                "hook", False, "no [failover.hooks] undo configured: undo it by hand"
            )
    if command is None:
        return None
    if dry_run:
        return ActuatorStep("hook", True, f"would run {command}")
    plan = ActionPlan(
        action_id=item.action_id,
        kind=ActionKind(item.kind),
        source=item.source,
        target=item.target,
        target_health=Health.UNKNOWN,
        operator=dict(item.operator),
        forced=False,
        checks=(),
        stores=(),
    )
    outcome = await run_hook(
        command,
        hook_environment(plan, item.reason),
        hooks.timeout_seconds,
        withheld=secret_variables(actuators.config),
    )
    return ActuatorStep(
        "hook", outcome.ok, outcome.describe(), rolled_back=choice is Choice.ROLL_BACK
    )


@dataclass(frozen=True)
class FlagSplit:
    """Stores that lack the flag most stores hold, or hold another one."""

    flag: FailoverFlag
    agreeing: tuple[str, ...]
    behind: Mapping[str, str]  # region -> the action id it holds ("" for none)
    unreachable: tuple[str, ...]

    def describe(self) -> str:
        behind = ", ".join(
            f"{r} ({'empty' if a == '' else f'holds {a}'})" for r, a in self.behind.items()
        )
        total = len(self.agreeing) + len(self.behind) + len(self.unreachable)
        return (
            f"flag stores disagree: {len(self.agreeing)}/{total} "
            f"hold {self.flag.active} (action {self.flag.action_id}); behind: {behind}"
        )


def flag_disagreement(samples: Mapping[str, FlagSample]) -> FlagSplit | None:
    """The majority flag and the reachable stores that lack it, when a strict majority
    of all stores agrees; None when they agree (or no flag has a majority: then only a
    new action can decide)."""
    total = len(samples)
    reachable = {r: s for r, s in samples.items() if s.reachable}
    held: dict[str, list[str]] = {}
    flags: dict[str, FailoverFlag] = {}
    for region, sample in reachable.items():
        if sample.flag is not None and sample.flag.action_id:
            held.setdefault(sample.flag.action_id, []).append(region)
            flags[sample.flag.action_id] = sample.flag
    if not held:
        return None
    action_id, agreeing = max(held.items(), key=lambda item: len(item[1]))
    if len(agreeing) <= total / 2:
        return None
    behind = {
        r: (s.flag.action_id if s.flag else "") for r, s in reachable.items() if r not in agreeing
    }
    if not behind:
        return None
    unreachable = tuple(r for r, s in samples.items() if not s.reachable)
    return FlagSplit(flags[action_id], tuple(agreeing), behind, unreachable)


async def read_flags(actuators: Actuators) -> dict[str, FlagSample]:
    stores = actuators.stores
    return dict(
        zip(stores, await asyncio.gather(*(s.read() for s in stores.values())), strict=True)
    )


async def reassert_flag(
    split: FlagSplit, actuators: Actuators, clock: Clock, operator: Mapping[str, str]
) -> tuple[ActuatorStep, LockHolder | None]:
    """Write the majority's flag onto the stores behind, compare-and-set on what each
    held when read, under the failover lock."""
    holder = LockHolder(
        operator.get("operator", "?"), split.flag.action_id, iso_utc(clock.utcnow()),
        os.getpid(), this_node(),
    )  # fmt: skip
    refusal, _ = await take_lock(actuators, holder)
    if refusal is not None:
        return ActuatorStep("flag", False, refusal), None
    try:
        stores = actuators.stores
        outcomes = await asyncio.gather(
            *(stores[r].replace_if(held, split.flag) for r, held in split.behind.items())
        )
        done = [r for r, o in zip(split.behind, outcomes, strict=True) if o.replaced]
        bad = [
            f"{r}: {o.error or 'changed meanwhile: not overwritten'}"
            for r, o in zip(split.behind, outcomes, strict=True)
            if not o.replaced
        ]
        detail = f"{split.flag.active} (action {split.flag.action_id}) re-asserted on " + (
            ", ".join(done) or "no store"
        )
        return ActuatorStep("flag", not bad, detail + "".join(f"; {b}" for b in bad)), holder
    finally:
        await release_lock(actuators, holder)
